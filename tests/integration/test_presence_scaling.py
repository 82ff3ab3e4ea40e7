"""Presence at scale with real WebSocket clients on a real server: clients connecting one after
another cost O(1) presence frames each (not one per member already there), a burst of joins is
folded into one update, a crowd switches to counts, and connect + auth + subscribe takes one
round trip (the auth op's subscribe list)."""

from __future__ import annotations

import asyncio
import json
import time

import websockets

from .conftest import LiveServer, WSClient, run_server
from .test_dashboards import Api, create

N = 40


def presence_pubs(client: WSClient) -> list[dict]:
    return [p for p in client.publications if p.get("type") == "presence"]


async def connect_one_trip(server: LiveServer, channels: list[str]) -> tuple[WSClient, dict]:
    """Connect, authenticate and subscribe with a single frame (no ticket)."""
    client = WSClient(await websockets.connect(server.ws_url, max_size=None))
    reply = await client.op("auth", token=await server.token("alice"), subscribe=channels)
    return client, reply


async def public_dashboard(server: LiveServer) -> str:
    d = await create(server, "alice", "Crowd")
    r = await Api(server, "alice")("PUT", f"/api/dashboards/{d['id']}/sharing", json={"public": True})
    assert r.status_code == 200, r.text
    return d["id"]


async def test_clients_connecting_one_after_another_cost_o1_presence_frames(server_settings) -> None:
    server_settings.max_connections_per_user = 200
    server_settings.presence_coalesce_ms = 200
    async with run_server(server_settings) as server:
        channel = f"dashboard:{await public_dashboard(server)}"
        clients = []
        started = time.monotonic()
        for _ in range(N):
            client, reply = await connect_one_trip(server, ["system", channel])
            assert reply["ok"] and [s["ok"] for s in reply["data"]["subscribed"]] == [True, True], reply
            clients.append(client)
        elapsed = time.monotonic() - started
        # Everyone ends up seeing all N members (after the last coalesced update).
        for client in clients:
            await client._wait_for(lambda c=client: any(p["data"]["count"] == N for p in presence_pubs(c)), 10)
        await asyncio.sleep(0.5)
        total = sum(len(presence_pubs(c)) for c in clients)
        on_system = sum(1 for c in clients for p in presence_pubs(c) if p["channel"] == "system")
        intervals = elapsed / (server_settings.presence_coalesce_ms / 1000) + 2
        print(f"\n{N} clients connected one after another in {elapsed:.2f} s: {total} presence frames "
              f"(one per member already there would be {N * (N + 1)})")
        assert on_system == 0, "system carries no presence publications"
        # At most one coalesced update per interval, each reaching at most N clients: O(N) for
        # a fixed interval, where a join per member already there would be N(N+1)/2 per channel.
        assert total <= N * min(intervals, 4), (total, elapsed)
        members = (await clients[0].op("presence", channel=channel))["data"]
        assert members["count"] == N and len(members["members"]) == N and not members["counts_only"]
        await asyncio.gather(*(c.close() for c in clients))


async def test_a_burst_of_joins_is_folded_into_one_update(server_settings) -> None:
    server_settings.max_connections_per_user = 200
    server_settings.presence_coalesce_ms = 3000  # longer than the burst takes
    async with run_server(server_settings) as server:
        channel = f"dashboard:{await public_dashboard(server)}"
        watcher, _ = await connect_one_trip(server, [channel])
        await watcher._wait_for(lambda: presence_pubs(watcher), 10)  # its own join, alone
        burst = await asyncio.gather(*(connect_one_trip(server, [channel]) for _ in range(10)))
        update = await watcher._wait_for(lambda: presence_pubs(watcher)[1:], 10)
        await asyncio.sleep(0.3)
        assert len(presence_pubs(watcher)) == 2, "the ten joins came as one update"
        data = update[0]["data"]
        assert data["event"] == "changes" and data["count"] == 11 and len(data["joined"]) == 10
        # Ten leaves: one update again.
        await asyncio.gather(*(c.close() for c, _ in burst))
        left = await watcher._wait_for(lambda: presence_pubs(watcher)[2:], 10)
        assert left[0]["data"]["count"] == 1 and len(left[0]["data"]["left"]) == 10
        await watcher.close()


async def test_a_crowd_gets_counts_only(server_settings) -> None:
    server_settings.max_connections_per_user = 200
    server_settings.presence_coalesce_ms = 50
    server_settings.presence_max_members = 4
    server_settings.presence_count_interval_ms = 100
    async with run_server(server_settings) as server:
        channel = f"dashboard:{await public_dashboard(server)}"
        clients = [(await connect_one_trip(server, [channel]))[0] for _ in range(6)]
        first = clients[0]
        await first._wait_for(lambda: [p for p in presence_pubs(first) if p["data"] == {"event": "count", "count": 6}], 10)
        reply = (await first.op("presence", channel=channel))["data"]
        assert reply == {"channel": channel, "members": [], "count": 6, "counts_only": True}
        for client in clients[2:]:
            await client.close()
        snapshot = await first._wait_for(lambda: [p for p in presence_pubs(first) if p["data"]["event"] == "members"], 10)
        assert snapshot[0]["data"]["count"] == 2 and len(snapshot[0]["data"]["members"]) == 2
        await asyncio.gather(*(c.close() for c in clients[:2]))


async def test_auth_op_subscribes_in_the_same_round_trip(live_server: LiveServer) -> None:
    ws = await websockets.connect(live_server.ws_url, max_size=None)
    try:
        token = await live_server.token("alice")
        await ws.send(json.dumps({"id": 1, "op": "auth", "token": token,
                                  "subscribe": ["system", {"channel": "query:nope"}, "bogus"]}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        reply = first["messages"][0] if first.get("type") == "message_batch" else first
        assert reply["ok"] and reply["data"]["user"]["username"] == "alice"
        system, query, bogus = reply["data"]["subscribed"]
        assert system["ok"] and system["channel"] == "system" and isinstance(system["seq"], int)
        assert not query["ok"] and query["error"]["code"] == "not_found"
        assert not bogus["ok"] and bogus["error"]["code"] == "unknown_channel"
        # The existing flow still works on the same connection.
        await ws.send(json.dumps({"id": 2, "op": "subscribe", "channel": "system"}))
        again = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert again["id"] == 2 and again["ok"]
    finally:
        await ws.close()
