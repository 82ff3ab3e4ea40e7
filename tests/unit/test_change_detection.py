"""The pure parts of change detection: version tracking, names read by
SQL, view resolution, the PostgreSQL poll's interpretation, the trigger recipe, and the
detector loop's rules (nothing watched: no poll; changes coalesced; failures counted)."""

from __future__ import annotations

import asyncio
import sqlite3
import types

from hypothesis import given
from hypothesis import strategies as st

from livebi.warehouse.base import WarehouseError
from livebi.warehouse.changes import (
    _WITHOUT_ROWID,
    ChangeDetector,
    VersionTracker,
    _sqlite_fingerprint_sql,
    resolve_relations,
    tables_in_sql,
)
from livebi.warehouse.changes_postgres import function_sql, trigger_sql, versions_from_rows


def test_first_version_is_a_baseline_then_moves_are_reported() -> None:
    tracker = VersionTracker()
    assert tracker.update({"orders": 1, "customers": 5}) == set()
    assert tracker.missing({"orders", "products"}) == {"products"}
    assert tracker.diff({"orders": 2}) == {"orders"}
    assert tracker.update({"orders": 1, "customers": 5}) == set()  # diff recorded nothing
    assert tracker.update({"orders": 2, "customers": 5, "products": 0}) == {"orders"}
    tracker.retain({"orders"})
    assert tracker.missing({"orders", "customers"}) == {"customers"}
    assert tracker.update({"customers": 6}) == set()  # watched again: a new baseline


@given(st.lists(st.dictionaries(st.sampled_from("abc"), st.integers(0, 3)), max_size=12))
def test_a_table_is_reported_exactly_when_its_version_differs_from_the_last_seen(steps: list[dict[str, int]]) -> None:
    tracker = VersionTracker()
    last: dict[str, int] = {}
    for step in steps:
        expected = {name for name, v in step.items() if name in last and last[name] != v}
        assert tracker.update(step) == expected
        last.update(step)


def test_tables_in_sql() -> None:
    assert tables_in_sql("SELECT * FROM Orders o JOIN main.customers c ON c.id = o.cid", "duckdb") == {"orders", "customers"}
    assert tables_in_sql("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", "duckdb") == {"orders"}
    assert tables_in_sql(
        "CREATE VIEW big AS SELECT * FROM orders WHERE id IN (SELECT id FROM returns)", "sqlite"
    ) == {"orders", "returns"}
    assert tables_in_sql('CREATE VIEW "v" AS SELECT 1 AS x', "duckdb") == set()
    assert tables_in_sql("SELECT FROM WHERE (((", "duckdb") == set()


def test_views_resolve_to_the_tables_they_read() -> None:
    tables = {"orders": [("main", "orders"), ("other", "orders")], "customers": [("main", "customers")]}
    views = {"big_orders": {"orders"}, "vip": {"big_orders", "customers"}, "loop_a": {"loop_b"}, "loop_b": {"loop_a"}}
    resolved = resolve_relations(["vip", "orders", "loop_a", "missing"], tables, views)
    assert resolved["vip"] == sorted([("main", "orders"), ("other", "orders"), ("main", "customers")], key=repr)
    assert resolved["orders"] == [("main", "orders"), ("other", "orders")]
    assert resolved["loop_a"] == [] and resolved["missing"] == []


def row(name: str, relid: int, relname: str, writes: int, filenode: int, notifies: bool) -> dict:
    return {"name": name, "relid": relid, "relname": relname, "writes": writes, "filenode": filenode, "notifies": notifies}


def test_postgres_rows_give_versions_coverage_and_feeds() -> None:
    rows = [
        row("orders", 1, "orders", 5, 101, True),
        row("big_orders", 1, "orders", 5, 101, True),
        row("big_orders", 2, "customers", 0, 102, False),
        row("events", 3, "events", 0, 0, True),
        row("events", 4, "events_2024", 7, 104, True),
    ]
    versions, covered, feeds = versions_from_rows(["orders", "big_orders", "events", "gone"], rows)
    assert versions["orders"] == ((1, 5, 101),)
    assert versions["big_orders"] == ((1, 5, 101), (2, 0, 102))
    assert versions["gone"] == ()
    assert covered == {"orders", "events"}  # big_orders reads a table without the trigger
    assert feeds == {"orders": {"orders", "big_orders"}, "customers": {"big_orders"}, "events": {"events"}, "events_2024": {"events"}}


