"""The ingest service on real engines: DuckDB (opened read-write), SQLite (a writer connection of
its own), PostgreSQL (a writer URL); the demo's live simulator and its dashboard."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from livebi.auth import User
from livebi.demo.generate import DEMO_TODAY
from livebi.demo.live import (
    LIVE_DASHBOARD_TITLE,
    OrderSimulator,
    ensure_live_dashboard,
    live_widgets,
)
from livebi.live.ingest import IngestError, IngestService
from livebi.permissions import WarehouseAccess
from livebi.store import MetadataStore
from livebi.warehouse import WarehouseError, validate_select
from livebi.warehouse.duckdb import DuckDBWarehouse
from livebi.warehouse.postgres import PostgresWarehouse
from livebi.warehouse.registry import open_warehouse
from livebi.warehouse.sqlite import SQLiteWarehouse

ALICE = User("u_alice", "alice")
BOB = User("u_bob", "bob")


def order(order_id: int, **overrides: Any) -> dict[str, Any]:
    row = {"order_id": order_id, "order_date": "2025-12-31", "customer_id": 1, "product_id": 1, "quantity": 2,
           "unit_price": 10.5, "discount": 0.0, "revenue": 21.0, "cost": 12.0, "channel": "Online",
           "status": "completed", "created_at": "2025-12-31T09:00:00Z"}
    return {**row, **overrides}


class Changes:
    """The injected change callback: records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, set[str]]] = []

    async def __call__(self, warehouse: str, tables: set[str]) -> None:
        self.calls.append((warehouse, tables))


async def scalar(wh, sql: str) -> Any:
    return (await wh.execute(sql, timeout=10, row_cap=10)).rows[0][0]


@pytest.fixture
async def duck(demo_duckdb: Path, tmp_path: Path) -> AsyncIterator[DuckDBWarehouse]:
    """A read-write copy of the demo warehouse (the session's own file stays untouched)."""
    path = tmp_path / "demo.duckdb"
    shutil.copy(demo_duckdb, path)
    wh = open_warehouse("demo", f"duckdb:///{path}", read_only=False)
    yield wh
    await wh.close()


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
async def ingest(duck: DuckDBWarehouse, changes: Changes) -> AsyncIterator[IngestService]:
    service = IngestService({"demo": duck}, {"demo": ["alice"]}, changes,
                            warehouse_access=WarehouseAccess({}, ["demo"]))
    yield service
    await service.close()


# -- DuckDB ------------------------------------------------------------------------------------


async def test_valid_rows_are_visible_to_a_query_and_signalled_once(ingest: IngestService, duck, changes: Changes) -> None:
    before = await scalar(duck, "SELECT count(*) FROM orders")
    mixed_case = {("Channel" if k == "channel" else k): v for k, v in order(900_002, revenue="1234.565").items()}
    rows = [order(900_001), {**mixed_case, "Channel": "Partner"}]
    assert await ingest.insert(ALICE, "demo", "ORDERS", rows) == {"warehouse": "demo", "table": "orders", "inserted": 2}
    assert await scalar(duck, "SELECT count(*) FROM orders") == before + 2
    result = await duck.execute("SELECT revenue, channel, created_at FROM orders WHERE order_id = 900002", timeout=10, row_cap=1)
    assert result.rows == [[1234.56, "Partner", "2025-12-31T09:00:00"]]  # half-even, the UTC time
    assert changes.calls == [("demo", {"orders"})]


@pytest.mark.parametrize("bad, column, message", [
    ({"quantity": "two"}, "quantity", "expected an integer, got a string"),
    ({"quantity": 2**31}, "quantity", "out of range"),
    ({"revenue": 10**13}, "revenue", "out of range for DECIMAL(14,2)"),
    ({"order_date": "tomorrow"}, "order_date", "expected a date"),
    ({"colour": "red"}, "colour", "has no column 'colour'"),
    ({"status": None}, "status", "must not be null"),
])
async def test_each_kind_of_bad_row_writes_nothing(ingest: IngestService, duck, changes: Changes, bad, column, message) -> None:
    before = await scalar(duck, "SELECT count(*) FROM orders")
    with pytest.raises(IngestError) as info:
        await ingest.insert(ALICE, "demo", "orders", [order(900_010), order(900_011, **bad)])
    assert (info.value.code, info.value.status) == ("invalid_rows", 400)
    [problem] = info.value.details
    assert problem["row"] == 1 and problem["column"] == column and message in problem["message"]
    assert await scalar(duck, "SELECT count(*) FROM orders") == before
    assert changes.calls == []


