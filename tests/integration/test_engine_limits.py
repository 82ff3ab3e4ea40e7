"""The engines lock themselves down, whatever SQL validation lets through (security issue 7).

Every attack here bypasses validation on purpose: statements go straight to a connector's
``execute()`` or to the engine connection it configured. Covers DuckDB's locked
configuration and memory limit, SQLite's authorizer, PostgreSQL's role check, read-only
transactions and temp_file_limit, results bounded while they are fetched, and the progress
cadence setting reaching the connectors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
from pathlib import Path
from typing import AsyncIterator

import duckdb
import pytest

from livebi.warehouse.base import Warehouse, WarehouseError
from livebi.warehouse.duckdb import DuckDBWarehouse
from livebi.warehouse.postgres import PostgresWarehouse, PrivilegedRole
from livebi.warehouse.registry import open_warehouse
from livebi.warehouse.sqlite import SQLiteWarehouse

from ..conftest import role_dsn
from .conftest import run_server

HUGE = 50_000_000  # characters or bytes of one value: 50 MB


def result_bytes(rows: list) -> int:
    return len(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode())


async def huge_values_are_cut(wh: Warehouse, sql: str, *, text_col: int, binary_col: int | None = None) -> None:
    """``sql`` returns 20 rows with a 50 MB text (and binary) value each: the result must be
    small, cut, flagged, and stop at the byte budget."""
    result = await wh.execute(sql, timeout=60, row_cap=1000, max_bytes=20_000, max_value_chars=1000)
    assert result.truncated
    assert 0 < result.row_count < 20, "the byte budget stopped the fetch"
    assert result_bytes(result.rows) <= 20_000
    for row in result.rows:
        assert row[text_col] == "x" * 1000 + "…"
        if binary_col is not None:
            assert row[binary_col] == f"<{HUGE} bytes>"


# ============================================================================================
# DuckDB


@pytest.fixture
def duck_file(tmp_path: Path) -> Path:
    path = tmp_path / "limits.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS id, 'v' || range AS label FROM range(1000)")
    con.close()
    return path


@pytest.fixture
async def locked_duck(duck_file: Path) -> AsyncIterator[DuckDBWarehouse]:
    wh = DuckDBWarehouse("limits", f"duckdb:///{duck_file}", memory_limit="300MB", threads=1)
    yield wh
    await wh.close()


SETTING_CHANGES = [
    "SET memory_limit = '100GB'",
    "SET GLOBAL memory_limit = '100GB'",
    "RESET memory_limit",
    "SET enable_external_access = true",
    "SET threads = 64",
    "PRAGMA threads = 64",
    "PRAGMA memory_limit = '100GB'",
    "SET lock_configuration = false",
    "SET autoload_known_extensions = true",
    "SET allow_community_extensions = true",
    "SET temp_directory = '/tmp'",
    "SET enable_progress_bar = false",
]


@pytest.mark.parametrize("statement", SETTING_CHANGES)
async def test_duckdb_settings_cannot_be_changed_after_start(locked_duck: DuckDBWarehouse, statement: str) -> None:
    assert (await locked_duck.execute("SELECT count(*) FROM t", timeout=10, row_cap=1)).rows == [[1000]]
    con = locked_duck.connection()
    for target in (con, con.cursor()):  # the parent connection and any cursor of it
        with pytest.raises(duckdb.Error, match="locked"):
            target.execute(statement)
    with pytest.raises(WarehouseError) as info:  # and through the connector
        await locked_duck.execute(statement, timeout=10, row_cap=1)
    assert info.value.code == "query_failed"
    settings = con.cursor().execute(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('enable_external_access'), current_setting('autoload_known_extensions')"
    ).fetchone()
    assert settings[0].startswith(("286", "300")) and settings[1:] == (1, False, False)


async def test_duckdb_runs_only_single_selects(locked_duck: DuckDBWarehouse) -> None:
    for statement in ("SELECT 1; SELECT 2", "INSTALL httpfs", "LOAD httpfs", "CALL pragma_version()", "EXPLAIN SELECT 1"):
        with pytest.raises(WarehouseError) as info:
            await locked_duck.execute(statement, timeout=10, row_cap=1)
        assert info.value.code == "query_failed", statement


async def test_duckdb_memory_limit_stops_a_big_query(duck_file: Path) -> None:
    wh = DuckDBWarehouse("small", f"duckdb:///{duck_file}", memory_limit="64MB", threads=1)
    try:
        with pytest.raises(WarehouseError) as info:
            # ~500 MB to sort, no temporary directory to spill to
            await wh.execute(
                "SELECT g, repeat('x', 100) AS pad FROM range(5000000) t(g) ORDER BY random()", timeout=60, row_cap=5
            )
        assert info.value.code == "resources_exceeded" and "Out of Memory" in info.value.message
        assert (await wh.execute("SELECT count(*) FROM t", timeout=10, row_cap=1)).rows == [[1000]]
    finally:
        await wh.close()


async def test_duckdb_spilling_is_bounded(duck_file: Path, tmp_path: Path) -> None:
    wh = DuckDBWarehouse(
        "spill", f"duckdb:///{duck_file}", memory_limit="64MB", threads=1,
        temp_directory=tmp_path / "spill", max_temp_directory_size="20MB",
    )
    try:
        with pytest.raises(WarehouseError) as info:
            await wh.execute(
                "SELECT g, repeat('x', 100) AS pad FROM range(5000000) t(g) ORDER BY random()", timeout=60, row_cap=5
            )
        assert info.value.code == "resources_exceeded" and "max_temp_directory_size" in info.value.message
    finally:
        await wh.close()


async def test_duckdb_huge_values_are_cut_in_the_engine(locked_duck: DuckDBWarehouse) -> None:
    await huge_values_are_cut(
        locked_duck,
        f"SELECT g, repeat('x', {HUGE}) AS big, repeat('y', {HUGE})::BLOB AS raw FROM range(20) t(g)",
        text_col=1,
        binary_col=2,
    )


async def test_duckdb_wide_rows_stop_at_the_byte_budget(locked_duck: DuckDBWarehouse) -> None:
    columns = ", ".join(f"repeat('x', 5000) AS c{i}" for i in range(40))
    result = await locked_duck.execute(
        f"SELECT {columns} FROM range(100000)", timeout=60, row_cap=100_000, max_bytes=1_000_000
    )
    assert result.truncated and 0 < result.row_count < 10
    assert result_bytes(result.rows) <= 1_000_000


async def test_duckdb_cut_keeps_names_order_and_types(locked_duck: DuckDBWarehouse) -> None:
    result = await locked_duck.execute(
        "SELECT id, label AS id, [id, id] AS pair, 'aé' AS accent FROM t ORDER BY id DESC LIMIT 3",
        timeout=10, row_cap=10, max_value_chars=12,
    )
    assert result.columns == ["id", "id", "pair", "accent"]
    assert result.column_kinds == ["number", "text", "other", "text"]
    assert result.rows == [[999, "v999", "[999, 999]", "aé"], [998, "v998", "[998, 998]", "aé"], [997, "v997", "[997, 997]", "aé"]]
    assert not result.truncated


# ============================================================================================
# SQLite


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "limits.db"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');")
    con.commit()
    con.close()
    return path


ALLOWED_FUNCTIONS = frozenset({"count", "upper", "hex", "replace", "zeroblob", "randomblob"})


@pytest.fixture
async def guarded_sqlite(sqlite_file: Path) -> AsyncIterator[SQLiteWarehouse]:
    # Writable on purpose: only the authorizer stands between a query and the file.
    wh = SQLiteWarehouse("guarded", f"sqlite:///{sqlite_file}", read_only=False, function_allowed=ALLOWED_FUNCTIONS.__contains__)
    yield wh
    await wh.close()


REFUSED_SQLITE = [
    "ATTACH DATABASE ':memory:' AS other",
    "DETACH DATABASE main",
    "PRAGMA query_only = OFF",
    "PRAGMA writable_schema = ON",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA table_info(t)",
    "SELECT load_extension('/tmp/evil')",
    "SELECT lower('X')",  # outside the allow-list
    "INSERT INTO t VALUES (3, 'c')",
    "UPDATE t SET label = 'z'",
    "DELETE FROM t",
    "CREATE TABLE intruder (x)",
    "CREATE TEMP TABLE intruder (x)",
    "DROP TABLE t",
    "BEGIN IMMEDIATE",
    "ANALYZE",
]


@pytest.mark.parametrize("statement", REFUSED_SQLITE)
async def test_sqlite_authorizer_refuses(guarded_sqlite: SQLiteWarehouse, statement: str, sqlite_file: Path) -> None:
    conn = await asyncio.to_thread(guarded_sqlite.query_connection)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute(statement)
    finally:
        conn.close()
    with pytest.raises(WarehouseError) as info:
        await guarded_sqlite.execute(statement, timeout=5, row_cap=5)
    assert info.value.code == "query_failed"
    check = sqlite3.connect(sqlite_file)
    assert check.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert [r[0] for r in check.execute("SELECT name FROM sqlite_master")] == ["t"]
    check.close()


async def test_sqlite_allowed_reads_still_work(guarded_sqlite: SQLiteWarehouse) -> None:
    result = await guarded_sqlite.execute("SELECT upper(label) AS l, count(*) AS n FROM t GROUP BY 1 ORDER BY 1", timeout=5, row_cap=5)
    assert result.rows == [["A", 1], ["B", 1]] and result.columns == ["l", "n"]
    with_recursion = await guarded_sqlite.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT count(*) FROM c",
        timeout=5, row_cap=5,
    )
    assert with_recursion.rows == [[5]]


async def test_sqlite_huge_values_are_cut(guarded_sqlite: SQLiteWarehouse) -> None:
    await huge_values_are_cut(
        guarded_sqlite,
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20) "
        f"SELECT x, replace(hex(zeroblob({HUGE // 2})), '0', 'x') AS big, zeroblob({HUGE}) AS z, randomblob({HUGE}) AS r FROM c",
        text_col=1,
        binary_col=2,
    )


async def test_sqlite_value_beyond_the_length_cap_is_resources_exceeded(guarded_sqlite: SQLiteWarehouse) -> None:
    from livebi.warehouse.sqlite import MAX_VALUE_BYTES

    with pytest.raises(WarehouseError) as info:
        await guarded_sqlite.execute(f"SELECT length(zeroblob({MAX_VALUE_BYTES + 1}))", timeout=5, row_cap=1)
    assert info.value.code == "resources_exceeded" and "too big" in info.value.message
    assert (await guarded_sqlite.execute("SELECT count(*) FROM t", timeout=5, row_cap=1)).rows == [[2]]


# ============================================================================================
# PostgreSQL


@pytest.fixture
async def pg_table(pg_readonly) -> str:
    await pg_readonly.admin.execute(f"CREATE TABLE {pg_readonly.schema}.t AS SELECT g AS id FROM generate_series(1, 100) g")
    await pg_readonly.admin.execute(f"CREATE SEQUENCE {pg_readonly.schema}.s")
    await pg_readonly.admin.execute(f"GRANT USAGE, SELECT ON SEQUENCE {pg_readonly.schema}.s TO {pg_readonly.role}")
    return f"{pg_readonly.schema}.t"


async def refusal(wh: PostgresWarehouse) -> PrivilegedRole:
    try:
        with pytest.raises(PrivilegedRole) as info:
            await wh.check_access()
        with pytest.raises(PrivilegedRole):  # and at the first query, every time
            await wh.execute("SELECT 1", timeout=5, row_cap=1)
    finally:
        await wh.close()
    assert info.value.code == "warehouse_unavailable"
    assert repr(wh.name) in info.value.message and "docs/deployment.md" in info.value.message
    return info.value


@pytest.mark.postgres
async def test_postgres_read_only_role_is_accepted(pg_readonly, pg_table: str) -> None:
    wh = PostgresWarehouse("pg", pg_readonly.dsn)
    try:
        await wh.check_access()
        assert (await wh.execute("SELECT count(*) FROM t", timeout=5, row_cap=1)).rows == [[100]]
    finally:
        await wh.close()


@pytest.mark.postgres
async def test_postgres_superuser_is_refused(pg_dsn: str, pg_readonly) -> None:
    error = await refusal(PostgresWarehouse("admin-pg", f"{pg_dsn}?search_path={pg_readonly.schema}"))
    assert "superuser" in error.message


GRANTS = {
    "INSERT": ("GRANT INSERT ON {table} TO {role}", "can write"),
    "UPDATE column": ("GRANT UPDATE (id) ON {table} TO {role}", "can write"),
    "TRUNCATE": ("GRANT TRUNCATE ON {table} TO {role}", "can write"),
    "owner": ("ALTER TABLE {table} OWNER TO {role}", "owns"),
    "CREATE on schema": ("GRANT CREATE ON SCHEMA {schema} TO {role}", "create objects"),
    "CREATE on database": ("GRANT CREATE ON DATABASE test TO {role}", "CREATE on the database"),
    "CREATEROLE": ("ALTER ROLE {role} CREATEROLE", "CREATEROLE"),
    "CREATEDB": ("ALTER ROLE {role} CREATEDB", "CREATEDB"),
    "BYPASSRLS": ("ALTER ROLE {role} BYPASSRLS", "BYPASSRLS"),
    "pg_signal_backend": ("GRANT pg_signal_backend TO {role}", "pg_signal_backend"),
    "pg_write_all_data": ("GRANT pg_write_all_data TO {role}", "pg_write_all_data"),
    "pg_read_server_files": ("GRANT pg_read_server_files TO {role}", "pg_read_server_files"),
    "no temp_file_limit": ("ALTER ROLE {role} RESET temp_file_limit", "temp_file_limit unlimited"),
    "higher temp_file_limit": ("ALTER ROLE {role} SET temp_file_limit = '10GB'", "temp_file_limit"),
}


@pytest.mark.postgres
@pytest.mark.parametrize("power", list(GRANTS))
async def test_postgres_roles_that_can_do_more_than_read_are_refused(pg_readonly, pg_table: str, power: str) -> None:
    grant, reason = GRANTS[power]
    await pg_readonly.admin.execute(grant.format(table=pg_table, role=pg_readonly.role, schema=pg_readonly.schema))
    try:
        error = await refusal(PostgresWarehouse("pg", pg_readonly.dsn))
        assert reason in error.message, error.message
    finally:
        if power == "CREATE on database":
            await pg_readonly.admin.execute(f"REVOKE CREATE ON DATABASE test FROM {pg_readonly.role}")


@pytest.mark.postgres
async def test_postgres_privileged_role_can_be_allowed_loudly(pg_dsn: str, pg_readonly, pg_table: str, caplog) -> None:
    wh = PostgresWarehouse("admin-pg", f"{pg_dsn}?search_path={pg_readonly.schema}", allow_privileged_role=True)
    try:
        with caplog.at_level(logging.WARNING, logger="livebi.warehouse.postgres"):
            await wh.check_access()
        assert any("superuser" in r.getMessage() and "warehouse_allow_privileged_role" in r.getMessage() for r in caplog.records)
        # even a superuser's queries run in read-only transactions
        with pytest.raises(WarehouseError) as info:
            await wh.execute(f"INSERT INTO {pg_table} VALUES (0)", timeout=5, row_cap=1)
        assert "read-only" in info.value.message
    finally:
        await wh.close()


@pytest.mark.postgres
async def test_postgres_unreachable_server_does_not_stop_the_start() -> None:
    wh = PostgresWarehouse("down", "postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    await wh.check_access()  # logged; the first query reports warehouse_unavailable
    with pytest.raises(WarehouseError) as info:
        await wh.execute("SELECT 1", timeout=5, row_cap=1)
    assert info.value.code == "warehouse_unavailable" and not isinstance(info.value, PrivilegedRole)


WRITES = [
    "INSERT INTO t VALUES (0)",
    "UPDATE t SET id = id + 1",
    "DELETE FROM t",
    "SELECT nextval('s')",
    "SELECT set_config('transaction_read_only', 'off', true), 1",
    "CREATE TEMP TABLE intruder AS SELECT 1",
    "SELECT pg_notify('x', 'y') FROM t WHERE id = 1 FOR UPDATE",
]


@pytest.mark.postgres
@pytest.mark.parametrize("statement", WRITES)
async def test_postgres_engine_refuses_writes(pg_readonly, pg_table: str, statement: str) -> None:
    wh = PostgresWarehouse("pg", pg_readonly.dsn)
    try:
        with pytest.raises(WarehouseError) as info:
            await wh.execute(statement, timeout=5, row_cap=1)
        assert info.value.code == "query_failed"
        assert (await wh.execute("SELECT count(*), sum(id) FROM t", timeout=5, row_cap=1)).rows == [[100, 5050]]
    finally:
        await wh.close()


@pytest.mark.postgres
async def test_postgres_writes_read_only_transactions_allow_are_rolled_back(pg_readonly, pg_table: str) -> None:
    """PostgreSQL 15 creates large objects even in a read-only transaction: the connector
    rolls every query's transaction back, so nothing it wrote survives."""
    wh = PostgresWarehouse("pg", pg_readonly.dsn)
    try:
        created = await wh.execute("SELECT lo_from_bytea(0, 'x') AS oid", timeout=5, row_cap=1)
        oid = created.rows[0][0]
    finally:
        await wh.close()
    assert not await pg_readonly.admin.fetchval("SELECT EXISTS (SELECT FROM pg_largeobject_metadata WHERE oid = $1)", oid)


