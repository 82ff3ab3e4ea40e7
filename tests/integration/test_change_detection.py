"""Change detection against real engines: DuckDB, SQLite (writes from another connection and
another process) and PostgreSQL (rows inserted directly, with and without the triggers; a
dropped LISTEN connection reconnects). Nothing watched: no statement reaches the engine."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from livebi.warehouse.changes import (
    ChangeDetector,
    DuckDBChangeDetector,
    SQLiteChangeDetector,
    change_detector_for,
)
from livebi.warehouse.duckdb import DuckDBWarehouse
from livebi.warehouse.sqlite import SQLiteWarehouse

POLL_S = 0.05
WAIT_S = 5.0


class Changes:
    """Records what a detector reports (the ``on_change`` the live service would get)."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []
        self._queue: asyncio.Queue[set[str]] = asyncio.Queue()

    async def __call__(self, tables: set[str]) -> None:
        self.calls.append(set(tables))
        self._queue.put_nowait(set(tables))

    async def next(self, timeout: float = WAIT_S) -> set[str]:
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def until(self, table: str, timeout: float = WAIT_S) -> set[str]:
        """Tables reported until ``table`` is among them."""
        seen: set[str] = set()
        async with asyncio.timeout(timeout):
            while table not in seen:
                seen |= await self._queue.get()
        return seen

    async def none_for(self, seconds: float) -> None:
        try:
            got = await asyncio.wait_for(self._queue.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected change reported: {got}")


async def settled(detector: ChangeDetector, polls: int = 2) -> None:
    """Wait until the detector has polled ``polls`` more times (baselines recorded)."""
    target = detector.polls + polls
    async with asyncio.timeout(WAIT_S):
        while detector.polls < target:
            await asyncio.sleep(POLL_S / 2)


# ============================================================================================
# DuckDB: writes come through the process's own database instance (DuckDB locks the file
# against other processes), e.g. an ingest through the warehouse's connection


@pytest.fixture
async def duck(tmp_path: Path) -> AsyncIterator[DuckDBWarehouse]:
    path = tmp_path / "live.duckdb"
    import duckdb

    con = duckdb.connect(str(path))
    con.execute(
        """
        CREATE TABLE orders (id INTEGER, amount DOUBLE, status VARCHAR);
        INSERT INTO orders SELECT range, range * 1.5, 'new' FROM range(1000);
        CREATE TABLE customers (id INTEGER, name VARCHAR);
        INSERT INTO customers VALUES (1, 'Ada');
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
        """
    )
    con.close()
    wh = DuckDBWarehouse("live", f"duckdb:///{path}", read_only=False, max_concurrent_queries=2)
    yield wh
    await wh.close()


async def duck_write(wh: DuckDBWarehouse, sql: str) -> None:
    def run() -> None:
        cur = wh.connection().cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()

    await asyncio.to_thread(run)


async def test_duckdb_detects_inserts_deletes_and_recreated_tables_per_table(duck: DuckDBWarehouse) -> None:
    changes = Changes()
    detector = change_detector_for(duck, changes, poll_interval_s=POLL_S)
    assert isinstance(detector, DuckDBChangeDetector) and detector.method == "poll:file_stat"
    await detector.start()
    try:
        detector.watch({"orders", "Customers", "big_orders"})
        await settled(detector)
        assert changes.calls == []  # the first poll only records baselines

        await duck_write(duck, "INSERT INTO orders VALUES (5000, 999, 'new')")
        assert await changes.next() == {"orders", "big_orders"}  # a view reports under its name

        await duck_write(duck, "DELETE FROM customers WHERE id = 1")
        assert await changes.next() == {"customers"}

        # the same row count in a new table
        await duck_write(duck, "CREATE OR REPLACE TABLE customers (id INTEGER, name VARCHAR)")
        assert await changes.next() == {"customers"}

        # a write nobody watches moves the gate; no watched count moves: nothing is reported
        await duck_write(duck, "CREATE TABLE other AS SELECT 1 AS x")
        await changes.none_for(10 * POLL_S)
        assert detector.last_change is not None and detector.last_change.detected_by == "poll:file_stat"
    finally:
        await detector.stop()


async def test_duckdb_polls_run_no_query_while_nothing_changes(duck: DuckDBWarehouse) -> None:
    changes = Changes()
    detector = change_detector_for(duck, changes, poll_interval_s=POLL_S)
    await detector.start()
    try:
        await settled(detector, polls=0)
        await asyncio.sleep(5 * POLL_S)
        assert (detector.polls, detector.queries) == (0, 0)  # nothing watched: not even a poll

        detector.watch({"orders"})
        await settled(detector, polls=2)
        baseline_queries = detector.queries
        assert baseline_queries > 0
        await settled(detector, polls=5)
        assert detector.queries == baseline_queries  # the file gate is no query

        detector.watch(set())
        polls = detector.polls
        await duck_write(duck, "INSERT INTO orders VALUES (6000, 1, 'new')")
        await asyncio.sleep(5 * POLL_S)
        assert (detector.polls, detector.queries) == (polls, baseline_queries)
        assert changes.calls == []
    finally:
        await detector.stop()


async def test_duckdb_in_memory_database_counts_every_poll() -> None:
    wh = DuckDBWarehouse("mem", "duckdb:///:memory:", read_only=False, max_concurrent_queries=2)
    await duck_write(wh, "CREATE TABLE t AS SELECT range AS id, 'a' AS v FROM range(10)")
    changes = Changes()
    detector = change_detector_for(wh, changes, poll_interval_s=POLL_S)
    assert detector.method == "poll:count"
    await detector.start()
    try:
        detector.watch({"t"})
        await settled(detector)
        await changes.none_for(5 * POLL_S)
        await duck_write(wh, "INSERT INTO t VALUES (10, 'b')")
        assert await changes.next() == {"t"}
    finally:
        await detector.stop()
        await wh.close()


# ============================================================================================
# SQLite: writes by other connections and other processes


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "live.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        """
        PRAGMA journal_mode = WAL;
        CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, status TEXT);
        INSERT INTO orders (amount, status) VALUES (10, 'new'), (20, 'new'), (30, 'new');
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO customers VALUES (1, 'Ada');
        CREATE TABLE tags (name TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE VIEW big_orders AS WITH b AS (SELECT * FROM orders WHERE amount > 15) SELECT * FROM b;
        CREATE TABLE log (line TEXT);
        """
    )
    con.close()
    return path


@pytest.fixture
async def lite(sqlite_file: Path) -> AsyncIterator[SQLiteWarehouse]:
    wh = SQLiteWarehouse("lite", f"sqlite:///{sqlite_file}", max_concurrent_queries=2)
    yield wh
    await wh.close()


def write_elsewhere(path: Path, sql: str) -> None:
    """Commit ``sql`` from another process (as an application writing the file would)."""
    script = textwrap.dedent(
        f"""
        import sqlite3
        con = sqlite3.connect({str(path)!r})
        con.executescript({sql!r})
        con.commit()
        con.close()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)


