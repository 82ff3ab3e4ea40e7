"""Each connector against its real engine: DuckDB (the demo), SQLite (Northwind and a fresh
file), PostgreSQL (a throwaway schema in database ``test``).

Covers introspection, result values, the row cap, timeouts and cancellation that interrupt the
engine, progress reports on the event loop, and a loop that keeps running during slow queries.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from livebi.warehouse.base import Progress, QueryTimeout, Warehouse, WarehouseError
from livebi.warehouse.duckdb import DuckDBWarehouse, duckdb_path_from_url
from livebi.warehouse.postgres import PostgresWarehouse
from livebi.warehouse.registry import open_warehouse
from livebi.warehouse.safety import validate_select
from livebi.warehouse.sqlite import SQLiteWarehouse, sqlite_path_from_url

# Far too slow to finish: every test that runs these stops them.
DUCKDB_SLOW = "SELECT count(*) FROM range(100000000) a, range(1000) b WHERE (a.range * b.range) % 7 = 3"
SQLITE_SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
PG_SLOW = "SELECT pg_sleep(30)"
INTERRUPT_BOUND_S = 5.0  # coarse: interruption normally takes milliseconds


class ProgressLog:
    """Collects progress reports and checks they arrive on the event loop's thread."""

    def __init__(self) -> None:
        self.reports: list[Progress] = []
        self.loop_thread = threading.get_ident()
        self.off_loop = 0
        self.changed = asyncio.Event()

    def __call__(self, progress: Progress) -> None:
        if threading.get_ident() != self.loop_thread:
            self.off_loop += 1
        self.reports.append(progress)
        self.changed.set()

    async def wait_for(self, predicate, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate(self.reports):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


async def cancel_while_running(wh: Warehouse, sql: str, log: ProgressLog, *, min_reports: int = 2) -> float:
    """Start ``sql``, wait for progress, cancel it; return how long cancelling took."""
    task = asyncio.create_task(wh.execute(sql, timeout=60, row_cap=10, on_progress=log))
    await log.wait_for(lambda reports: len(reports) >= min_reports)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.monotonic() - started


async def timeout_takes(wh: Warehouse, sql: str, seconds: float = 0.5) -> float:
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as info:
        await wh.execute(sql, timeout=seconds, row_cap=10)
    assert info.value.code == "query_timeout"
    return time.monotonic() - started


# ============================================================================================
# registry and URLs


def test_registry_picks_connectors_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_warehouse("a", "duckdb:///:memory:"), DuckDBWarehouse)
    assert isinstance(open_warehouse("b", f"sqlite:///{tmp_path}/x.db"), SQLiteWarehouse)
    assert isinstance(open_warehouse("c", "postgresql://u@localhost/db"), PostgresWarehouse)
    assert isinstance(open_warehouse("d", "postgres://u@localhost/db"), PostgresWarehouse)
    with pytest.raises(ValueError) as info:
        open_warehouse("e", "mysql://user:secret@host/db")
    assert "unsupported" in str(info.value) and "secret" not in str(info.value)
    with pytest.raises(ValueError):
        open_warehouse("f", "just-a-path.duckdb")


