"""Attacks on authentication, each against a real server on loopback.

- login floods: rate limits per address and per username (429 + Retry-After), a hashing pool
  one source cannot monopolise;
- idle unauthenticated sockets: limited per address, outside max_connections;
- revocation: logout, logout-all and password changes end tokens and open connections;
- tickets: long-lived tokens never travel in URLs;
- the demo keeps its own store; store files are private.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import stat
from pathlib import Path

import httpx
import pytest
import websockets

from livebi.auth import hash_password
from livebi.protocol import CloseCode
from livebi.store import MetadataStore

from .conftest import USERS, run_server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(http: httpx.AsyncClient, username: str, password: str | None = None, **kw) -> httpx.Response:
    return await http.post("/api/login", json={"username": username, "password": password or USERS[username]}, **kw)


async def wait_closed(ws, timeout: float = 10.0) -> tuple[int | None, str]:
    async def drain() -> None:
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()

    await asyncio.wait_for(drain(), timeout)
    return ws.close_code, ws.close_reason


# Login rate limits ----------------------------------------------------------------------------


async def test_bad_logins_from_one_address_get_429_with_retry_after(server_settings) -> None:
    server_settings.login_burst_per_address = 3
    server_settings.login_rate_per_address_per_min = 0.1  # no refill within the test, however slow the machine
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            codes = [(await login(http, "alice", "wrong")).status_code for _ in range(3)]
            assert codes == [401, 401, 401]
            r = await login(http, "alice", "wrong")
            assert r.status_code == 429
            assert int(r.headers["Retry-After"]) >= 1
            assert "login attempts" in r.json()["detail"]
            # The right password does not help while the address is throttled.
            assert (await login(http, "bob")).status_code == 429
        async with httpx.AsyncClient(base_url=server.base_url, transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")) as other:
            assert (await login(other, "bob")).status_code == 200, "another address is not affected"


async def test_failed_logins_for_one_username_are_limited_across_addresses(server_settings) -> None:
    server_settings.trusted_proxies = ["127.0.0.1/32"]
    server_settings.login_failures_per_username = 2
    server_settings.login_failures_per_username_per_min = 0.1
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            for i in range(2):
                r = await login(http, "alice", "wrong", headers={"X-Forwarded-For": f"203.0.113.{i}"})
                assert r.status_code == 401
            r = await login(http, "alice", "wrong", headers={"X-Forwarded-For": "203.0.113.99"})
            assert r.status_code == 429 and "alice" in r.json()["detail"]
            assert int(r.headers["Retry-After"]) >= 1
            r = await login(http, "bob", headers={"X-Forwarded-For": "203.0.113.99"})
            assert r.status_code == 200, "other users log in"


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(server_settings) -> None:
    server_settings.login_burst_per_address = 2
    server_settings.login_rate_per_address_per_min = 0.1
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            codes = [
                (await login(http, "alice", "wrong", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
                for i in range(3)
            ]
            assert codes == [401, 401, 429], "a client cannot pick a fresh address per request"


async def test_a_login_flood_from_one_address_does_not_delay_real_logins(server_settings) -> None:
    # Rate limits out of the way: this is about the hashing pool alone.
    server_settings.login_burst_per_address = 100_000
    server_settings.login_rate_per_address_per_min = 1_000_000
    server_settings.login_failures_per_username = 100_000
    async with run_server(server_settings) as server:
        events: list[str] = []
        stop = asyncio.Event()
        statuses: list[int] = []

        async def attacker(http: httpx.AsyncClient, n: int) -> None:
            while not stop.is_set():
                r = await login(http, f"nobody{n}", "guess")
                statuses.append(r.status_code)
                events.append(f"flood-{r.status_code}")
                if r.status_code == 429:
                    await asyncio.sleep(0.01)

        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=httpx.Limits(max_connections=100)) as http:
            flood = [asyncio.create_task(attacker(http, n)) for n in range(40)]
            while len(statuses) < 3:  # the flood is under way
                await asyncio.sleep(0.01)
            transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
            async with httpx.AsyncClient(base_url=server.base_url, transport=transport, timeout=60) as real:
                events.append("real-start")
                r = await login(real, "alice")
                events.append("real-done")
            stop.set()
            await asyncio.gather(*flood)
        assert r.status_code == 200
        assert 429 in statuses, "the flood is refused, not queued"
        during = events[events.index("real-start") : events.index("real-done")]
        verified = [e for e in during if e == "flood-401"]
        # The real login waited for at most the verifications already running, never the queue.
        assert len(verified) <= 2, during


# Unauthenticated connections ------------------------------------------------------------------


async def test_idle_unauthenticated_sockets_are_limited_per_address_and_never_lock_users_out(server_settings) -> None:
    server_settings.max_unauthenticated_per_address = 3
    server_settings.max_connections = 4
    async with run_server(server_settings) as server:
        idle = [await websockets.connect(server.ws_url) for _ in range(3)]
        over = await websockets.connect(server.ws_url)
        code, reason = await wait_closed(over, timeout=3)
        assert code == CloseCode.too_many_unauthenticated, (code, reason)
        for ws in idle:
            assert ws.close_code is None, "the first three wait for their auth op"
        # The idle sockets do not count against max_connections: four real users get in.
        clients = [await server.connect(name) for name in ("alice", "alice", "bob", "bob")]
        for c in clients:
            assert (await c.op("ping"))["ok"]
        # A socket from another address is not affected by this one's idle sockets... but the
        # server is full now: 1013.
        full = await websockets.connect(server.ws_url + "?ticket=" + await server.ticket("bob"))
        assert (await wait_closed(full))[0] == CloseCode.try_again_later
        for c in clients:
            await c.close()
        for ws in idle:
            await ws.close()


async def test_the_unauthenticated_deadline_defaults_to_a_few_seconds() -> None:
    from livebi.config import Settings

    assert Settings().auth_timeout_s <= 5


async def test_unauthenticated_slots_free_up_when_sockets_authenticate_or_leave(server_settings) -> None:
    server_settings.max_unauthenticated_per_address = 1
    async with run_server(server_settings) as server:
        for _ in range(3):
            ws = await websockets.connect(server.ws_url)
            await ws.send(json.dumps({"id": 1, "op": "auth", "token": await server.token("alice")}))
            assert json.loads(await ws.recv())["ok"]
            second = await websockets.connect(server.ws_url)  # the first one is authenticated now
            await second.send(json.dumps({"id": 1, "op": "ping"}))
            assert (await wait_closed(second))[0] == CloseCode.unauthenticated
            await ws.close()


# Revocation -----------------------------------------------------------------------------------


async def test_logout_all_revokes_tokens_and_closes_open_connections_at_once(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        token = (await login(http, "alice")).json()["token"]
        other_token = (await login(http, "alice")).json()["token"]
        ws = await live_server.connect("alice")
        assert (await ws.op("ping"))["ok"]
        bob = await live_server.connect("bob")
        async with http.stream("GET", "/sse", headers=bearer(other_token)) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("data:"):
                    break
            r = await http.post("/api/logout-all", headers=bearer(token))
            assert r.status_code == 200
            code, reason = await ws.wait_closed(timeout=5)
            assert code == CloseCode.unauthenticated and "revoked" in reason
            closing = None
            async for line in lines:
                if line.startswith("data:"):
                    closing = json.loads(line[5:])
                    break
            assert closing == {"type": "close", "code": 4001, "reason": "token revoked"}
        for t in (token, other_token):
            r = await http.get("/api/me", headers=bearer(t))
            assert r.status_code == 401 and "revoked" in r.json()["detail"]
        assert (await bob.op("ping"))["ok"], "other users are not affected"
        fresh = (await login(http, "alice")).json()["token"]
        assert (await http.get("/api/me", headers=bearer(fresh))).status_code == 200


async def test_logout_revokes_the_current_token(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        token = (await login(http, "alice")).json()["token"]
        assert (await http.post("/api/logout", headers=bearer(token))).status_code == 200
        assert (await http.get("/api/me", headers=bearer(token))).status_code == 401
        assert (await http.post("/api/ticket", headers=bearer(token))).status_code == 401


async def test_a_password_change_revokes_tokens_within_user_cache_s(server_settings) -> None:
    from typer.testing import CliRunner

    from livebi.cli import app

    server_settings.user_cache_s = 0.2
    async with run_server(server_settings) as server:
        token = await server.token("alice")
        ws = await server.connect("alice")
        assert (await ws.op("ping"))["ok"]
        result = await asyncio.to_thread(
            CliRunner().invoke, app,
            ["user", "passwd", "alice", "--store", server_settings.resolved_store_url()], input="new-pw\nnew-pw\n",
        )
        assert result.exit_code == 0, result.output
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            r = await http.get("/api/me", headers=bearer(token))
            assert r.status_code == 401 and "revoked" in r.json()["detail"]
            assert (await login(http, "alice", "new-pw")).status_code == 200
        # Another process changed the password: this open socket is closed on its next op, or
        # by the revocation sweep (Services.close_revoked) if that comes first.
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send_raw(json.dumps({"id": 99, "op": "ping"}))
        code, reason = await ws.wait_closed(timeout=5)
        assert code == CloseCode.unauthenticated and "revoked" in reason


async def test_set_password_in_the_store_bumps_the_token_version(tmp_path) -> None:
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        row = await store.add_user("carol", hash_password("x"))
        assert await store.token_version(row["id"]) == 0
        assert await store.set_password("carol", hash_password("y"))
        assert await store.token_version(row["id"]) == 1
        assert await store.bump_token_version(row["id"]) == 2
        assert await store.token_version("no-such-user") is None
    finally:
        await store.close()


OLD_SCHEMA = """
CREATE TABLE livebi_users (
    id VARCHAR(32) NOT NULL PRIMARY KEY,
    username VARCHAR(64) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE TABLE livebi_queries (
    query_id VARCHAR(32) NOT NULL PRIMARY KEY,
    user_id VARCHAR(32) NOT NULL REFERENCES livebi_users (id) ON DELETE CASCADE,
    question TEXT, sql TEXT, warehouse VARCHAR(128) NOT NULL, status VARCHAR(16) NOT NULL,
    engine VARCHAR(16), row_count INTEGER, error JSON, elapsed_ms FLOAT,
    created_at DATETIME NOT NULL, finished_at DATETIME
);
"""


async def test_a_store_of_the_previous_release_keeps_working(server_settings, tmp_path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for i, (name, pw) in enumerate(USERS.items()):
        db.execute("INSERT INTO livebi_users VALUES (?, ?, ?, '2024-01-01 00:00:00.000000')", (f"old{i}", name, hash_password(pw)))
    db.commit()
    db.close()
    server_settings.store_url = f"sqlite:///{path}"
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            token = (await login(http, "alice")).json()["token"]
            assert (await http.get("/api/me", headers=bearer(token))).status_code == 200
            assert (await http.post("/api/logout-all", headers=bearer(token))).status_code == 200
            assert (await http.get("/api/me", headers=bearer(token))).status_code == 401


# Tickets --------------------------------------------------------------------------------------


async def test_tokens_are_refused_in_urls_with_a_message_naming_tickets(live_server) -> None:
    token = await live_server.token("alice")
    ws = await websockets.connect(live_server.ws_url + "?token=" + token)
    reply = json.loads(await ws.recv())
    assert reply["error"]["code"] == "unauthenticated" and "ticket" in reply["error"]["message"]
    assert (await wait_closed(ws))[0] == CloseCode.unauthenticated
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        r = await http.get("/sse", params={"token": token})
        assert r.status_code == 401 and "ticket" in r.json()["detail"]


async def test_a_ticket_opens_one_websocket_once(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        r = await http.post("/api/ticket", headers=bearer(await live_server.token("alice")))
        assert r.status_code == 200
        body = r.json()
        assert 0 < body["expires_in"] <= 30 and body["ticket"]
    ticket = body["ticket"]
    ws = await websockets.connect(live_server.ws_url + "?ticket=" + ticket)
    await ws.send(json.dumps({"id": 1, "op": "ping"}))
    assert json.loads(await ws.recv())["ok"]
    again = await websockets.connect(live_server.ws_url + "?ticket=" + ticket)
    reply = json.loads(await again.recv())
    assert "already used" in reply["error"]["message"]
    assert (await wait_closed(again))[0] == CloseCode.unauthenticated
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        assert (await http.get("/api/me", headers=bearer(ticket))).status_code == 401, "a ticket is no bearer token"
    await ws.close()


async def test_a_ticket_opens_an_sse_stream_once_and_resumes_with_a_fresh_one(live_server) -> None:
    services = live_server.app.state.services

    async def frames(lines):  # the messages of each data: line, batches unwrapped
        async for line in lines:
            if line.startswith("data:"):
                data = json.loads(line[5:])
                yield data["messages"] if data.get("type") == "message_batch" else [data]

    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as http:
        ticket = await live_server.ticket("alice")
        async with http.stream("GET", "/sse", params={"ticket": ticket}) as stream:
            assert stream.status_code == 200
            ids: list[str] = []
            lines = stream.aiter_lines()

            async def tracked():
                async for line in lines:
                    if line.startswith("id:"):
                        ids.append(line[3:].strip())
                    yield line

            reader = frames(tracked())
            opening = (await reader.__anext__())[0]
            r = await http.post("/sse/ops", params={"conn": opening["conn_id"]}, headers=bearer(await live_server.token("alice")),
                                json={"id": 1, "op": "subscribe", "channel": "system"})
            assert r.json()["ok"]
            await services.publish("system", "notification", {"n": 1})
            async for messages in reader:
                if any(m.get("type") == "notification" for m in messages):
                    break
        # EventSource would reconnect with the same URL: the used ticket is refused...
        assert (await http.get("/sse", params={"ticket": ticket})).status_code == 401
        # ...and a fresh ticket with the last event id resumes the channels.
        await services.publish("system", "notification", {"n": 2})
        params = {"ticket": await live_server.ticket("alice"), "last_event_id": ids[-1]}
        async with http.stream("GET", "/sse", params=params) as stream:
            async for messages in frames(stream.aiter_lines()):
                notes = [m["data"] for m in messages if m.get("type") == "notification"]
                if notes:
                    assert notes == [{"n": 2}]
                    break
                assert messages[0]["type"] == "open" and messages[0]["resumed"][0]["recovered"] is True


async def test_expired_and_revoked_tickets_are_refused(server_settings) -> None:
    server_settings.ticket_ttl_s = 1
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            old = await server.ticket("alice")
            await asyncio.sleep(1.2)
            assert (await http.get("/sse", params={"ticket": old})).status_code == 401
            ticket = await server.ticket("alice")
            await http.post("/api/logout-all", headers=bearer(await server.token("alice")))
            r = await http.get("/sse", params={"ticket": ticket})
            assert r.status_code == 401 and "revoked" in r.json()["detail"]


# The demo's store, file modes ------------------------------------------------------------------


async def test_the_demo_never_writes_users_into_the_default_store(tmp_path) -> None:
    from livebi.cli import DEMO_USERS, demo_settings, ensure_users
    from livebi.config import Settings

    settings = demo_settings(data_dir=tmp_path, port=8000, host="127.0.0.1", store=None, rows=100, warehouse_path=tmp_path / "d.duckdb")
    await ensure_users(settings, DEMO_USERS)
    default = Settings(data_dir=tmp_path).resolved_store_url()
    assert settings.resolved_store_url() != default
    store = await MetadataStore.open(default)
    try:
        assert await store.list_users() == []
    finally:
        await store.close()
    demo_store = await MetadataStore.open(settings.resolved_store_url())
    try:
        assert {u["username"] for u in await demo_store.list_users()} == {name for name, _ in DEMO_USERS}
    finally:
        await demo_store.close()
    assert settings.resolved_secret_key() != Settings(data_dir=tmp_path).resolved_secret_key()


async def test_serve_refuses_a_store_holding_demo_logins(tmp_path) -> None:
    from livebi.cli import DEMO_USERS, demo_logins_in
    from livebi.config import Settings

    settings = Settings(data_dir=tmp_path)
    store = await MetadataStore.open(settings.resolved_store_url())
    try:
        await store.add_user("demo", hash_password("demo"))
        await store.add_user("alice", hash_password("a real password"))
    finally:
        await store.close()
    assert await demo_logins_in(settings.resolved_store_url(), DEMO_USERS) == ["demo"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_store_files_and_the_data_dir_are_private(tmp_path) -> None:
    from livebi.config import Settings

    old = os.umask(0o022)
    try:
        data_dir = tmp_path / "fresh" / "data"
        settings = Settings(data_dir=data_dir)
        settings.resolved_secret_key()
        assert _mode(data_dir) == 0o700
        assert _mode(data_dir / "secret.key") == 0o600
        store = await MetadataStore.open(settings.resolved_store_url())
        try:
            await store.add_user("carol", hash_password("x"))
            # A journal file (if any) is created with the database file's mode by SQLite.
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql("UPDATE livebi_users SET username = username")
                journals = list(data_dir.glob("livebi.db-*"))
                assert all(_mode(j) == 0o600 for j in journals), [(j, oct(_mode(j))) for j in journals]
        finally:
            await store.close()
        assert _mode(data_dir / "livebi.db") == 0o600
        # A world-readable store file from an older release is tightened when opened.
        other = tmp_path / "other"
        other.mkdir()
        (other / "old.db").touch(mode=0o644)
        os.chmod(other / "old.db", 0o644)
        store = await MetadataStore.open(f"sqlite:///{other / 'old.db'}")
        await store.close()
        assert _mode(other / "old.db") == 0o600
    finally:
        os.umask(old)


@pytest.mark.parametrize("native", [True, False], ids=["ws-native", "ws-asgi"])
async def test_every_forwarded_for_line_counts_not_just_the_first(server_settings, native) -> None:
    """Behind a trusted proxy that adds its own ``X-Forwarded-For`` line below the client's
    (instead of appending to it), reading only the first line would take the client's forged
    address: the lines are one list (RFC 9110), read from the right."""
    server_settings.trusted_proxies = ["127.0.0.0/8"]
    server_settings.login_burst_per_address = 2
    server_settings.login_rate_per_address_per_min = 0.1
    server_settings.max_unauthenticated_per_address = 1
    server_settings.ws_native_upgrade = native
    async with run_server(server_settings) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            codes = [
                (await login(http, "alice", "wrong", headers=[
                    ("X-Forwarded-For", f"198.51.100.{i}"),  # forged by the client, a fresh one each time
                    ("X-Forwarded-For", "203.0.113.5"),  # added by the proxy: the real client
                ])).status_code
                for i in range(3)
            ]
            assert codes == [401, 401, 429]
        # The same on /ws: the unauthenticated limit per address counts the proxy's address.
        headers = [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.5")]
        first = await websockets.connect(server.ws_url, additional_headers=headers)
        headers2 = [("X-Forwarded-For", "198.51.100.2"), ("X-Forwarded-For", "203.0.113.5")]
        second = await websockets.connect(server.ws_url, additional_headers=headers2)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(second.recv(), 10)
            await asyncio.wait_for(second.recv(), 10)
        assert closed.value.rcvd.code == 4029
        await first.close()
