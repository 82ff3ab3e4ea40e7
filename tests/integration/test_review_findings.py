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


# --------------------------------------------------------------------------------------------
# Per-address limits and IPv6


async def test_ipv6_clients_in_one_network_share_their_per_address_limits(server_settings) -> None:
    """An IPv6 client holds a whole /64 (2^64 addresses): counting each address apart gave it a
    fresh login budget and a fresh unauthenticated-socket budget per request, so an anonymous
    client could keep the shared hashing pool full (real logins: 429 "busy") from one host."""
    import httpx
    import websockets

    server_settings.trusted_proxies = ["127.0.0.1/32"]
    server_settings.login_burst_per_address = 3
    server_settings.login_rate_per_address_per_min = 1
    server_settings.max_unauthenticated_per_address = 2
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            codes = []
            for i in range(6):  # a different username each time: only the address limit applies
                r = await http.post(
                    "/api/login",
                    json={"username": f"nobody{i}", "password": "x"},
                    headers={"X-Forwarded-For": f"2001:db8:1:2::{i + 1:x}"},
                )
                codes.append(r.status_code)
            assert codes[:3] == [401, 401, 401], codes
            assert codes[3:] == [429, 429, 429], codes
            # another /64 has its own budget
            r = await http.post("/api/login", json={"username": "nobody", "password": "x"},
                                headers={"X-Forwarded-For": "2001:db8:1:3::1"})
            assert r.status_code == 401
        sockets = []
        try:
            for i in range(2):
                sockets.append(await websockets.connect(
                    server.ws_url, additional_headers={"X-Forwarded-For": f"2001:db8:9:9::{i + 1:x}"}))
            extra = await websockets.connect(server.ws_url, additional_headers={"X-Forwarded-For": "2001:db8:9:9::ff"})
            sockets.append(extra)
            await extra.recv()  # the refusal
            await extra.wait_closed()
            assert extra.close_code == 4029
        finally:
            for ws in sockets:
                await ws.close()


# --------------------------------------------------------------------------------------------
# Revocation reaches idle connections


async def test_a_revoked_users_idle_connections_are_closed_without_waiting_for_an_op(server_settings) -> None:
    """A password change or a user removal by another process (the CLI, another node) was
    noticed only when a connection sent its next op: an idle socket or SSE stream of a revoked
    (or removed) user went on receiving its channels' publications indefinitely."""
    import asyncio

    import httpx

    from livebi.protocol import CloseCode
    from livebi.store import MetadataStore

    server_settings.user_cache_s = 0.3
    async with run_server(server_settings) as server:
        ws = await server.connect("alice")
        bob = await server.connect("bob")
        assert (await ws.op("subscribe", channel="system"))["ok"]
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            r = await http.post("/api/ticket", headers={"Authorization": f"Bearer {await server.token('alice')}"})
            ticket = r.json()["ticket"]
            async with http.stream("GET", f"/sse?ticket={ticket}") as sse:
                assert sse.status_code == 200
                # another process revokes alice's tokens (what `livebi user passwd` does)
                store = await MetadataStore.open(server_settings.resolved_store_url())
                try:
                    await store.bump_token_version((await store.get_user(username="alice"))["id"])
                finally:
                    await store.close()
                code, reason = await ws.wait_closed(timeout=10)  # no op sent
                assert code == CloseCode.unauthenticated and "revoked" in reason
                lines = []

                async def read_until_close() -> None:
                    async for line in sse.aiter_lines():
                        lines.append(line)
                        if '"type": "close"' in line or '"type":"close"' in line:
                            return

                await asyncio.wait_for(read_until_close(), 10)
                assert str(int(CloseCode.unauthenticated)) in lines[-1]
        assert (await bob.op("ping"))["ok"], "other users' connections stay open"
        await bob.close()