def test_url_paths() -> None:
    assert duckdb_path_from_url("duckdb:///:memory:") == ":memory:"
    assert duckdb_path_from_url("duckdb:///abs/path.duckdb") == "/abs/path.duckdb"
    assert duckdb_path_from_url("duckdb:////abs/path.duckdb") == "/abs/path.duckdb"
    assert sqlite_path_from_url("sqlite:///rel.db") == "rel.db"
    assert sqlite_path_from_url("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path_from_url("sqlite:///:memory:") == ":memory:"
    assert open_warehouse("x", "duckdb:///abs.duckdb").public_info() == {"name": "x", "dialect": "duckdb"}


# ============================================================================================
# DuckDB


@pytest.fixture
async def duck(demo_duckdb: Path) -> AsyncIterator[DuckDBWarehouse]:
    wh = DuckDBWarehouse("demo", f"duckdb:///{demo_duckdb}")
    yield wh
    await wh.close()


async def test_duckdb_schema(duck: DuckDBWarehouse) -> None:
    schema = await duck.schema()
    assert {t.name for t in schema.tables} == {"customers", "products", "orders", "budget", "cash_flow"}
    orders = schema.table("ORDERS")
    assert orders is not None and orders.row_count == 20_000
    assert orders.primary_key == ("order_id",)
    assert {(fk.columns, fk.ref_table, fk.ref_columns) for fk in orders.foreign_keys} == {
        (("customer_id",), "customers", ("customer_id",)),
        (("product_id",), "products", ("product_id",)),
    }
    kinds = {c.name: c.kind for c in orders.columns}
    assert kinds["order_date"] == "date" and kinds["revenue"] == "number" and kinds["status"] == "text"
    assert orders.column("revenue").type == "DECIMAL(14,2)"
    assert await duck.schema() is schema  # cached
    assert await duck.schema(refresh=True) is not schema


async def test_duckdb_results_are_json_friendly(duck: DuckDBWarehouse) -> None:
    result = await duck.execute(
        "SELECT order_id, order_date, revenue, status, discount, TRUE AS flag, 'nan'::DOUBLE AS nan, "
        "TIMESTAMP '2024-01-02 03:04:05' AS ts, '\\xAA\\xBB'::BLOB AS raw, NULL AS nothing "
        "FROM orders ORDER BY order_id LIMIT 3",
        timeout=10,
        row_cap=100,
    )
    assert result.columns[:4] == ["order_id", "order_date", "revenue", "status"]
    assert result.column_kinds[:6] == ["number", "date", "number", "text", "number", "bool"]
    first = result.rows[0]
    assert first[0] == 1 and first[1].startswith("202") and isinstance(first[2], float)
    assert first[6] is None and first[7] == "2024-01-02T03:04:05" and first[8] == "0xaabb"
    assert result.row_count == 3 and not result.truncated and result.elapsed_ms > 0
    json.dumps(result.rows)  # plain JSON, no custom encoder


async def test_duckdb_row_cap(duck: DuckDBWarehouse) -> None:
    capped = await duck.execute("SELECT * FROM orders", timeout=10, row_cap=25)
    assert capped.truncated and capped.row_count == 25 and len(capped.rows) == 25
    exact = await duck.execute("SELECT * FROM products", timeout=10, row_cap=200)
    assert not exact.truncated and exact.row_count == 200


async def test_duckdb_timeout_interrupts(duck: DuckDBWarehouse) -> None:
    assert await timeout_takes(duck, DUCKDB_SLOW) < INTERRUPT_BOUND_S
    result = await duck.execute("SELECT count(*) FROM orders", timeout=10, row_cap=10)
    assert result.rows == [[20_000]]  # the warehouse is still usable


async def test_duckdb_progress_percent_and_cancel(duck: DuckDBWarehouse) -> None:
    log = ProgressLog()

    def rising(reports: list[Progress]) -> bool:
        values = [r.percent for r in reports if r.percent is not None]
        return len(values) >= 2 and values[-1] > values[0]

    task = asyncio.create_task(duck.execute(DUCKDB_SLOW, timeout=60, row_cap=10, on_progress=log))
    await log.wait_for(rising, timeout=15)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < INTERRUPT_BOUND_S
    percents = [r.percent for r in log.reports if r.percent is not None]
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)
    assert log.off_loop == 0
    count = len(log.reports)
    await asyncio.sleep(0.6)
    assert len(log.reports) == count  # the ticker stopped with the query


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
async def test_closing_a_warehouse_while_a_query_runs_interrupts_it_and_releases_the_file(
    engine: str, demo_duckdb: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutdown (or a test's teardown) may close a warehouse mid-query: the query must be
    interrupted, close must not fail, and the file must be released so that the next
    warehouse on it applies its own limits (DuckDB shares one instance per file and process)."""
    if engine == "duckdb":
        path = tmp_path / "demo.duckdb"
        shutil.copy(demo_duckdb, path)
        make = lambda: DuckDBWarehouse("demo", f"duckdb:///{path}")  # noqa: E731
        slow = DUCKDB_SLOW
    else:
        path = tmp_path / "x.db"
        sqlite3.connect(path).close()
        make = lambda: SQLiteWarehouse("x", f"sqlite:///{path}")  # noqa: E731
        slow = SQLITE_SLOW
    wh = make()
    log = ProgressLog()
    task = asyncio.create_task(wh.execute(slow, timeout=60, row_cap=10, on_progress=log))
    await log.wait_for(lambda reports: len(reports) >= 2)
    started = time.monotonic()
    await wh.close()
    assert time.monotonic() - started < INTERRUPT_BOUND_S
    with pytest.raises(WarehouseError) as info:
        await asyncio.wait_for(task, INTERRUPT_BOUND_S)
    assert info.value.code == "warehouse_unavailable"
    caplog.clear()
    again = make()
    try:
        log2 = ProgressLog()
        result = await again.execute("SELECT 1 AS one", timeout=10, row_cap=10, on_progress=log2)
        assert result.rows == [[1]]
    finally:
        await again.close()
    assert "already locked" not in caplog.text
    with pytest.raises(WarehouseError) as info:
        await wh.execute("SELECT 1", timeout=10, row_cap=10)
    assert info.value.code == "warehouse_unavailable"


async def test_duckdb_progress_reports_rows_and_completion(duck: DuckDBWarehouse) -> None:
    log = ProgressLog()
    result = await duck.execute("SELECT * FROM orders", timeout=30, row_cap=5000, on_progress=log)
    assert result.truncated
    assert log.reports and log.reports[-1].percent == 100.0 and log.reports[-1].rows_processed == 5001


async def test_duckdb_slow_query_does_not_block_the_loop(duck: DuckDBWarehouse) -> None:
    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.monotonic())
            await asyncio.sleep(0.05)

    beating = asyncio.create_task(heartbeat())
    try:
        # a quick query completes while a slow one runs in parallel
        slow = asyncio.create_task(duck.execute(DUCKDB_SLOW, timeout=1.5, row_cap=10))
        quick = await duck.execute("SELECT count(*) FROM customers", timeout=10, row_cap=10)
        assert quick.rows == [[200]]
        with pytest.raises(QueryTimeout):
            await slow
    finally:
        beating.cancel()
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert len(beats) >= 10 and max(gaps) < 1.0


async def test_duckdb_concurrent_queries(duck: DuckDBWarehouse) -> None:
    results = await asyncio.gather(
        *(duck.execute(f"SELECT count(*) + {i} FROM orders", timeout=10, row_cap=10) for i in range(6))
    )
    assert [r.rows[0][0] for r in results] == [20_000 + i for i in range(6)]


async def test_schema_checks_do_not_wait_behind_busy_query_workers(demo_duckdb: Path) -> None:
    """The NLP agent checks the fingerprint while questions wait for it: with every query
    worker busy, the check (and a schema read) must still be answered."""
    wh = DuckDBWarehouse("demo", f"duckdb:///{demo_duckdb}", max_concurrent_queries=2)
    slow = [asyncio.create_task(wh.execute(DUCKDB_SLOW, timeout=30, row_cap=1)) for _ in range(2)]
    try:
        await asyncio.sleep(0.2)
        assert not any(t.done() for t in slow)
        fingerprint = await asyncio.wait_for(wh.schema_fingerprint(), 10)
        schema = await asyncio.wait_for(wh.schema(refresh=True), 10)
        assert fingerprint and "orders" in {t.name for t in schema.tables}
        assert not any(t.done() for t in slow), "the checks ran after the queries, not beside them"
    finally:
        for t in slow:
            t.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
        await wh.close()


async def test_duckdb_is_read_only_and_sealed(duck: DuckDBWarehouse) -> None:
    with pytest.raises(WarehouseError) as info:
        await duck.execute("CREATE TABLE intruder (x INTEGER)", timeout=10, row_cap=10)
    assert info.value.code == "query_failed"
    with pytest.raises(WarehouseError):  # file access is off even without validation
        await duck.execute("SELECT * FROM read_csv('/etc/passwd')", timeout=10, row_cap=10)


async def test_duckdb_engine_errors(duck: DuckDBWarehouse) -> None:
    with pytest.raises(WarehouseError) as info:
        await duck.execute("SELECT no_such_column FROM orders", timeout=10, row_cap=10)
    assert info.value.code == "query_failed" and "no_such_column" in info.value.message


async def test_duckdb_distinct_values_and_validated_sql(duck: DuckDBWarehouse) -> None:
    assert set(await duck.distinct_values("customers", "region", 10)) == {
        "North America", "Europe", "Asia Pacific", "Latin America", "Middle East & Africa"
    }
    assert len(await duck.distinct_values("products", "category", 2)) == 2
    with pytest.raises(WarehouseError):
        await duck.distinct_values("customers", "nope", 5)
    schema = await duck.schema()
    sql = validate_select(
        "with t as (select customer_id, sum(revenue) rev from orders group by 1) "
        "select c.region, sum(t.rev) as revenue from t join customers c using (customer_id) "
        "group by 1 order by revenue desc",
        dialect=duck.dialect,
        schema=schema,
    )
    result = await duck.execute(sql, timeout=10, row_cap=10)
    assert result.row_count == 5 and result.rows[0][0] == "North America"


async def test_duckdb_memory_database() -> None:
    wh = open_warehouse("mem", "duckdb:///:memory:")
    try:
        assert (await wh.execute("SELECT 42 AS answer", timeout=5, row_cap=1)).rows == [[42]]
        assert (await wh.schema()).tables == ()
    finally:
        await wh.close()


# ============================================================================================
# SQLite


@pytest.fixture
async def northwind(northwind_path: Path, tmp_path: Path) -> AsyncIterator[SQLiteWarehouse]:
    copy = tmp_path / "northwind.sqlite"
    shutil.copy(northwind_path, copy)
    wh = SQLiteWarehouse("northwind", f"sqlite:///{copy}")
    yield wh
    await wh.close()


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[SQLiteWarehouse]:
    path = tmp_path / "shop.db"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, joined DATE);
        CREATE TABLE item (sku TEXT, variant INTEGER, price NUMERIC(10,2), PRIMARY KEY (sku, variant));
        CREATE TABLE sale (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER REFERENCES customer,
            sku TEXT, variant INTEGER,
            sold_at TIMESTAMP, paid BOOLEAN, note BLOB,
            FOREIGN KEY (sku, variant) REFERENCES item (sku, variant)
        );
        INSERT INTO customer VALUES (1, 'Ada', '2024-01-05'), (2, 'Linus', '2024-02-10');
        INSERT INTO item VALUES ('A', 1, 9.5), ('A', 2, 12.25), ('B', 1, 100);
        INSERT INTO sale VALUES (1, 1, 'A', 1, '2024-03-01 10:00:00', 1, x'00ff'),
                                (2, 2, 'B', 1, '2024-03-02 11:30:00', 0, NULL),
                                (3, 1, 'A', 2, '2024-03-03 09:15:00', 1, NULL);
        """
    )
    con.commit()
    con.close()
    wh = SQLiteWarehouse("shop", f"sqlite:///{path}")
    yield wh
    await wh.close()


async def test_sqlite_northwind_schema(northwind: SQLiteWarehouse) -> None:
    schema = await northwind.schema()
    names = {t.name for t in schema.tables}
    assert {"Order", "OrderDetail", "Product", "Customer", "ProductDetails_V"} <= names
    assert not any(n.startswith("sqlite_") for n in names)
    order = schema.table("order")
    assert order.row_count == 830 and order.primary_key == ("Id",)
    assert order.column("OrderDate").kind == "date"  # ISO text recognised as dates
    assert order.column("Freight").kind == "number"
    assert schema.table("ProductDetails_V").row_count is None  # a view


async def test_sqlite_declared_foreign_keys(shop: SQLiteWarehouse) -> None:
    sale = (await shop.schema()).table("sale")
    assert {(fk.columns, fk.ref_table, fk.ref_columns) for fk in sale.foreign_keys} == {
        (("customer_id",), "customer", ("id",)),  # implicit: the parent's primary key
        (("sku", "variant"), "item", ("sku", "variant")),
    }
    item = (await shop.schema()).table("item")
    assert item.primary_key == ("sku", "variant")
    kinds = {c.name: c.kind for c in sale.columns}
    assert kinds == {
        "id": "number", "customer_id": "number", "sku": "text", "variant": "number",
        "sold_at": "date", "paid": "bool", "note": "other",
    }


async def test_sqlite_results(shop: SQLiteWarehouse, northwind: SQLiteWarehouse) -> None:
    result = await shop.execute(
        "SELECT s.id, c.name, s.sold_at, i.price, s.note FROM sale s JOIN customer c ON c.id = s.customer_id "
        "JOIN item i ON i.sku = s.sku AND i.variant = s.variant ORDER BY s.id",
        timeout=5,
        row_cap=10,
    )
    assert result.rows[0] == [1, "Ada", "2024-03-01 10:00:00", 9.5, "0x00ff"]
    assert result.column_kinds == ["number", "text", "date", "number", "other"]
    json.dumps(result.rows)
    sql = validate_select(
        'select o.ShipCountry, count(*) as n from "Order" o join OrderDetail d on d.OrderId = o.Id '
        "group by 1 order by n desc",
        dialect="sqlite",
        schema=await northwind.schema(),
    )
    top = await northwind.execute(sql, timeout=5, row_cap=3)
    assert top.truncated and top.row_count == 3 and top.rows[0][0] == "USA"
    assert top.column_kinds == ["text", "number"]


async def test_sqlite_timeout_and_cancel_interrupt(shop: SQLiteWarehouse) -> None:
    assert await timeout_takes(shop, SQLITE_SLOW) < INTERRUPT_BOUND_S
    log = ProgressLog()
    assert await cancel_while_running(shop, SQLITE_SLOW, log) < INTERRUPT_BOUND_S
    assert all(r.percent is None for r in log.reports) and log.off_loop == 0
    assert (await shop.execute("SELECT count(*) FROM sale", timeout=5, row_cap=1)).rows == [[3]]


async def test_sqlite_is_read_only(shop: SQLiteWarehouse) -> None:
    with pytest.raises(WarehouseError) as info:
        await shop.execute("DELETE FROM sale", timeout=5, row_cap=1)
    assert info.value.code == "query_failed"
    assert (await shop.execute("SELECT count(*) FROM sale", timeout=5, row_cap=1)).rows == [[3]]


async def test_sqlite_concurrency_keeps_the_loop_free(shop: SQLiteWarehouse) -> None:
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0.05)

    beating = asyncio.create_task(heartbeat())
    try:
        slow = asyncio.create_task(shop.execute(SQLITE_SLOW, timeout=1.0, row_cap=1))
        quick = await asyncio.gather(*(shop.execute("SELECT count(*) FROM customer", timeout=5, row_cap=1) for _ in range(4)))
        assert [r.rows for r in quick] == [[[2]]] * 4
        with pytest.raises(QueryTimeout):
            await slow
    finally:
        beating.cancel()
    assert beats >= 10