def test_trigger_recipe_quotes_names_and_covers_every_write() -> None:
    function = function_sql('we"ird')
    assert function.startswith('CREATE OR REPLACE FUNCTION "we""ird".livebi_notify_change() RETURNS trigger')
    assert "pg_notify('livebi_changes', TG_TABLE_NAME)" in function and "RETURN NULL" in function
    drop, create = trigger_sql("public", "Order Lines")
    assert drop == 'DROP TRIGGER IF EXISTS livebi_notify_change ON "public"."Order Lines"'
    assert "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE" in create and "FOR EACH STATEMENT" in create


def test_sqlite_fingerprint_reads_rowid_edges_and_counts_without_rowid_tables() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (3, 'a'), (9, 'b');"
        "CREATE TABLE w (k TEXT PRIMARY KEY) WITHOUT ROWID; INSERT INTO w VALUES ('x');"
        "CREATE TABLE e (x INT);"
    )
    shapes = {name: (0, bool(_WITHOUT_ROWID.search(sql))) for name, sql in conn.execute("SELECT name, sql FROM sqlite_master")}
    assert shapes == {"t": (0, False), "w": (0, True), "e": (0, False)}
    sql = _sqlite_fingerprint_sql(["t", "w", "e"], shapes)
    # a lone min()/max() per subquery: SQLite reads the b-tree's edge instead of scanning
    assert "(SELECT min(_rowid_) FROM \"t\")" in sql
    assert conn.execute(sql).fetchall() == [(0, 3, 9, None), (1, None, None, 1), (2, None, None, None)]
    assert _WITHOUT_ROWID.search("CREATE TABLE s (a TEXT PRIMARY KEY) STRICT, WITHOUT ROWID")


# -- the detector loop, with a scripted engine ------------------------------------------------


class Scripted(ChangeDetector):
    """A detector whose polls return what the test scripted (no engine)."""

    def __init__(self, on_change, script: list) -> None:
        super().__init__(types.SimpleNamespace(name="scripted"), on_change, poll_interval_s=0.01)
        self.script = script
        self.seen: list[frozenset[str]] = []
        self.idle_calls = 0

    @property
    def method(self) -> str:
        return "poll:scripted"

    async def _poll(self, watched: frozenset[str]) -> set[str]:
        self.seen.append(watched)
        step = self.script.pop(0) if self.script else set()
        if isinstance(step, BaseException):
            raise step
        return set(step)

    async def _idle(self) -> None:
        self.idle_calls += 1


async def test_nothing_watched_means_no_poll_and_names_are_normalised() -> None:
    detector = Scripted(lambda tables: asyncio.sleep(0), [])
    assert await detector.poll_once() == set()
    assert detector.seen == [] and detector.polls == 0 and detector.idle_calls == 1
    detector.watch({" Orders ", "", "customers"})
    assert detector.watched == {"orders", "customers"}
    await detector.poll_once()
    assert detector.seen == [frozenset({"orders", "customers"})]


async def test_only_watched_tables_are_reported_and_failures_are_counted() -> None:
    detector = Scripted(lambda tables: asyncio.sleep(0), [{"orders", "other"}, WarehouseError("query_failed", "boom"), ValueError("bug")])
    detector.watch({"orders"})
    assert await detector.poll_once() == {"orders"}
    assert await detector.poll_once() == set() and detector.errors == 1
    assert await detector.poll_once() == set() and detector.errors == 2  # logged with its traceback
    assert detector.status()["last_change"]["tables"] == ["orders"]


async def test_changes_are_delivered_coalesced_and_a_failing_callback_does_not_stop_delivery() -> None:
    delivered: list[set[str]] = []
    release = asyncio.Event()

    async def on_change(tables: set[str]) -> None:
        delivered.append(tables)
        if len(delivered) == 1:
            await release.wait()  # slow consumer: what arrives meanwhile is coalesced
            raise RuntimeError("consumer bug")

    detector = Scripted(on_change, [{"a"}, {"b"}, {"c"}])
    detector.watch({"a", "b", "c"})
    await detector.start()
    try:
        async with asyncio.timeout(5):
            while not delivered:
                await asyncio.sleep(0.005)
            while detector.polls < 3:
                await asyncio.sleep(0.005)
        release.set()
        async with asyncio.timeout(5):
            while len(delivered) < 2:
                await asyncio.sleep(0.005)
    finally:
        await detector.stop()
    assert delivered == [{"a"}, {"b", "c"}]
    assert detector.errors == 1