@pytest.mark.postgres
async def test_postgres_session_state_does_not_outlive_a_query(pg_readonly, pg_table: str) -> None:
    key = secrets.randbelow(2**31)
    wh = PostgresWarehouse("pg", pg_readonly.dsn, pool_size=1)
    try:
        await wh.execute(f"SELECT pg_advisory_lock({key}), set_config('work_mem', '4GB', false)", timeout=5, row_cap=1)
        # the pooled connection was reset: the lock is free, the session setting gone
        assert await pg_readonly.admin.fetchval("SELECT pg_try_advisory_lock($1)", key)
        await pg_readonly.admin.execute("SELECT pg_advisory_unlock($1)", key)
        settings = await wh.execute(
            "SELECT current_setting('work_mem'), current_setting('statement_timeout'), "
            "current_setting('idle_in_transaction_session_timeout'), current_setting('transaction_read_only')",
            timeout=7, row_cap=1,
        )
        assert settings.rows == [["64MB", "7s", "17s", "on"]]
    finally:
        await wh.close()


@pytest.mark.postgres
async def test_postgres_value_beyond_its_limits_is_resources_exceeded(pg_readonly) -> None:
    wh = PostgresWarehouse("pg", pg_readonly.dsn)
    try:
        with pytest.raises(WarehouseError) as info:  # SQLSTATE 54000, before allocating
            await wh.execute("SELECT length(repeat('x', 2000000000))", timeout=10, row_cap=1)
        assert info.value.code == "resources_exceeded" and "too large" in info.value.message
        assert (await wh.execute("SELECT 1", timeout=5, row_cap=1)).rows == [[1]]
    finally:
        await wh.close()