async def test_sqlite_distinct_values(northwind: SQLiteWarehouse) -> None:
    countries = await northwind.distinct_values("Customer", "Country", 3)
    assert len(countries) == 3 and countries[0] in ("USA", "Germany", "France")


# ============================================================================================
# PostgreSQL


@pytest.fixture
async def pg(pg_readonly) -> AsyncIterator[PostgresWarehouse]:
    """The test tables in a throwaway schema, queried as a role that may only read them."""
    schema = pg_readonly.schema
    await pg_readonly.admin.execute(
        f"""
        CREATE TABLE {schema}.region (id int PRIMARY KEY, name text NOT NULL);
        CREATE TABLE {schema}.account (
            id serial PRIMARY KEY,
            name varchar(40) NOT NULL,
            region_id int REFERENCES {schema}.region (id),
            opened date,
            active boolean,
            balance numeric(12, 2),
            updated_at timestamptz DEFAULT '2024-05-06 07:08:09+00'
        );
        INSERT INTO {schema}.region VALUES (1, 'North'), (2, 'South');
        INSERT INTO {schema}.account (name, region_id, opened, active, balance)
        SELECT 'acct ' || g, 1 + g % 2, date '2024-01-01' + g, g % 3 = 0, g * 1.25
        FROM generate_series(1, 3000) g;
        """
    )
    wh = PostgresWarehouse("pg", pg_readonly.dsn)
    try:
        yield wh
    finally:
        await wh.close()


