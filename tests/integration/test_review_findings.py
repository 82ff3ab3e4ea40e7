"""Attacks found in the security review of the issue-7 hardening, each against a real server.

An ordinary user asks SQL over a real WebSocket on loopback; the warehouse is a real engine
(PostgreSQL through a read-only role, as deployed). Each test fails on the code before its fix.
"""

from __future__ import annotations

import secrets

import pytest

from livebi.config import Settings

from .conftest import free_port, run_server


async def ask_sql(client, sql: str, *, warehouse: str | None = None) -> dict:
    """Ask ``sql`` and return the final publication (result or error)."""
    fields = {"sql": sql} | ({"warehouse": warehouse} if warehouse else {})
    reply = await client.op("ask", **fields)
    assert reply["ok"], reply
    return await client.until_final(reply["data"]["channel"])


# --------------------------------------------------------------------------------------------
# PostgreSQL: reading the catalogues and the session without a catalogue function


@pytest.fixture
async def pg_server(pg_readonly, tmp_path):
    """A server on a read-only PostgreSQL role, and a hidden schema the role cannot read."""
    ro = pg_readonly
    hidden = f"lb_hidden_{secrets.token_hex(4)}"
    secret_table = f"payroll_{secrets.token_hex(4)}"
    await ro.admin.execute(f"""
        CREATE TABLE {ro.schema}.sales (id int PRIMARY KEY, amount numeric);
        INSERT INTO {ro.schema}.sales VALUES (1, 10), (2, 20);
        CREATE SCHEMA {hidden};
        CREATE TABLE {hidden}.{secret_table} (salary int);
    """)
    oid = await ro.admin.fetchval(f"SELECT '{hidden}.{secret_table}'::regclass::oid")
    settings = Settings(
        data_dir=tmp_path,
        warehouses={"pg": ro.dsn},
        warehouse_schemas={"pg": [ro.schema]},
        store_url=f"sqlite:///{tmp_path / 'meta.db'}",
        secret_key="test-secret",
        port=free_port(),
    )
    try:
        async with run_server(settings) as server:
            client = await server.connect("alice")
            try:
                yield client, ro, hidden, secret_table, int(oid)
            finally:
                await client.close()
    finally:
        await ro.admin.execute(f"DROP SCHEMA {hidden} CASCADE")


def _text(final: dict) -> str:
    return repr(final["data"])


async def test_postgres_object_identifier_casts_cannot_enumerate_the_catalogues(pg_server) -> None:
    """``oid::regclass`` (and regrole, regproc, regnamespace...) name any catalogue object
    without a privilege check: a user enumerated every table of every schema, every role and
    every function, and ``'schema.table'::regclass`` told which hidden tables exist."""
    client, ro, hidden, secret_table, oid = pg_server
    attacks = [
        f"SELECT CAST(CAST({oid} AS oid) AS regclass)::text AS t",
        f"SELECT CAST({oid} AS regclass)::text AS t",
        f"SELECT CAST(g AS regclass)::text AS t FROM generate_series({oid}, {oid}) AS s(g)",
        f"SELECT '{hidden}.{secret_table}'::regclass::oid AS t",
        f"SELECT {oid}::pg_catalog.regclass::text AS t",
        "SELECT CAST(10 AS regrole)::text AS t",
        "SELECT 'version'::regproc::oid AS t",
        "SELECT CAST(11 AS regnamespace)::text AS t",
    ]
    for sql in attacks:
        final = await ask_sql(client, sql)
        assert final["type"] == "error", (sql, final)
        assert final["data"]["code"] == "forbidden_sql", (sql, final)
        assert secret_table not in _text(final)


async def test_postgres_sql_value_keywords_do_not_leak_the_role(pg_server) -> None:
    """``user`` and ``current_role`` are SQL keywords for ``current_user``; written as a bare
    column over a table function, they slipped past the function allow-list."""
    client, ro, *_ = pg_server
    for sql in (
        "SELECT user AS u FROM generate_series(1, 1) AS g",
        "SELECT current_role AS u FROM generate_series(1, 1) AS g",
        "SELECT x FROM generate_series(1, 1) AS g(x) WHERE session_user IS NOT NULL",
    ):
        final = await ask_sql(client, sql)
        assert final["type"] == "error", (sql, final)
        assert final["data"]["code"] == "forbidden_sql", (sql, final)
        assert ro.role not in _text(final)
    ok = await ask_sql(client, "SELECT id, amount FROM sales ORDER BY id")
    assert ok["type"] == "result", ok