@pytest.mark.postgres
async def test_postgres_temp_file_limit_stops_a_spilling_sort(pg_readonly) -> None:
    await pg_readonly.admin.execute(f"ALTER ROLE {pg_readonly.role} SET temp_file_limit = '2MB'")
    wh = PostgresWarehouse("pg", pg_readonly.dsn, work_mem="64kB", temp_file_limit="2MB")
    try:
        with pytest.raises(WarehouseError) as info:
            await wh.execute("SELECT g FROM generate_series(1, 5e7) g ORDER BY random()", timeout=60, row_cap=5)
        assert info.value.code == "resources_exceeded" and "temp_file_limit" in info.value.message
    finally:
        await wh.close()


@pytest.mark.postgres
async def test_postgres_huge_values_are_cut_by_the_server(pg_readonly) -> None:
    wh = PostgresWarehouse("pg", pg_readonly.dsn)
    try:
        await huge_values_are_cut(
            wh,
            f"SELECT g, repeat('x', {HUGE}) AS big, decode(repeat('ab', {HUGE}), 'hex') AS raw "
            "FROM generate_series(1, 20) g",
            text_col=1,
            binary_col=2,
        )
        mixed = await wh.execute(
            "SELECT g AS n, g::text AS n, ARRAY[g, g] AS pair, '{\"a\": 1}'::jsonb AS doc "
            "FROM generate_series(1, 3) g ORDER BY g DESC",
            timeout=5, row_cap=5,
        )
        assert mixed.columns == ["n", "n", "pair", "doc"]
        assert mixed.rows[0] == [3, "3", "{3,3}", '{"a": 1}'] and mixed.row_count == 3
    finally:
        await wh.close()