async def test_sqlite_detects_writes_from_another_process(lite: SQLiteWarehouse, sqlite_file: Path) -> None:
    changes = Changes()
    detector = change_detector_for(lite, changes, poll_interval_s=POLL_S)
    assert isinstance(detector, SQLiteChangeDetector) and detector.method == "poll:data_version"
    await detector.start()
    try:
        detector.watch({"orders", "customers", "big_orders", "tags"})
        await settled(detector)
        assert changes.calls == []

        await asyncio.to_thread(write_elsewhere, sqlite_file, "INSERT INTO orders (amount, status) VALUES (99, 'new');")
        assert await changes.next() == {"orders", "big_orders"}

        await asyncio.to_thread(write_elsewhere, sqlite_file, "DELETE FROM customers WHERE id = 1;")
        assert await changes.next() == {"customers"}

        await asyncio.to_thread(write_elsewhere, sqlite_file, "INSERT INTO tags VALUES ('vip');")
        assert await changes.next() == {"tags"}
        assert detector.unattributed == 0
    finally:
        await detector.stop()


async def test_sqlite_update_in_place_reports_every_watched_table(lite: SQLiteWarehouse, sqlite_file: Path) -> None:
    changes = Changes()
    detector = change_detector_for(lite, changes, poll_interval_s=POLL_S)
    await detector.start()
    try:
        detector.watch({"orders", "customers"})
        await settled(detector)
        # another connection in this process (a writable one, as an ingest path would have)
        writer = sqlite3.connect(sqlite_file)
        writer.execute("UPDATE orders SET status = 'shipped' WHERE id = 2")
        writer.commit()
        writer.close()
        assert await changes.next() == {"orders", "customers"}
        assert detector.unattributed == 1
    finally:
        await detector.stop()


async def test_sqlite_runs_only_the_gate_while_unchanged_and_nothing_while_unwatched(
    lite: SQLiteWarehouse, sqlite_file: Path
) -> None:
    statements: list[str] = []
    connect = lite.connect

    def traced() -> sqlite3.Connection:  # the engine's own trace hook on the detector's connection
        conn = connect()
        conn.set_trace_callback(statements.append)
        return conn

    lite.connect = traced  # type: ignore[method-assign]
    changes = Changes()
    detector = change_detector_for(lite, changes, poll_interval_s=POLL_S)
    await detector.start()
    try:
        await asyncio.sleep(5 * POLL_S)
        assert statements == [] and detector.queries == 0  # nothing watched: nothing runs

        detector.watch({"orders"})
        await settled(detector, polls=1)
        statements.clear()
        await settled(detector, polls=4)
        assert statements and set(statements) == {"PRAGMA data_version"}
        assert detector.queries >= len(statements)

        detector.watch(set())
        await settled(detector, polls=0)
        await asyncio.sleep(3 * POLL_S)  # the poll running at watch() time may still finish
        statements.clear()
        await asyncio.to_thread(write_elsewhere, sqlite_file, "INSERT INTO log VALUES ('x');")
        await asyncio.sleep(5 * POLL_S)
        assert statements == [] and changes.calls == []
    finally:
        await detector.stop()


