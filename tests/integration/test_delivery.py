"""The delivery layer end to end: recovery under churn, restarts, slow consumers, presence,
limits and the SSE fallback, with real servers and real clients on loopback."""

from __future__ import annotations

import asyncio
import json
import base64
import os
import random
import socket
import struct

import httpx
import pytest
import websockets

from livebi.client import LiveClient, LiveError
from livebi.protocol import CloseCode

from .conftest import USERS, run_server


class RawWebSocket:
    """A minimal blocking WebSocket client that reads only when told to (a slow consumer)."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def read_close_code(self, timeout: float) -> int | None:
        """Read frames until the close frame; return its code."""
        self.sock.settimeout(timeout)
        buf = b""

        def need(k: int) -> bytes:
            nonlocal buf
            while len(buf) < k:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed without a close frame")
                buf += chunk
            out, buf = buf[:k], buf[k:]
            return out

        while True:
            b0, b1 = need(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", need(8))[0]
            payload = need(n)
            if b0 & 0x0F == 0x8:
                return struct.unpack("!H", payload[:2])[0]


async def login(server, username: str = "alice", **kw) -> LiveClient:
    return await LiveClient.login(server.base_url, username, USERS[username], **kw)


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_python_client_asks_over_each_transport(live_server, transport) -> None:
    client = await login(live_server, transport=transport)
    assert client.active_transport == transport
    query = await client.ask("total revenue by region")
    result = await query.result()
    assert result["row_count"] == 5
    with pytest.raises(LiveError) as info:
        await (await client.ask("purple monkey dishwasher")).result()
    assert info.value.code == "not_understood" and info.value.data["stage"] == "nlp_processing"
    with pytest.raises(LiveError) as info:
        await client.call("subscribe", channel="nonsense")
    assert info.value.code == "unknown_channel"
    await client.close()


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_200_clients_see_every_publication_exactly_once_in_order_while_a_third_reconnect(
    server_settings, transport
) -> None:
    server_settings.max_connections_per_user = 1000
    server_settings.op_rate_per_s = 0
    async with run_server(server_settings) as server:
        services = server.app.state.services
        token = await server.token("alice")
        clients = [LiveClient(server.base_url, token, transport=transport, backoff_initial=0.05, backoff_max=0.5) for _ in range(200)]
        await asyncio.gather(*(c.connect() for c in clients))
        subs = await asyncio.gather(*(c.subscribe("system") for c in clients))
        churners = random.Random(7).sample(clients, len(clients) // 3)

        async def churn() -> None:
            rng = random.Random(11)
            for _ in range(3):
                for c in churners:
                    await asyncio.sleep(rng.random() * 0.01)
                    await c.kill_transport()
                await asyncio.sleep(0.3)

        async def publish() -> None:
            for i in range(300):
                await services.publish("system", "notification", {"i": i})
                await asyncio.sleep(0.005)

        await asyncio.gather(churn(), publish())
        final_seq = services.hub.position("system")[1]

        async def caught_up(sub) -> None:
            while sub.seq < final_seq:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(asyncio.gather(*(caught_up(s) for s in subs)), 60)
        for client, sub in zip(clients, subs):
            seen = sub.pending()
            seqs = [p["seq"] for p in seen]
            assert seqs == sorted(set(seqs)), "in order, no duplicates"
            assert sub.gaps == 0
            notes = [p["data"]["i"] for p in seen if p["type"] == "notification"]
            assert notes == list(range(300)), "every publication exactly once"
            assert set(sub.recovered) <= {None, True}, "history covered every gap"
        reconnects = [c.connects - 1 for c in churners]
        assert min(reconnects) >= 1 and sum(reconnects) >= len(churners) * 2, f"the churners did reconnect: {reconnects}"
        await asyncio.gather(*(c.close() for c in clients))


async def test_restart_clients_come_back_and_are_told_recovery_failed(server_settings) -> None:
    resets: list[str] = []
    async with run_server(server_settings) as server:
        token = await server.token("alice")
        clients = [LiveClient(server.base_url, token, backoff_initial=0.05, backoff_max=0.3) for _ in range(20)]
        await asyncio.gather(*(c.connect() for c in clients))
        subs = await asyncio.gather(*(c.subscribe("system", on_reset=lambda s: resets.append(s.channel)) for c in clients))
        await server.app.state.services.publish("system", "notification", {"before": True})
    # The server shut down gracefully (1012); a new process comes up on the same port.
    async with run_server(server_settings) as server2:
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def back(sub) -> None:
            while len(sub.recovered) < 2:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(asyncio.gather(*(back(s) for s in subs)), 10)
        elapsed = loop.time() - started
        print(f"\n20 clients resubscribed {elapsed * 1000:.0f} ms after the new server was up")
        assert all(s.recovered[-1] is False for s in subs), "memory broker: history is gone"
        assert len(resets) == 20
        for c in clients:
            assert (await c.call("ping"))["pong"] is True
        await server2.app.state.services.publish("system", "notification", {"after": True})
        for s in subs:
            while True:
                pub = await s.get(timeout=5)
                if pub["type"] == "notification" and pub["data"].get("after"):
                    break
        await asyncio.gather(*(c.close() for c in clients))


async def test_graceful_shutdown_closes_websockets_with_1012(server_settings) -> None:
    async with run_server(server_settings) as server:
        ws = await websockets.connect(server.ws_url + "?ticket=" + await server.ticket("alice"))
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == CloseCode.service_restart


async def test_slow_consumer_is_cut_off_and_others_get_everything(server_settings) -> None:
    server_settings.outgoing_queue_bytes = 256 * 1024
    async with run_server(server_settings) as server:
        services = server.app.state.services
        token = await server.token("alice")
        normal = [LiveClient(server.base_url, token) for _ in range(10)]
        await asyncio.gather(*(c.connect() for c in normal))
        subs = await asyncio.gather(*(c.subscribe("system") for c in normal))
        # A client that subscribes and then never reads: a raw socket with a tiny receive buffer.
        # (Blocking socket calls run in a thread: the server shares this event loop.)
        slow = await asyncio.to_thread(RawWebSocket, server_settings.websockets_port() or server_settings.port, "/ws?ticket=" + await server.ticket("alice"))
        await asyncio.to_thread(slow.send_text, json.dumps({"id": 1, "op": "subscribe", "channel": "system"}))
        await asyncio.sleep(0.2)
        payload = "x" * 20_000
        cut_at = None
        for i in range(600):
            await services.publish("system", "notification", {"i": i, "pad": payload})
            await asyncio.sleep(0.002)  # a steady stream the normal readers can keep up with
            # Cut: seen closing, or already gone and counted (a server whose close does not
            # wait on the paused socket, ws_server = "websockets", ends the session at once).
            if cut_at is None and (services.metrics.slow_consumers._value.get() == 1 or any(
                c.close_code == CloseCode.slow_consumer for c in services.connections.connections.values()
            )):
                cut_at = i
                # Read what the kernel buffered, then the close frame (sent within its 5 s grace).
                slow_reader = asyncio.ensure_future(asyncio.to_thread(slow.read_close_code, 10))
        assert cut_at is not None, "the slow reader was cut off while publishing went on"
        last = services.hub.position("system")[1]
        for sub in subs:
            while sub.seq < last:
                await asyncio.sleep(0.05)
            got = [p["data"]["i"] for p in sub.pending() if p["type"] == "notification"]
            assert got == list(range(600))
        assert await slow_reader == CloseCode.slow_consumer
        assert services.metrics.slow_consumers._value.get() == 1
        await asyncio.gather(*(c.close() for c in normal))


async def test_presence_join_update_leave(live_server) -> None:
    """On a dashboard: joins, state updates and leaves arrive as coalesced `changes`; on
    system the presence op answers a count and nothing is ever published."""
    alice = await login(live_server, "alice")
    bob = await login(live_server, "bob")
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:
        r = await http.post("/api/dashboards", json={"title": "Presence"}, headers={"Authorization": f"Bearer {alice.token}"})
        r.raise_for_status()
        dashboard_id = r.json()["id"]
        r = await http.put(f"/api/dashboards/{dashboard_id}/sharing", json={"public": True},
                           headers={"Authorization": f"Bearer {alice.token}"})
        r.raise_for_status()
    channel = f"dashboard:{dashboard_id}"
    a_sub = await alice.subscribe(channel)
    a_sys = await alice.subscribe("system")
    await bob.subscribe(channel)
    await bob.subscribe("system")
    seen = []

    async def until(predicate):
        while not predicate():
            pub = await a_sub.get(5)
            if pub["type"] == "presence":
                seen.append(pub["data"])

    await until(lambda: seen and seen[-1]["count"] == 2)
    members = (await alice.call("presence", channel=channel))["members"]
    assert sorted(m["username"] for m in members) == ["alice", "bob"]
    bob_id = next(m["user_id"] for m in members if m["username"] == "bob")
    bob_conn = next(m["conn_id"] for m in members if m["username"] == "bob")
    await bob.call("presence", channel=channel, state={"editing": "w1"})
    await until(lambda: any(e["updated"] for e in seen))
    update = next(e for e in seen if e["updated"])
    assert update["updated"][0]["state"] == {"editing": "w1"} and update["updated"][0]["user_id"] == bob_id
    await bob.close()
    await until(lambda: seen[-1]["left"])
    assert seen[-1] == {"event": "changes", "count": 1, "joined": [], "updated": [], "left": [bob_conn]}
    assert all(e["event"] == "changes" for e in seen)
    members = (await alice.call("presence", channel=channel))["members"]
    assert [m["username"] for m in members] == ["alice"]

    system = await alice.call("presence", channel="system")
    assert system == {"channel": "system", "members": [], "count": 1, "counts_only": True}
    assert not [p for p in a_sys.pending() if p["type"] == "presence"], "system publishes no presence"
    with pytest.raises(LiveError) as info:
        await alice.call("presence", channel="system", state={"editing": "w1"})
    assert info.value.code == "invalid_op"
    with pytest.raises(LiveError) as info:
        await alice.call("presence", channel="user:" + members[0]["user_id"])
    assert info.value.code == "invalid_op"
    with pytest.raises(LiveError) as info:
        await alice.call("presence", channel=channel, state={"big": "x" * 5000})
    assert info.value.code == "invalid_op"
    await alice.close()


async def test_op_rate_limit(server_settings) -> None:
    server_settings.op_rate_per_s = 5
    server_settings.op_burst = 5
    async with run_server(server_settings) as server:
        client = await server.connect("alice")
        replies = [await client.op("ping") for _ in range(15)]
        codes = [r["error"]["code"] for r in replies if not r["ok"]]
        assert codes and set(codes) == {"rate_limited"}
        await asyncio.sleep(1.0)
        assert (await client.op("ping"))["ok"], "the bucket refills; the connection survived"
        await client.close()


async def test_connection_limits(server_settings) -> None:
    server_settings.max_connections_per_user = 2
    server_settings.max_connections = 4
    async with run_server(server_settings) as server:
        a1, a2 = await server.connect("alice"), await server.connect("alice")
        for c in (a1, a2):  # a reply proves the server has bound the user to the connection
            assert (await c.op("ping"))["ok"]
        a3 = await server.connect("alice")
        assert (await a3.wait_closed())[0] == CloseCode.too_many_connections
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            r = await http.get("/sse", params={"ticket": await server.ticket("alice")})
            assert r.status_code == 429
        b1, b2 = await server.connect("bob"), await server.connect("bob")
        for c in (b1, b2):
            assert (await c.op("ping"))["ok"]
        over = await server.connect("bob")
        assert (await over.wait_closed())[0] == CloseCode.try_again_later
        for c in (a1, a2, b1, b2):
            await c.close()


async def test_http_only_mode_python_client_falls_back_to_sse(server_settings) -> None:
    server_settings.websocket = False
    states: list[tuple[str, str | None]] = []
    async with run_server(server_settings) as server:
        client = await login(server, on_state=lambda s, d: states.append((s, d)), backoff_initial=0.05)
        assert client.active_transport == "sse"
        result = await (await client.ask("how many customers")).result()
        assert result["row_count"] == 1
        assert any(state == "degraded" for state, _ in states), "the user is told"
        await client.close()


async def test_sse_resumes_from_last_event_id(live_server) -> None:
    token = await live_server.token("alice")
    services = live_server.app.state.services
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as http:
        async with http.stream("GET", "/sse", headers=headers) as stream:
            lines = stream.aiter_lines()
            opening = None
            async for line in lines:
                if line.startswith("data:"):
                    opening = json.loads(line[5:])
                    break
            conn = opening["conn_id"]
            r = await http.post("/sse/ops", params={"conn": conn}, headers=headers, json={"id": 1, "op": "subscribe", "channel": "system"})
            assert r.json()["ok"]
            await services.publish("system", "notification", {"n": 1})
            last_id = None
            async for line in lines:
                if line.startswith("id:"):
                    last_id = line[3:].strip()
                if line.startswith("data:") and '"notification"' in line:
                    break
        # Gone: publications keep coming.
        for n in (2, 3):
            await services.publish("system", "notification", {"n": n})
        other = await http.post("/sse/ops", params={"conn": conn}, headers=headers, json={"id": 2, "op": "ping"})
        assert other.status_code == 404, "the old stream is gone"
        async with http.stream("GET", "/sse", headers={**headers, "Last-Event-ID": last_id}) as stream:
            got = []
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("type") == "open":
                        assert msg["resumed"][0]["channel"] == "system" and msg["resumed"][0]["recovered"] is True
                        continue
                    items = msg["messages"] if msg.get("type") == "message_batch" else [msg]
                    got += [m["data"]["n"] for m in items if m["type"] == "notification"]
                    if 3 in got:
                        break
        assert got == [2, 3]
        bad = await http.get("/sse/ops", headers=headers)
        assert bad.status_code == 405
        forged = await http.post("/sse/ops", params={"conn": "nope"}, headers=headers, json={"id": 1, "op": "ping"})
        assert forged.status_code == 404