def test_role_dsn_swaps_the_user() -> None:
    assert role_dsn("postgresql://postgres@127.0.0.1:5432/test", "r") == "postgresql://r@127.0.0.1:5432/test"
    assert role_dsn("postgresql://u:pw@h/db?x=1", "r") == "postgresql://r@h/db?x=1"


# ============================================================================================
# settings reach the connectors


def test_open_warehouse_passes_engine_limits(tmp_path: Path) -> None:
    duck = open_warehouse("d", "duckdb:///:memory:", duckdb_memory_limit="123MB", duckdb_threads=3,
                          duckdb_temp_directory=tmp_path, progress_interval=0.05)
    assert (duck.memory_limit, duck.threads, duck._progress_interval) == ("123MB", 3, 0.05)
    assert duck.temp_directory and duck.temp_directory.startswith(str(tmp_path))
    pg = open_warehouse("p", "postgresql://u@h/db", allow_privileged_role=True, postgres_work_mem="8MB",
                        postgres_temp_file_limit="", progress_interval=0.1)
    assert (pg.allow_privileged_role, pg.work_mem, pg.temp_file_limit, pg._progress_interval) == (True, "8MB", "", 0.1)


async def test_progress_interval_setting_changes_the_cadence_clients_see(server_settings) -> None:
    """At 0.05 s, a 1.5 s query publishes far more engine progress than the 0.25 s default
    would allow (at most ~7 reports)."""
    from .test_ws_ask import SLOW_SQL

    server_settings.progress_interval_s = 0.05
    server_settings.query_timeout_s = 1.5
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        reply = await client.op("ask", sql=SLOW_SQL)
        channel = reply["data"]["channel"]
        final = await client.until_final(channel, timeout=20)
        assert final["data"]["code"] == "query_timeout"
        executing = [p for p in client.on(channel) if p["data"].get("substage") == "sql_execution"]
        assert len(executing) >= 12, len(executing)
        await client.close()


async def test_data_agent_passes_its_result_bounds_to_the_engine(locked_duck: DuckDBWarehouse) -> None:
    from livebi.agents.data import DataAgent

    agent = DataAgent(timeout_s=10, row_cap=1000, max_result_bytes=5000, max_value_chars=50)
    result = await agent.run(f"SELECT g, repeat('x', {HUGE}) AS big FROM range(100) t(g)", locked_duck, lambda *a: None)
    assert result.truncated and 0 < result.row_count < 100 and result.rows[0][1] == "x" * 50 + "…"
    assert result_bytes(result.rows) <= 5000


@pytest.mark.postgres
async def test_server_start_refuses_a_privileged_postgres_role(server_settings, pg_dsn: str, pg_readonly) -> None:
    from livebi.services import Services

    server_settings.warehouses = {"pg": f"{pg_dsn}?search_path={pg_readonly.schema}"}
    services = Services(server_settings)
    try:
        with pytest.raises(PrivilegedRole, match="superuser"):
            await services.start()
    finally:
        await services.stop()
    server_settings.warehouses = {"pg": pg_readonly.dsn}  # the read-only role starts fine
    services = Services(server_settings)
    try:
        await services.start()
    finally:
        await services.stop()