@pytest.mark.postgres
async def test_postgres_schema(pg: PostgresWarehouse) -> None:
    schema = await pg.schema()
    assert {t.name for t in schema.tables} == {"region", "account"}
    account = schema.table("account")
    assert account.primary_key == ("id",) and account.row_count == 3000
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in account.foreign_keys] == [
        (("region_id",), "region", ("id",))
    ]
    kinds = {c.name: c.kind for c in account.columns}
    assert kinds == {
        "id": "number", "name": "text", "region_id": "number", "opened": "date",
        "active": "bool", "balance": "number", "updated_at": "date",
    }


@pytest.mark.postgres
async def test_postgres_results_and_row_cap(pg: PostgresWarehouse) -> None:
    result = await pg.execute(
        "SELECT a.id, a.name, r.name AS region, a.opened, a.active, a.balance, a.updated_at "
        "FROM account a JOIN region r ON r.id = a.region_id ORDER BY a.id",
        timeout=10,
        row_cap=50,
    )
    assert result.truncated and result.row_count == 50
    assert result.rows[0] == [1, "acct 1", "South", "2024-01-02", False, 1.25, "2024-05-06T07:08:09+00:00"]
    assert result.column_kinds == ["number", "text", "text", "date", "bool", "number", "date"]
    json.dumps(result.rows)
    whole = await pg.execute("SELECT * FROM region", timeout=10, row_cap=2)
    assert not whole.truncated and whole.row_count == 2
    sql = validate_select(
        "select r.name, sum(a.balance) as total from account a join region r on r.id = a.region_id group by 1",
        dialect=pg.dialect,
        schema=await pg.schema(),
    )
    assert (await pg.execute(sql, timeout=10, row_cap=10)).row_count == 2