# ============================================================================================
# PostgreSQL: a throwaway database, the warehouse as a read-only role


class PgSetup:
    def __init__(self, admin_dsn: str, reader_dsn: str, admin: Any) -> None:
        self.admin_dsn = admin_dsn
        self.reader_dsn = reader_dsn
        self.admin = admin

    async def write(self, sql: str) -> None:
        """Run ``sql`` on a fresh connection and disconnect (as ``psql -c`` would)."""
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@pytest.fixture
async def pg(pg_database: str) -> AsyncIterator[PgSetup]:
    import asyncpg

    from tests.conftest import role_dsn

    role = f"livebi_live_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_database)
    await admin.execute(
        f"""
        CREATE TABLE orders (id serial PRIMARY KEY, amount numeric, status text);
        INSERT INTO orders (amount, status) SELECT g, 'new' FROM generate_series(1, 100) g;
        CREATE TABLE customers (id int PRIMARY KEY, name text);
        CREATE TABLE log (line text);
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 50;
        CREATE ROLE {role} LOGIN;
        GRANT USAGE ON SCHEMA public TO {role};
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        ALTER ROLE {role} SET temp_file_limit = '1GB';
        """
    )
    try:
        yield PgSetup(pg_database, role_dsn(pg_database, role), admin)
    finally:
        await admin.execute(f"REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}")
        await admin.close()
        import asyncpg as _asyncpg

        cluster = await _asyncpg.connect(pg_database.rsplit("/", 1)[0] + "/test")
        try:
            await cluster.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
            )
            await cluster.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await cluster.close()


@pytest.fixture
async def pg_warehouse(pg: PgSetup) -> AsyncIterator[Any]:
    from livebi.warehouse.postgres import PostgresWarehouse

    wh = PostgresWarehouse("pg", pg.reader_dsn, pool_size=2)
    await wh.check_access()  # the role really is read-only (refused otherwise)
    yield wh
    await wh.close()


def livebi_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "livebi.cli", *args], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )


async def inserts_seen(pg: PgSetup) -> int:
    await pg.admin.execute("SELECT pg_stat_clear_snapshot()")
    return await pg.admin.fetchval("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'orders'")


async def listener_count(pg: PgSetup) -> int:
    from livebi.warehouse.changes_postgres import APPLICATION_NAME

    return await pg.admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        APPLICATION_NAME,
    )


@pytest.mark.postgres
@pytest.mark.parametrize("listen", [False, True])
async def test_postgres_detects_direct_inserts_without_triggers(pg: PgSetup, pg_warehouse: Any, listen: bool) -> None:
    changes = Changes()
    detector = change_detector_for(pg_warehouse, changes, poll_interval_s=0.1, listen=listen)
    await detector.start()
    try:
        detector.watch({"orders", "big_orders", "customers"})
        await settled(detector)
        # a statement from a connection that then disconnects: its statistics are flushed at
        # exit (an idle long-lived writer's would take up to ~10 s)
        await pg.write("INSERT INTO orders (amount, status) VALUES (500, 'new')")
        assert await changes.until("orders", timeout=12) >= {"orders", "big_orders"}
        assert detector.last_change is not None and detector.last_change.detected_by.endswith("poll:pg_stat")
        assert detector.method == ("listen+poll:pg_stat" if listen else "poll:pg_stat")

        await pg.write("TRUNCATE customers")  # no counter moves: the new file node tells it
        assert "customers" in await changes.until("customers", timeout=12)

        await pg.write("INSERT INTO log VALUES ('not watched')")
        await changes.none_for(1.0)
    finally:
        await detector.stop()