async def test_a_missing_required_column_and_an_engine_refusal_write_nothing(ingest: IngestService, duck, changes: Changes) -> None:
    before = await scalar(duck, "SELECT count(*) FROM orders")
    partial = order(900_020)
    del partial["customer_id"]
    with pytest.raises(IngestError) as info:
        await ingest.insert(ALICE, "demo", "orders", [partial])
    assert info.value.details == [{"row": 0, "column": "customer_id", "message": "missing: the column is NOT NULL and has no default"}]
    # the second row reuses an existing key: the first (valid) one must not stay either
    with pytest.raises(IngestError) as info:
        await ingest.insert(ALICE, "demo", "orders", [order(900_021), order(1)])
    assert (info.value.code, info.value.status) == ("rows_rejected", 409)
    assert "primary key" in info.value.message.lower()
    with pytest.raises(IngestError) as info:  # a foreign key the engine enforces
        await ingest.insert(ALICE, "demo", "orders", [order(900_022, customer_id=10**6)])
    assert info.value.code == "rows_rejected" and "foreign key" in info.value.message.lower()
    assert await scalar(duck, "SELECT count(*) FROM orders") == before
    assert changes.calls == []


async def test_who_and_where_are_checked_before_anything(duck: DuckDBWarehouse, tmp_path: Path, changes: Changes) -> None:
    other = open_warehouse("other", f"duckdb:///{tmp_path / 'other.duckdb'}", read_only=False)
    await asyncio.to_thread(lambda: duck.connection().execute("CREATE VIEW big_orders AS SELECT * FROM orders WHERE revenue > 1000"))
    await duck.schema(refresh=True)
    service = IngestService({"demo": duck, "other": other}, {"demo": ["alice"]}, changes,
                            warehouse_access=WarehouseAccess({"other": ["alice"]}, ["demo", "other"]))
    try:
        cases = [
            (BOB, "demo", "orders", "forbidden", 403),
            (ALICE, "nope", "orders", "unknown_warehouse", 404),
            (BOB, "other", "orders", "forbidden", 403),  # bob may not even query it
            (ALICE, "other", "orders", "ingest_disabled", 409),  # not listed in ingest_access
            (ALICE, "demo", "no_such_table", "unknown_table", 404),
            (ALICE, "demo", "big_orders", "not_a_table", 400),
            (ALICE, "demo", 'orders"; DROP TABLE orders; --', "unknown_table", 404),
        ]
        for user, warehouse, table, code, status in cases:
            with pytest.raises(IngestError) as info:
                await service.insert(user, warehouse, table, [order(900_030)])
            assert (info.value.code, info.value.status) == (code, status), (user, warehouse, table, info.value.message)
        with pytest.raises(IngestError, match="rows is empty"):
            await service.insert(ALICE, None, "orders", [])
        with pytest.raises(IngestError) as info:
            await service.insert(ALICE, "demo", "orders", [order(1)] * (service.max_rows + 1))
        assert info.value.code == "too_large"
        assert await scalar(duck, "SELECT count(*) FROM orders WHERE order_id = 900030") == 0
        assert changes.calls == []
    finally:
        await service.close()
        await other.close()


async def test_concurrent_inserts_all_land_and_each_signals_once(ingest: IngestService, duck, changes: Changes) -> None:
    before = await scalar(duck, "SELECT count(*) FROM orders")
    results = await asyncio.gather(*(
        ingest.insert(ALICE, "demo", "orders", [order(910_000 + batch * 100 + i) for i in range(50)])
        for batch in range(20)
    ))
    assert [r["inserted"] for r in results] == [50] * 20
    assert await scalar(duck, "SELECT count(*) FROM orders") == before + 1000
    assert changes.calls == [("demo", {"orders"})] * 20


async def test_a_caller_that_goes_away_mid_write_still_gets_its_rows_signalled(ingest: IngestService, duck, changes: Changes) -> None:
    writer = ingest._writers["demo"]
    real_insert, writing, release = writer.insert, asyncio.Event(), asyncio.Event()

    async def held(target, batches):
        writing.set()
        await release.wait()
        return await real_insert(target, batches)

    writer.insert = held  # type: ignore[method-assign]
    caller = asyncio.create_task(ingest.insert(ALICE, "demo", "orders", [order(900_050)]))
    await writing.wait()
    caller.cancel()  # e.g. the client disconnected
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(100):
        if changes.calls:
            break
        await asyncio.sleep(0.02)
    assert changes.calls == [("demo", {"orders"})]
    assert await scalar(duck, "SELECT count(*) FROM orders WHERE order_id = 900050") == 1


