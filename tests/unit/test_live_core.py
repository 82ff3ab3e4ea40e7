"""The live service's pure parts: the schedule, single flight, what a widget reads."""

from __future__ import annotations

import asyncio

import pytest

from livebi.live.flight import SingleFlight
from livebi.live.plan import tables_read, widget_queries
from livebi.live.schedule import Schedule

# -- schedule ---------------------------------------------------------------------------------------


def test_schedule_fires_each_key_on_its_interval() -> None:
    s = Schedule()
    s.set("a", 5, now=0)
    s.set("b", 2, now=0)
    assert s.next_due() == 2
    assert s.due(1.9) == []
    assert s.due(2) == ["b"]
    assert s.due(4) == ["b"]
    assert s.due(5) == ["a"]  # b is next due at 6
    assert s.due(6) == ["b"]
    assert s.next_due() == 8


def test_schedule_does_not_burst_after_falling_behind() -> None:
    s = Schedule()
    s.set("a", 1, now=0)
    assert s.due(10.5) == ["a"]  # once, not ten times
    assert s.next_due() == 11.5


def test_schedule_keeps_due_time_when_interval_unchanged_and_forgets_removed_keys() -> None:
    s = Schedule()
    s.set("a", 5, now=0)
    s.set("a", 5, now=4)  # a replan with the same interval does not postpone it
    assert s.next_due() == 5
    s.set("a", 10, now=4)  # a new interval counts from now
    assert s.next_due() == 14
    s.set(("d", "w"), 3, now=0)
    s.remove_where(lambda key: isinstance(key, tuple) and key[0] == "d")
    s.set("a", None, now=0)
    assert len(s) == 0 and s.next_due() is None and s.due(100) == []


# -- single flight ----------------------------------------------------------------------------------


async def test_concurrent_callers_share_one_run() -> None:
    flight = SingleFlight()
    runs = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return 42

    callers = [asyncio.create_task(flight.run("k", work)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*callers) == [42] * 50
    assert runs == 1 and flight.started == 1 and flight.joined == 49
    assert await flight.run("k", work) == 42 and runs == 2  # finished flights are not reused


async def test_a_caller_needing_newer_data_waits_for_a_fresh_run() -> None:
    clock = [0.0]
    flight = SingleFlight(clock=lambda: clock[0])
    gates = [asyncio.Event(), asyncio.Event()]
    runs: list[int] = []

    async def work() -> int:
        n = len(runs)
        runs.append(n)
        await gates[n].wait()
        return n

    old = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    clock[0] = 1.0  # a change is signalled after the first run started
    fresh = [asyncio.create_task(flight.run("k", work, not_before=1.0)) for _ in range(3)]
    await asyncio.sleep(0)
    assert runs == [0]
    gates[0].set()
    assert await old == 0
    await asyncio.sleep(0)
    gates[1].set()
    assert await asyncio.gather(*fresh) == [1, 1, 1]  # one fresh run shared by the three
    assert runs == [0, 1]


async def test_a_cancelled_caller_leaves_the_run_to_the_others_and_errors_reach_everyone() -> None:
    flight = SingleFlight()
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        return "ok"

    first = asyncio.create_task(flight.run("k", work))
    second = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == "ok"

    async def broken() -> None:
        raise ValueError("engine said no")

    results = await asyncio.gather(flight.run("e", broken), flight.run("e", broken), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert not flight.running("e")


# -- plans ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "dialect", "tables"),
    [
        ("SELECT sum(revenue) FROM orders", "duckdb", {"orders"}),
        ("SELECT c.region, sum(o.revenue) FROM main.Orders o JOIN customers c USING (customer_id) GROUP BY 1",
         "duckdb", {"orders", "customers"}),
        ("WITH t AS (SELECT * FROM orders) SELECT count(*) FROM t", "duckdb", {"orders"}),
        ('SELECT * FROM "Order Details" WHERE "OrderID" IN (SELECT "OrderID" FROM "Orders")', "sqlite",
         {"order details", "orders"}),
        ("SELECT 1", "postgres", set()),
        ("SELECT * FROM public.sales s", "postgres", {"sales"}),
    ],
)
def test_tables_read(sql: str, dialect: str, tables: set[str]) -> None:
    assert tables_read(sql, dialect) == tables


def test_widget_queries_skip_widgets_with_nothing_to_run() -> None:
    snapshot = {"id": "d_000000000001", "widgets": [
        {"id": "w_00000001", "title": "A", "question": "revenue by region", "sql": None, "warehouse": None,
         "chart": {"type": "bar", "settings": {}}, "refresh": {"interval_s": 30, "on_data_change": True}},
        {"id": "w_00000002", "title": "Notes", "question": "  ", "sql": None, "warehouse": None,
         "chart": {"type": None, "settings": {}}, "refresh": {"interval_s": None, "on_data_change": False}},
    ]}
    [query] = widget_queries(snapshot)
    assert (query.widget_id, query.question, query.chart, query.interval_s, query.on_data_change) == (
        "w_00000001", "revenue by region", "bar", 30, True)