@pytest.mark.postgres
async def test_postgres_streams_rows_with_progress(pg: PostgresWarehouse) -> None:
    log = ProgressLog()
    # ~1 ms per row: 1000 rows arrive over about a second, 250 at a time
    result = await pg.execute(
        "SELECT id, pg_sleep(0.0005) FROM account WHERE id % 3 = 0 ORDER BY id",
        timeout=20,
        row_cap=10_000,
        on_progress=log,
    )
    assert result.row_count == 1000 and log.off_loop == 0
    counts = [r.rows_processed for r in log.reports]
    assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] == 1000
    assert any(0 < c < 1000 for c in counts)  # seen mid-stream
    assert all(r.percent is None for r in log.reports[:-1])


@pytest.mark.postgres
async def test_postgres_timeout_and_cancel(pg: PostgresWarehouse, pg_readonly) -> None:
    assert await timeout_takes(pg, PG_SLOW) < INTERRUPT_BOUND_S
    log = ProgressLog()
    assert await cancel_while_running(pg, PG_SLOW, log) < INTERRUPT_BOUND_S
    # the server stopped the statement (whatever wrapping the connector added), and the pool
    # still works
    for _ in range(40):
        running = await pg_readonly.admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%pg_sleep(30)%' "
            "AND state = 'active'",
            pg_readonly.role,
        )
        if running == 0:
            break
        await asyncio.sleep(0.1)
    assert running == 0
    assert (await pg.execute("SELECT count(*) FROM region", timeout=5, row_cap=1)).rows == [[2]]


@pytest.mark.postgres
async def test_postgres_is_read_only(pg: PostgresWarehouse) -> None:
    with pytest.raises(WarehouseError) as info:
        await pg.execute("DELETE FROM account", timeout=5, row_cap=1)
    assert info.value.code == "query_failed" and "read-only" in info.value.message
    with pytest.raises(WarehouseError):
        await pg.execute("SELECT nope FROM account", timeout=5, row_cap=1)
    assert (await pg.execute("SELECT count(*) FROM account", timeout=5, row_cap=1)).rows == [[3000]]


@pytest.mark.postgres
async def test_postgres_distinct_values(pg: PostgresWarehouse) -> None:
    assert sorted(await pg.distinct_values("region", "name", 10)) == ["North", "South"]


@pytest.mark.postgres
async def test_postgres_unreachable_server() -> None:
    wh = PostgresWarehouse("down", "postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(WarehouseError) as info:
        await wh.execute("SELECT 1", timeout=5, row_cap=1)
    assert info.value.code == "warehouse_unavailable"