async def test_a_broken_change_listener_does_not_fail_a_committed_insert(duck: DuckDBWarehouse) -> None:
    errors = []

    async def broken(warehouse: str, tables: set[str]) -> None:
        raise RuntimeError("listener bug")

    service = IngestService({"demo": duck}, {"demo": []}, broken, on_internal_error=lambda: errors.append(1))
    try:
        assert (await service.insert(None, "demo", "orders", [order(900_040)]))["inserted"] == 1
    finally:
        await service.close()
    assert errors == [1]
    assert await scalar(duck, "SELECT count(*) FROM orders WHERE order_id = 900040") == 1


async def test_a_read_write_duckdb_warehouse_stays_locked_down_for_queries(duck: DuckDBWarehouse) -> None:
    assert not duck.read_only
    assert await scalar(duck, "SELECT current_setting('enable_external_access')") is False
    assert await scalar(duck, "SELECT current_setting('lock_configuration')") is True
    with pytest.raises(WarehouseError, match="only a single SELECT"):
        await duck.execute("CREATE TABLE intruder (x INTEGER)", timeout=10, row_cap=1)
    with pytest.raises(WarehouseError, match="only a single SELECT"):
        await duck.execute("DELETE FROM orders", timeout=10, row_cap=1)
    with pytest.raises(WarehouseError):
        await duck.execute("SELECT * FROM read_csv('/etc/passwd')", timeout=10, row_cap=1)
    with pytest.raises(WarehouseError):
        await duck.execute("SELECT 1 FROM (SELECT 1) t, (SELECT set_config('enable_external_access', 'true'))", timeout=10, row_cap=1)


async def test_a_read_only_duckdb_warehouse_refuses_ingest_clearly(demo_duckdb: Path, changes: Changes) -> None:
    wh = DuckDBWarehouse("demo", f"duckdb:///{demo_duckdb}")
    service = IngestService({"demo": wh}, {"demo": ["alice"]}, changes)
    try:
        assert not service.writable("demo")
        with pytest.raises(IngestError) as info:
            await service.insert(ALICE, "demo", "orders", [order(1)])
        assert info.value.code == "ingest_disabled" and "read-only" in info.value.message
    finally:
        await service.close()
        await wh.close()


# -- SQLite ------------------------------------------------------------------------------------


@pytest.fixture
def shop_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        con.executescript(
            """
            CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, joined DATE);
            CREATE TABLE sale (
                id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customer (id),
                amount NUMERIC(10,2) NOT NULL, sold_at TIMESTAMP, paid BOOLEAN DEFAULT 0,
                doubled REAL GENERATED ALWAYS AS (amount * 2) VIRTUAL
            );
            CREATE VIEW big_sale AS SELECT * FROM sale WHERE amount > 100;
            INSERT INTO customer (name, joined) VALUES ('Ada', '2024-01-02');
            """
        )
    return path


async def test_sqlite_ingest_uses_a_writable_connection_of_its_own(shop_path: Path, changes: Changes) -> None:
    wh = SQLiteWarehouse("shop", f"sqlite:///{shop_path}")  # read-only, as a server opens it
    service = IngestService({"shop": wh}, {"shop": ["alice"]}, changes)
    try:
        rows = [{"customer_id": 1, "amount": "19.999", "sold_at": "2025-12-31T10:00:00+01:00", "paid": True},
                {"customer_id": 1, "amount": 5}]
        assert (await service.insert(ALICE, "shop", "sale", rows))["inserted"] == 2
        result = await wh.execute("SELECT id, amount, sold_at, paid, doubled FROM sale ORDER BY id", timeout=10, row_cap=10)
        assert result.rows == [[1, 20.0, "2025-12-31 09:00:00", 1, 40.0], [2, 5, None, 0, 10.0]]
        assert changes.calls == [("shop", {"sale"})]
        # the warehouse's own connections still cannot write
        with pytest.raises(WarehouseError):
            await wh.execute("INSERT INTO customer (name) VALUES ('Eve')", timeout=10, row_cap=1)
        # a foreign key SQLite only enforces when asked: the writer asks
        with pytest.raises(IngestError) as info:
            await service.insert(ALICE, "shop", "sale", [{"customer_id": 1, "amount": 1}, {"customer_id": 99, "amount": 1}])
        assert info.value.code == "rows_rejected" and "FOREIGN KEY" in info.value.message
        with pytest.raises(IngestError) as info:
            await service.insert(ALICE, "shop", "sale", [{"customer_id": 1, "amount": 1, "doubled": 2}])
        assert info.value.details[0]["message"] == "the database computes this column; leave it out"
        with pytest.raises(IngestError) as info:
            await service.insert(ALICE, "shop", "big_sale", [{"customer_id": 1, "amount": 1}])
        assert info.value.code == "not_a_table"
        assert await scalar(wh, "SELECT count(*) FROM sale") == 2
    finally:
        await service.close()
        await wh.close()