@pytest.mark.postgres
async def test_postgres_triggers_notify_at_once_and_listener_reconnects(pg: PgSetup, pg_warehouse: Any) -> None:
    import asyncpg

    installed = await asyncio.to_thread(livebi_cli, "live", "install-triggers", "--url", pg.admin_dsn, "--table", "orders")
    assert installed.returncode == 0, installed.stderr
    assert "public.orders: notifies changes" in installed.stdout
    again = await asyncio.to_thread(livebi_cli, "live", "install-triggers", "--url", pg.admin_dsn, "--table", "orders")
    assert again.returncode == 0, again.stderr  # idempotent

    changes = Changes()
    # a long poll interval: only the notification can be this quick
    detector = change_detector_for(pg_warehouse, changes, poll_interval_s=30.0, listen=True)
    await detector.start()
    writer = await asyncpg.connect(pg.admin_dsn)  # long-lived: its statistics would lag ~10 s
    try:
        detector.watch({"orders", "big_orders"})
        async with asyncio.timeout(WAIT_S):
            while detector.listener_pid is None or detector.polls < 1:
                await asyncio.sleep(0.02)
        await detector.poll_once()  # learns which watched tables the triggers cover
        assert detector.method == "listen"

        inserted = await inserts_seen(pg)
        await writer.execute("INSERT INTO orders (amount, status) VALUES (700, 'new')")
        assert await changes.next() == {"orders", "big_orders"}
        assert detector.last_change.detected_by == "listen"
        # once the statistics show it too, a poll does not report it again: it was notified
        await writer.close()  # a backend flushes its statistics when it exits
        async with asyncio.timeout(WAIT_S):
            while await inserts_seen(pg) == inserted:
                await asyncio.sleep(0.05)
        writer = await asyncpg.connect(pg.admin_dsn)
        assert await detector.poll_once() == set()
        await changes.none_for(0.3)

        # the LISTEN connection is killed: it reconnects and reports what it may have missed
        old_pid = detector.listener_pid
        await pg.admin.execute("SELECT pg_terminate_backend($1)", old_pid)
        assert await changes.next() == {"orders", "big_orders"}
        assert detector.last_change.detected_by == "listen:reconnect"
        assert detector.reconnects == 1 and detector.listener_pid not in (None, old_pid)
        await writer.execute("UPDATE orders SET status = 'shipped' WHERE id = 1")
        assert await changes.next() == {"orders", "big_orders"}
        assert detector.last_change.detected_by == "listen"

        # nobody watches: the LISTEN connection goes away, nothing runs
        detector.watch(set())
        async with asyncio.timeout(WAIT_S):
            while await listener_count(pg):
                await asyncio.sleep(0.05)
        queries = detector.queries
        await writer.execute("INSERT INTO orders (amount, status) VALUES (1, 'new')")
        await asyncio.sleep(0.3)
        assert detector.queries == queries and changes.calls[-1] == {"orders", "big_orders"}
        assert len(changes.calls) == 3
    finally:
        await writer.close()
        await detector.stop()

    removed = await asyncio.to_thread(livebi_cli, "live", "remove-triggers", "--url", pg.admin_dsn)
    assert removed.returncode == 0 and "public.orders: no longer notifies" in removed.stdout
    assert await pg.admin.fetchval("SELECT count(*) FROM pg_proc WHERE proname = 'livebi_notify_change'") == 0
    removed = await asyncio.to_thread(livebi_cli, "live", "remove-triggers", "--url", pg.admin_dsn)
    assert removed.returncode == 0 and "no trigger found" in removed.stdout


@pytest.mark.postgres
async def test_postgres_nothing_watched_opens_nothing_and_runs_nothing(pg: PgSetup, pg_warehouse: Any) -> None:
    changes = Changes()
    detector = change_detector_for(pg_warehouse, changes, poll_interval_s=0.05, listen=True)
    await detector.start()
    try:
        await asyncio.sleep(0.5)
        await pg.write("INSERT INTO orders (amount, status) VALUES (1, 'new')")
        await asyncio.sleep(0.3)
        assert (detector.polls, detector.queries, detector.listener_pid) == (0, 0, None)
        assert await listener_count(pg) == 0 and changes.calls == []
    finally:
        await detector.stop()


@pytest.mark.postgres
async def test_trigger_install_errors_are_clear_and_leave_nothing_behind(pg: PgSetup) -> None:
    from livebi.warehouse.changes_postgres import TriggerError, install_triggers

    with pytest.raises(TriggerError, match="no table 'nope' in schema 'public'"):
        await install_triggers(pg.admin_dsn, tables=["orders", "nope"])
    with pytest.raises(TriggerError, match="no schema 'nope'"):
        await install_triggers(pg.admin_dsn, schema="nope")
    # the read-only role cannot: refused, nothing half-installed
    with pytest.raises(TriggerError, match="cannot install the triggers: .*permission denied"):
        await install_triggers(pg.reader_dsn)
    assert await pg.admin.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = 'livebi_notify_change'") == 0
    bad = await asyncio.to_thread(livebi_cli, "live", "install-triggers", "--url", "mysql://u:secret@h/db")
    assert bad.returncode == 1 and "not a PostgreSQL URL" in bad.stderr and "secret" not in bad.stderr
