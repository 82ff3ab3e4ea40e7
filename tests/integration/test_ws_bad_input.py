"""Bad input gets a clear error or close code, loses nothing, and never hurts other clients."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from livebi.protocol import CloseCode

from .conftest import run_server


@pytest.fixture
async def bystander(live_server):
    """A second user who keeps working while someone else misbehaves."""
    client = await live_server.connect("bob")
    yield client
    reply = await client.op("ask", question="how many customers")
    assert reply["ok"]
    final = await client.until_final(reply["data"]["channel"])
    assert final["type"] == "result", "the bystander must still be served"
    await client.close()


async def test_malformed_frames_get_error_replies_and_the_connection_survives(live_server, bystander) -> None:
    client = await live_server.connect("alice")
    await client.send_raw("{not json")
    await client.send_raw("[1,2,3]")
    await client._wait_for(lambda: len(client.null_replies) >= 2)
    assert [r["error"]["code"] for r in client.null_replies] == ["bad_json", "bad_json"]
    assert (await client.op("explode"))["error"]["code"] == "unknown_op"
    missing = await client.op("subscribe")
    assert missing["error"]["code"] == "invalid_op" and "channel" in missing["error"]["message"]
    wrong_type = await client.op("ask", question=["not", "a", "string"])
    assert wrong_type["error"]["code"] == "invalid_op"
    both = await client.op("ask", question="x", sql="SELECT 1")
    assert both["error"]["code"] == "invalid_op"
    assert (await client.op("ping"))["ok"]
    await client.close()


async def test_oversized_frames(live_server, bystander) -> None:
    client = await live_server.connect("alice")
    # Over max_message_bytes (64 KiB): refused before parsing, so the reply cannot carry the id.
    await client.send_raw(json.dumps({"id": 1, "op": "ask", "question": "x" * (70 * 1024)}))
    await client._wait_for(lambda: client.null_replies)
    assert client.null_replies[-1]["error"]["code"] == "too_large"
    assert (await client.op("ping"))["ok"], "the connection stays open"
    # Beyond the transport's hard limit (1 MiB here) the socket is closed with 1009.
    await client.send_raw("x" * (2 * 1024 * 1024))
    code, _ = await client.wait_closed()
    assert code == CloseCode.message_too_big


async def test_connections_without_valid_token_are_closed_4001(live_server, bystander) -> None:
    # An invalid token in the query string.
    ws = await websockets.connect(live_server.ws_url + "?token=forged.token")
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await ws.recv()
    assert ws.close_code == CloseCode.unauthenticated
    # No token, and a first frame that is not auth: an error reply, then 4001.
    client = await live_server.connect(None)
    reply = await client.op("ask", question="total revenue")
    assert reply["error"]["code"] == "unauthenticated"
    assert (await client.wait_closed())[0] == CloseCode.unauthenticated
    # No token, and a bad auth op.
    client = await live_server.connect(None)
    reply = await client.op("auth", token="nope")
    assert reply["error"]["code"] == "unauthenticated"
    assert (await client.wait_closed())[0] == CloseCode.unauthenticated


async def test_auth_op_as_first_frame_works(live_server) -> None:
    client = await live_server.connect(None)
    reply = await client.op("auth", token=await live_server.token("alice"))
    assert reply["ok"] and reply["data"]["user"]["username"] == "alice"
    assert (await client.op("ping"))["ok"]
    await client.close()


async def test_silent_unauthenticated_connection_times_out(server_settings) -> None:
    server_settings.auth_timeout_s = 0.5
    async with run_server(server_settings) as server:
        client = await server.connect(None)
        code, reason = await client.wait_closed(timeout=5)
        assert code == CloseCode.unauthenticated and "timeout" in reason


async def test_forbidden_and_unknown_subscriptions(live_server, bystander) -> None:
    alice = await live_server.connect("alice")
    bob_id = (await bystander.op("auth", token=await live_server.token("bob")))["data"]["user"]["id"]
    asked = await alice.op("ask", question="how many orders")
    channel = asked["data"]["channel"]
    stolen = await bystander.op("subscribe", channel=channel)
    assert stolen["error"]["code"] == "forbidden"
    assert not bystander.on(channel), "nothing from alice's query reaches bob"
    assert (await bystander.op("subscribe", channel="query:doesnotexist"))["error"]["code"] == "not_found"
    assert (await bystander.op("subscribe", channel="nonsense:1"))["error"]["code"] == "unknown_channel"
    assert (await bystander.op("subscribe", channel="../../etc"))["error"]["code"] == "unknown_channel"
    assert (await alice.op("subscribe", channel=f"user:{bob_id}"))["error"]["code"] == "forbidden"
    assert (await bystander.op("subscribe", channel=f"user:{bob_id}"))["ok"]
    assert (await bystander.op("subscribe", channel="system"))["ok"]
    # Bob cannot cancel alice's query either.
    assert (await bystander.op("cancel", query_id=asked["data"]["query_id"]))["error"]["code"] == "forbidden"
    await alice.until_final(channel)
    await alice.close()


async def test_resubscribe_with_since_recovers_missed_publications(live_server) -> None:
    alice = await live_server.connect("alice")
    asked = await alice.op("ask", question="total revenue by segment")
    channel = asked["data"]["channel"]
    await alice.until_final(channel)
    first = alice.on(channel)[0]
    await alice.close()
    again = await live_server.connect("alice")
    reply = await again.op("subscribe", channel=channel, since={"epoch": first["epoch"], "seq": first["seq"]})
    assert reply["ok"] and reply["data"]["recovered"] is True
    await again._wait_for(lambda: any(p["type"] == "result" for p in again.on(channel)))
    replayed = [p["seq"] for p in again.on(channel)]
    assert replayed == list(range(2, reply["data"]["seq"] + 1))
    stale = await again.op("subscribe", channel=channel, since={"epoch": "other", "seq": 1})
    assert stale["data"]["recovered"] is False
    await again.close()


async def test_unknown_warehouse_is_refused(live_server) -> None:
    alice = await live_server.connect("alice")
    reply = await alice.op("ask", question="total revenue", warehouse="nope")
    assert reply["error"]["code"] == "unknown_warehouse" and "demo" in reply["error"]["message"]
    await alice.close()


async def test_too_many_concurrent_questions_are_refused(server_settings) -> None:
    server_settings.max_concurrent_queries_per_user = 1
    async with run_server(server_settings) as server:
        alice = await server.connect("alice")
        slow = await alice.op("ask", sql="SELECT count(*) FROM orders a, orders b, orders c")
        refused = await alice.op("ask", question="how many orders")
        assert refused["error"]["code"] == "too_many_queries"
        await alice.op("cancel", query_id=slow["data"]["query_id"])
        await alice.close()


async def test_rest_login_history_health_metrics(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        bad = await http.post("/api/login", json={"username": "alice", "password": "wrong"})
        assert bad.status_code == 401
        unknown = await http.post("/api/login", json={"username": "mallory", "password": "x"})
        assert unknown.status_code == 401
        assert (await http.post("/api/login", json={"username": "alice"})).status_code == 422
        assert (await http.get("/api/history")).status_code == 401
        assert (await http.get("/api/history", headers={"Authorization": "Bearer forged.x"})).status_code == 401
        token = await live_server.token("alice")
        auth = {"Authorization": f"Bearer {token}"}
        client = await live_server.connect("alice")
        asked = await client.op("ask", question="how many orders")
        await client.until_final(asked["data"]["channel"])
        await client.close()
        history = (await http.get("/api/history", headers=auth)).json()["queries"]
        assert history[0]["question"] == "how many orders" and history[0]["status"] == "done"
        bob_history = (await http.get("/api/history", headers={"Authorization": f"Bearer {await live_server.token('bob')}"})).json()
        assert bob_history["queries"] == []
        wh = (await http.get("/api/warehouses", headers=auth)).json()["warehouses"]
        assert wh == [{"name": "demo", "dialect": "duckdb", "default": True}]
        examples = (await http.get("/api/examples", headers=auth)).json()["questions"]
        assert examples
        health = (await http.get("/health")).json()
        assert health["status"] == "ok"
        metrics = (await http.get("/metrics")).text
        assert 'livebi_queries_total{status="done"}' in metrics
        assert "livebi_messages_received_total" in metrics
        assert (await http.get("/static/vendor/plotly.min.js")).status_code == 200
        assert (await http.get("/")).status_code == 200


async def test_concurrent_asks_cannot_race_past_the_per_user_limit(server_settings) -> None:
    server_settings.max_concurrent_queries_per_user = 2
    async with run_server(server_settings) as server:
        clients = [await server.connect("alice") for _ in range(6)]
        slow_sql = "SELECT count(*) FROM orders a, orders b, orders c"
        replies = await asyncio.gather(*(c.op("ask", sql=slow_sql) for c in clients))
        accepted = [r for r in replies if r["ok"]]
        assert len(accepted) == 2
        assert {r["error"]["code"] for r in replies if not r["ok"]} == {"too_many_queries"}
        for c, r in zip(clients, replies):
            if r["ok"]:
                await c.op("cancel", query_id=r["data"]["query_id"])
            await c.close()


async def test_internal_errors_keep_the_op_id_and_bad_tokens_never_crash(live_server) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        r = await http.get("/api/me", headers={"Authorization": "Bearer a.\u00e9".encode("utf-8")})
        assert r.status_code == 401
    client = await live_server.connect(None)
    reply = await client.op("auth", token="a.\u00e9")
    assert reply["id"] == 1 and reply["error"]["code"] == "unauthenticated"


async def test_a_removed_users_token_is_refused_once_the_user_cache_expires(server_settings) -> None:
    server_settings.user_cache_s = 0.2
    async with run_server(server_settings) as server:
        token = await server.token("alice")
        services = server.app.state.services
        assert (await services.auth.authenticate(token)).username == "alice"
        await services.store.remove_user("alice")
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            r = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "no longer exists" in r.text