# -- PostgreSQL ----------------------------------------------------------------------------------


async def test_postgres_ingest_goes_through_the_writer_url(pg_readonly, changes: Changes) -> None:
    schema, admin = pg_readonly.schema, pg_readonly.admin
    writer = f"{pg_readonly.role}_w"
    await admin.execute(
        f"""
        CREATE TYPE {schema}.mood AS ENUM ('calm', 'busy');
        CREATE TABLE {schema}.events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name varchar(20) NOT NULL UNIQUE,
            amount numeric(8,2) NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            day date, ok boolean, payload jsonb, ref uuid, mood {schema}.mood
        );
        CREATE TABLE {schema}.locked (x int);
        CREATE ROLE {writer} LOGIN;
        GRANT USAGE ON SCHEMA {schema} TO {writer};
        GRANT INSERT ON {schema}.events TO {writer};
        """
    )
    wh = PostgresWarehouse("pg", pg_readonly.dsn)
    try:
        await wh.check_access()  # the query role is still read-only
        service = IngestService({"pg": wh}, {"pg": ["alice"]}, changes, writer_urls={"pg": pg_readonly.dsn_for(writer)})
        try:
            rows = [{"name": "first", "amount": "12.345", "day": "2025-12-31", "ok": True, "payload": {"k": [1]},
                     "ref": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "mood": "busy", "at": "2025-12-31T10:00:00Z"},
                    {"name": "second", "amount": 3}]
            assert await service.insert(ALICE, "pg", "events", rows) == {"warehouse": "pg", "table": "events", "inserted": 2}
            result = await wh.execute("SELECT id, name, amount, day, ok, payload, ref, mood FROM events ORDER BY id",
                                      timeout=10, row_cap=10)
            assert result.rows == [
                [1, "first", 12.34, "2025-12-31", True, '{"k": [1]}', "7c9e6679-7425-40de-944b-e07fc1f90ae7", "busy"],
                [2, "second", 3.0, None, None, None, None, None],
            ]
            assert changes.calls == [("pg", {"events"})]
            with pytest.raises(IngestError) as info:  # unique violation in the second row: neither stays
                await service.insert(ALICE, "pg", "events", [{"name": "third", "amount": 1}, {"name": "first", "amount": 1}])
            assert info.value.code == "rows_rejected"
            with pytest.raises(IngestError) as info:  # an enum label the engine does not know
                await service.insert(ALICE, "pg", "events", [{"name": "fourth", "amount": 1, "mood": "angry"}])
            assert info.value.code == "rows_rejected"
            with pytest.raises(IngestError) as info:
                await service.insert(ALICE, "pg", "events", [{"id": 5, "name": "fifth", "amount": 1}])
            assert info.value.details == [{"row": 0, "column": "id", "message": "the database computes this column; leave it out"}]
            with pytest.raises(IngestError) as info:  # the writer role has no INSERT on it
                await service.insert(ALICE, "pg", "locked", [{"x": 1}])
            assert info.value.code == "ingest_disabled"
            assert await scalar(wh, "SELECT count(*) FROM events") == 2
        finally:
            await service.close()
        no_url = IngestService({"pg": wh}, {"pg": ["alice"]}, changes)
        with pytest.raises(IngestError) as info:
            await no_url.insert(ALICE, "pg", "events", rows)
        assert info.value.code == "ingest_disabled" and "ingest_urls" in info.value.message
    finally:
        await wh.close()
        await admin.execute(f"DROP OWNED BY {writer}; DROP ROLE IF EXISTS {writer}")


