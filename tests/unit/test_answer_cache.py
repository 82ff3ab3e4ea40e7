"""The pure parts of answer_cache.py: LRU, what validation tells the result cache, the result
cache's rules for storing and serving, single flight with cancellation."""

from __future__ import annotations

import asyncio

import pytest

from livebi.answer_cache import LRU, QueryFlights, ResultCache, describe_validated, result_size
from livebi.warehouse.base import QueryResult


def test_lru_drops_the_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    assert (lru.hits, lru.misses) == (3, 1)
    off: LRU[str, int] = LRU(0)
    off.put("a", 1)
    assert off.get("a") is None


@pytest.mark.parametrize("sql, dialect, tables, cacheable", [
    ("SELECT region, SUM(amount) FROM sales GROUP BY region", "duckdb", {"sales"}, True),
    ("WITH t AS (SELECT * FROM orders) SELECT COUNT(*) FROM t JOIN customers c ON TRUE", "duckdb", {"orders", "customers"}, True),
    ("SELECT COUNT(*) FROM orders WHERE order_date > CURRENT_DATE - INTERVAL 7 DAY", "duckdb", {"orders"}, False),
    ("SELECT NOW(), COUNT(*) FROM orders", "postgres", {"orders"}, False),
    ("SELECT RANDOM() FROM sales", "sqlite", {"sales"}, False),
    ("SELECT 1", "duckdb", set(), False),
])
def test_describe_validated(sql: str, dialect: str, tables: set[str], cacheable: bool) -> None:
    described = describe_validated(sql, dialect)
    assert described.tables == tables and described.cacheable is cacheable


def result(rows: list[list[object]]) -> QueryResult:
    return QueryResult(columns=["a"], column_kinds=["number"], rows=rows, row_count=len(rows), truncated=False, elapsed_ms=1)


class Clocks:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def cache_with(clocks: Clocks, *, max_age_s: float = 60, max_bytes: int = 1 << 20) -> ResultCache:
    cache = ResultCache(max_age_s=max_age_s, max_bytes=max_bytes, detector_factory=None,
                        clock=lambda: clocks.mono, wall=lambda: clocks.wall)
    cache._ready[("wh", "t")] = clocks.mono  # as after a baseline poll
    return cache


KEY = ("wh", "SELECT a FROM t", 10_000, 1 << 20, 10_000)


def test_a_result_is_stored_only_when_nothing_changed_while_it_ran_and_the_table_had_a_baseline() -> None:
    clocks = Clocks()
    cache = cache_with(clocks)
    clocks.advance(1)
    gen = cache.generation("wh")
    cache.invalidate("wh", {"other"})  # a change signalled while the query ran
    assert not cache.put(KEY, frozenset({"t"}), result([[1]]), started=clocks.mono, as_of=clocks.wall, generation=gen, size=10)
    # a table whose baseline came after the query started
    assert not cache.put(KEY, frozenset({"t", "u"}), result([[1]]), started=clocks.mono, as_of=clocks.wall,
                         generation=cache.generation("wh"), size=10)
    assert cache.put(KEY, frozenset({"t"}), result([[1]]), started=clocks.mono, as_of=clocks.wall,
                     generation=cache.generation("wh"), size=10)
    assert cache.get(KEY) is not None
    assert cache.get(("other", *KEY[1:])) is None  # never across warehouses


def test_invalidation_age_and_bytes() -> None:
    clocks = Clocks()
    cache = cache_with(clocks, max_age_s=5, max_bytes=100)
    put = lambda key, size=40: cache.put(key, frozenset({"t"}), result([[1]]), started=clocks.mono + 1,  # noqa: E731
                                         as_of=clocks.wall, generation=cache.generation("wh"), size=size)
    assert put(KEY)
    assert cache.invalidate("wh", {"T"}) == 1 and cache.get(KEY) is None
    assert put(KEY)
    clocks.advance(5)
    assert cache.get(KEY) is None and len(cache) == 0  # aged out
    keys = [("wh", f"SELECT {i} FROM t", 1, 1, 1) for i in range(3)]
    for key in keys:
        assert put(key)
    assert cache.size_bytes <= 100 and cache.get(keys[0]) is None and cache.get(keys[2]) is not None
    assert not put(("wh", "big", 1, 1, 1), size=101)
    assert result_size(result([["x" * 1000]])) > 1000


async def test_single_flight_shares_one_run_and_the_last_cancelled_asker_stops_it() -> None:
    flights = QueryFlights()
    runs: list[str] = []
    release = asyncio.Event()
    stopped = asyncio.Event()

    async def start(report) -> str:
        runs.append("run")
        report("working")
        try:
            await release.wait()
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "rows"

    seen: dict[str, list[str]] = {"a": [], "b": []}
    a = asyncio.ensure_future(flights.run("k", start, seen["a"].append))
    await asyncio.sleep(0)
    b = asyncio.ensure_future(flights.run("k", start, seen["b"].append))
    await asyncio.sleep(0)
    release.set()
    assert await a == ("rows", False) and await b == ("rows", True)
    assert runs == ["run"] and seen["a"] == ["working"]
    # cancelling one asker leaves the run to the other; cancelling the last stops it
    release.clear()
    a = asyncio.ensure_future(flights.run("k", start, lambda *_: None))
    await asyncio.sleep(0)
    b = asyncio.ensure_future(flights.run("k", start, lambda *_: None))
    await asyncio.sleep(0)
    a.cancel()
    await asyncio.sleep(0.01)
    assert not stopped.is_set() and flights.running("k")
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    assert stopped.is_set() and not flights.running("k")


@pytest.mark.parametrize("sql, cacheable", [
    ("SELECT COUNT(*) FROM orders WHERE order_date > CURRENT_DATE", False),
    ("SELECT NOW() AS t, COUNT(*) FROM orders", False),
    ("SELECT RANDOM() AS r FROM orders", False),
    ("SELECT UPPER(status) AS s, COUNT(*) FROM orders GROUP BY 1", True),
])
def test_the_tree_validation_checked_tells_volatile_functions(sql: str, cacheable: bool) -> None:
    """Validation parses functions as written (exp.Anonymous): the same verdicts from its tree."""
    from livebi.answer_cache import describe_tree
    from livebi.warehouse.base import Column, Schema, Table
    from livebi.warehouse.safety import validate_select

    schema = Schema.of([Table("orders", (Column("order_date", "DATE", "date"), Column("status", "VARCHAR", "text")),
                              schema="main")], schemas=["main"])
    trees: list = []
    normalized = validate_select(sql, dialect="duckdb", schema=schema, inspect=trees.append)
    described = describe_tree(trees[0], normalized)
    assert described.tables == {"orders"} and described.cacheable is cacheable and described.sql == normalized