def test_writer_urls_only_for_configured_postgres_warehouses(duck: DuckDBWarehouse, changes: Changes) -> None:
    with pytest.raises(ValueError, match="ingest_access names warehouses that are not configured: 'nope'"):
        IngestService({"demo": duck}, {"nope": []}, changes)
    with pytest.raises(ValueError, match="writer URLs are for PostgreSQL"):
        IngestService({"demo": duck}, {"demo": []}, changes, writer_urls={"demo": "postgresql://x@h/db"})


# -- the live demo ---------------------------------------------------------------------------------


async def test_the_simulator_inserts_at_its_rate_through_ingest_and_stops(ingest: IngestService, duck, changes: Changes) -> None:
    before = await scalar(duck, "SELECT count(*) FROM orders")
    simulator = OrderSimulator(ingest, "demo", rate=20, today=DEMO_TODAY, seed=3)
    simulator.start()
    await asyncio.sleep(2.0)
    await simulator.stop()
    assert not simulator.running and simulator.failures == 0
    inserted = await scalar(duck, "SELECT count(*) FROM orders") - before
    assert inserted == simulator.inserted and 25 <= inserted <= 45, inserted  # ~20/s for 2 s, less start-up
    assert changes.calls and set(map(repr, changes.calls)) == {repr(("demo", {"orders"}))}
    assert len(changes.calls) <= inserted  # one signal per insert, which carries 1+ orders
    assert await scalar(duck, f"SELECT count(*) FROM orders WHERE order_date = DATE '{DEMO_TODAY}' AND created_at IS NOT NULL") == inserted
    await asyncio.sleep(0.5)
    assert await scalar(duck, "SELECT count(*) FROM orders") - before == inserted, "it stopped"


def test_the_simulator_needs_a_writable_warehouse(changes: Changes, duck: DuckDBWarehouse) -> None:
    service = IngestService({"demo": duck}, {}, changes)
    with pytest.raises(ValueError, match="list it in ingest_access"):
        OrderSimulator(service, "demo", rate=1)


async def test_live_widgets_move_when_orders_arrive(ingest: IngestService, duck: DuckDBWarehouse) -> None:
    simulator = OrderSimulator(ingest, "demo", rate=50, today=DEMO_TODAY, seed=5)
    schema = await duck.schema()
    widgets = live_widgets(DEMO_TODAY)

    async def results() -> list[list]:
        out = []
        for widget in widgets:
            sql = validate_select(widget["sql"], dialect="duckdb", schema=schema)
            out.append((await duck.execute(sql, timeout=10, row_cap=100)).rows)
        return out

    await simulator._load()
    await ingest.insert(None, "demo", "orders", simulator.orders(5))
    first = await results()
    await ingest.insert(None, "demo", "orders", simulator.orders(40))
    second = await results()
    for widget, a, b in zip(widgets, first, second, strict=True):
        assert a != b, f"{widget['title']} did not move"
        assert widget["refresh"] == {"on_data_change": True, "interval_s": 30}
    assert second[0][0][0] > first[0][0][0]  # today's revenue grew


async def test_the_live_dashboard_is_created_once_public_and_repaired(tmp_path: Path) -> None:
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        await store.add_user("demo", "x")
        first = await ensure_live_dashboard(store, today=DEMO_TODAY)
        assert await ensure_live_dashboard(store, today=DEMO_TODAY) == first  # idempotent
        demo = await store.get_user(username="demo")
        from livebi.store.dashboards import DashboardStore

        dashboards = DashboardStore(store.engine)
        rows = await dashboards.list_for(demo["id"])
        assert [r["snapshot"]["title"] for r in rows] == [LIVE_DASHBOARD_TITLE]
        snapshot = rows[0]["snapshot"]
        assert snapshot["public"] and snapshot["owner"]["username"] == "demo" and snapshot["version"] == 4
        assert [w["title"] for w in snapshot["widgets"]] == [w["title"] for w in live_widgets(DEMO_TODAY)]
        assert all(w["sql"] and w["refresh"]["on_data_change"] for w in snapshot["widgets"])
        # another "today": the date-bound widgets follow it, nothing is duplicated
        assert await ensure_live_dashboard(store, today=dt.date(2024, 6, 30)) == first
        snapshot = (await dashboards.get(first))["snapshot"]
        assert len(snapshot["widgets"]) == 4
        assert sum("DATE '2024-06-30'" in w["sql"] for w in snapshot["widgets"]) == 2
    finally:
        await store.close()
