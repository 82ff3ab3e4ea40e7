"""Three real ``livebi serve`` processes on loopback sharing Redis (broker) and PostgreSQL
(metadata store): a publication made on one node reaches clients of another, and the clients
of a SIGKILLed node recover on a surviving one without loss or duplication."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from livebi.protocol import CloseCode

from .conftest import LiveServer, WSClient, _add_users, free_port
from .test_redis_broker import OwnRedis, drop_prefix

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

LIVEBI = str(Path(sys.executable).parent / "livebi")


class Node:
    def __init__(self, name: str, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.name, self.proc, self.port, self.log = name, proc, port, log
        self.server = LiveServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", app=None)


async def start_node(name: str, tmp_path: Path, *, store_url: str, warehouse: Path, redis_url: str, prefix: str) -> Node:
    port = free_port()
    data_dir = tmp_path / name
    data_dir.mkdir()
    log = tmp_path / f"{name}.log"
    env = {
        **os.environ,
        "LIVEBI_BROKER_URL": redis_url,
        "LIVEBI_REDIS_PREFIX": prefix,
        "LIVEBI_SECRET_KEY": "cluster-test-secret",  # tokens from one node are good on every node
        "LIVEBI_DATA_DIR": str(data_dir),
        "LIVEBI_GC_TUNING": "false",
        "LIVEBI_REDIS_RETRY_S": "0.2",  # presence heartbeats every second: a dead node expires in 3 s
        "LIVEBI_LIVE_LEASE_S": "2",  # a dead node's live dashboards are taken over within ~2 s
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [LIVEBI, "serve", "--store", store_url, "--warehouse", f"demo=duckdb:///{warehouse}",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    return Node(name, proc, port, log)


async def wait_ready(node: Node, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            if node.proc.poll() is not None:
                raise RuntimeError(f"node {node.name} exited: {node.log.read_text()[-3000:]}")
            try:
                if (await http.get(f"{node.server.base_url}/livez", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"node {node.name} did not start: {node.log.read_text()[-3000:]}")
            await asyncio.sleep(0.2)


@pytest.fixture
async def cluster(tmp_path: Path, pg_database: str, redis_url: str, demo_duckdb: Path):
    prefix = f"cluster:{secrets.token_hex(5)}:"
    await _add_users(pg_database)  # migrates the fresh database once, before the nodes start
    nodes = [await start_node(n, tmp_path, store_url=pg_database, warehouse=demo_duckdb, redis_url=redis_url, prefix=prefix)
             for n in ("a", "b", "c")]
    try:
        await asyncio.gather(*(wait_ready(n) for n in nodes))
        yield {n.name: n for n in nodes}
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.proc.wait(15)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
        await drop_prefix(redis_url, prefix)


async def create_dashboard(server: LiveServer, username: str) -> str:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        r = await http.post("/api/dashboards", json={"title": "Cluster"},
                            headers={"Authorization": f"Bearer {await server.token(username)}"})
        assert r.status_code == 201, r.text
        return r.json()["id"]


async def edit(client: WSClient, dashboard_id: str, n: int) -> None:
    reply = await client.op("edit", dashboard_id=dashboard_id, ops=[{"type": "update_dashboard", "fields": {"description": f"v{n}"}}])
    assert reply["ok"], reply


def descriptions(client: WSClient, channel: str) -> list[str]:
    return [p["data"]["data"]["description"] for p in client.on(channel) if p["type"] == "dashboard_update"]


def seqs(client: WSClient, channel: str) -> list[int]:
    """Every publication's seq on ``channel`` (presence publications share the sequence)."""
    return [p["seq"] for p in client.on(channel)]


def contiguous(values: list[int]) -> bool:
    return values == list(range(values[0], values[0] + len(values)))


async def test_three_nodes_share_channels_and_a_killed_nodes_clients_recover_elsewhere(cluster) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    dashboard_id = await create_dashboard(c.server, "alice")
    channel = f"dashboard:{dashboard_id}"
    async with httpx.AsyncClient() as http:  # each node says it runs in cluster mode
        for node in (a, b, c):
            assert (await http.get(f"{node.server.base_url}/health")).json()["broker"]["mode"] == "cluster"

    editor = await c.server.connect("alice")
    on_a = await a.server.connect("alice")
    on_b = await b.server.connect("alice")
    try:
        sub_a = await on_a.op("subscribe", channel=channel)
        sub_b = await on_b.op("subscribe", channel=channel)
        assert sub_a["ok"] and sub_b["ok"], (sub_a, sub_b)
        assert sub_a["data"]["epoch"] == sub_b["data"]["epoch"]  # one epoch cluster-wide

        # an edit on node C reaches the clients of nodes A and B, once, in order
        for n in range(1, 4):
            await edit(editor, dashboard_id, n)
        want = ["v1", "v2", "v3"]
        await on_a._wait_for(lambda: len(descriptions(on_a, channel)) >= 3)
        await on_b._wait_for(lambda: len(descriptions(on_b, channel)) >= 3)
        assert descriptions(on_a, channel) == want and descriptions(on_b, channel) == want
        assert contiguous(seqs(on_a, channel)) and contiguous(seqs(on_b, channel))

        # presence covers every node: B's member (marked by its state) is listed on A
        assert (await on_b.op("presence", channel=channel, state={"node": "b"}))["ok"]

        def b_member(members: list[dict]) -> dict | None:
            return next((m for m in members if m["state"] == {"node": "b"}), None)

        await on_a._wait_for(lambda: any(b_member(p["data"].get("updated", []) + p["data"].get("joined", []))
                                         for p in on_a.on(channel) if p["type"] == "presence"))
        listed = (await on_a.op("presence", channel=channel))["data"]
        b_conn = b_member(listed["members"])["conn_id"]
        assert len(listed["members"]) == 2 and listed["count"] == 2
        await on_b._wait_for(lambda: any(b_member(p["data"].get("updated", []) + p["data"].get("joined", []))
                                         for p in on_b.on(channel) if p["type"] == "presence"))
        epoch, last = on_b.on(channel)[-1]["epoch"], on_b.on(channel)[-1]["seq"]

        # node B dies; its client misses edits, then reconnects to A with its position
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        await on_b.wait_closed(10)
        for n in range(4, 8):
            await edit(editor, dashboard_id, n)
        moved = await a.server.connect("alice")
        try:
            reply = await moved.op("subscribe", channel=channel, since={"epoch": epoch, "seq": last})
            assert reply["ok"] and reply["data"]["recovered"] is True, reply
            for n in range(8, 10):  # live ones after the replay
                await edit(editor, dashboard_id, n)
            await moved._wait_for(lambda: len(descriptions(moved, channel)) >= 6)
            await asyncio.sleep(0.3)  # nothing doubled arrives late
            assert descriptions(on_b, channel) + descriptions(moved, channel) == [f"v{n}" for n in range(1, 10)]
            assert contiguous(seqs(on_b, channel) + seqs(moved, channel))  # no gap, no duplicate
            await on_a._wait_for(lambda: len(descriptions(on_a, channel)) >= 9)
            assert descriptions(on_a, channel) == [f"v{n}" for n in range(1, 10)]
            assert contiguous(seqs(on_a, channel))
            # the killed node's member is announced as left, once, by a surviving node
            await on_a._wait_for(lambda: any(b_conn in p["data"].get("left", []) for p in on_a.on(channel)
                                             if p["type"] == "presence"), 15)
            listed = (await on_a.op("presence", channel=channel))["data"]
            assert b_conn not in [m["conn_id"] for m in listed["members"]]
            await asyncio.sleep(1.5)
            assert sum(b_conn in p["data"].get("left", []) for p in on_a.on(channel) if p["type"] == "presence") == 1
        finally:
            await moved.close()
    finally:
        for client in (editor, on_a, on_b):
            await client.close()


async def test_ask_on_a_redis_broker_streams_every_publication_in_order(server_settings, redis_url: str) -> None:
    """The asker subscribes while its pipeline may already publish (the node follows the
    channel through Redis first): what came before is replayed, nothing is missed or doubled."""
    from .conftest import run_server

    prefix = f"ask:{secrets.token_hex(5)}:"
    settings = server_settings.model_copy(update={"broker_url": redis_url, "redis_prefix": prefix})
    try:
        async with run_server(settings) as server:
            client = await server.connect("alice")
            try:
                for question in ("total revenue by region", "number of orders"):
                    reply = await client.op("ask", question=question)
                    assert reply["ok"], reply
                    channel = reply["data"]["channel"]
                    final = await client.until_final(channel)
                    assert final["type"] == "result", final
                    seqs = [p["seq"] for p in client.on(channel)]
                    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3
            finally:
                await client.close()
    finally:
        await drop_prefix(redis_url, prefix)


@pytest.fixture
def own_redis(tmp_path):
    yield from OwnRedis.serving(tmp_path)


async def test_a_server_says_when_redis_is_away_keeps_serving_and_resumes(server_settings, own_redis) -> None:
    """Redis (one this test starts) dies and comes back: the server tells `system`
    subscribers and /health, an edit still reaches its own clients, then cluster mode resumes."""
    from .conftest import run_server

    settings = server_settings.model_copy(update={"broker_url": own_redis.url, "redis_retry_s": 0.2})
    async with run_server(settings) as server:
        dashboard_id = await create_dashboard(server, "alice")
        channel = f"dashboard:{dashboard_id}"
        client = await server.connect("alice")
        try:
            assert (await client.op("subscribe", channel="system"))["ok"]
            assert (await client.op("subscribe", channel=channel))["ok"]

            async def health() -> dict:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{server.base_url}/health")).json()["broker"]

            def notices() -> list[dict]:
                return [p["data"] for p in client.on("system") if p["type"] == "service_degradation"]

            assert (await health())["mode"] == "cluster"
            await edit(client, dashboard_id, 1)
            await client._wait_for(lambda: descriptions(client, channel) == ["v1"])

            own_redis.kill()
            await edit(client, dashboard_id, 2)  # the node notices on this publication at the latest
            await client._wait_for(lambda: descriptions(client, channel) == ["v1", "v2"])
            await client._wait_for(lambda: [n["active"] for n in notices()] == [True])
            assert notices()[0]["component"] == "broker" and notices()[0]["mode"] == "single-node"
            assert (await health())["mode"] == "single-node"

            own_redis.start()
            await client._wait_for(lambda: [n["active"] for n in notices()] == [True, False])
            assert (await health())["mode"] == "cluster"
            await edit(client, dashboard_id, 3)
            await client._wait_for(lambda: descriptions(client, channel) == ["v1", "v2", "v3"])
        finally:
            await client.close()


# -- live dashboards, tickets and SSE across nodes ------------------------------------------------


async def metric(node: Node, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{node.server.base_url}/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


def finished(client: WSClient, channel: str) -> list[dict]:
    return [p["data"] for p in client.on(channel)
            if p["type"] == "dashboard_refresh" and p["data"]["state"] in ("done", "unchanged", "failed")]


async def lease_holder(nodes: list[Node]) -> Node:
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            for node in nodes:
                if (await http.get(f"{node.server.base_url}/health")).json()["cluster"]["leases"]["held"]:
                    return node
            await asyncio.sleep(0.1)
    raise AssertionError("no node holds the dashboard's lease")


async def test_a_live_dashboard_is_refreshed_by_exactly_one_node_and_taken_over_when_it_dies(cluster) -> None:
    nodes = [cluster["a"], cluster["b"], cluster["c"]]
    dashboard_id = await create_dashboard(nodes[0].server, "alice")
    channel = f"dashboard:{dashboard_id}"
    viewers = {node.name: await node.server.connect("alice") for node in nodes}
    try:
        for viewer in viewers.values():
            assert (await viewer.op("subscribe", channel=channel))["ok"]
        # A widget added on C: every node replans (C by its own edit, A and B from the
        # publication); all three want its first refresh, one node runs it for everyone.
        reply = await viewers["c"].op("edit", dashboard_id=dashboard_id, ops=[{"type": "add_widget", "widget": {
            "title": "Orders", "sql": "SELECT count(*) AS n FROM orders",
            "refresh": {"interval_s": None, "on_data_change": False}}}])
        assert reply["ok"], reply
        for viewer in viewers.values():
            await viewer._wait_for(lambda v=viewer: finished(v, channel), timeout=30)
        await asyncio.sleep(1.5)  # a second node refreshing too would have published by now
        assert [len(finished(v, channel)) for v in viewers.values()] == [1, 1, 1]
        assert finished(viewers["a"], channel)[0]["state"] == "done"
        assert sum([await metric(n, "livebi_live_queries_total") for n in nodes]) == 1

        # A manual refresh asked on a node that does not hold the lease runs on the holder, once.
        holder = await lease_holder(nodes)
        other = next(n for n in nodes if n is not holder)
        reply = await viewers[other.name].op("refresh", dashboard_id=dashboard_id)
        assert reply["ok"], reply
        for viewer in viewers.values():
            await viewer._wait_for(lambda v=viewer: len(finished(v, channel)) >= 2, timeout=30)
        await asyncio.sleep(1.0)
        assert [len(finished(v, channel)) for v in viewers.values()] == [2, 2, 2]
        assert sum([await metric(n, "livebi_live_queries_total") for n in nodes]) == 2

        # The holder dies: its lease expires (2 s) and a survivor takes over.
        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(10)
        survivors = [n for n in nodes if n is not holder]
        watcher = viewers[survivors[0].name]
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(finished(watcher, channel)) < 3:
            assert loop.time() - started < 15, "no survivor took the dashboard over"
            reply = await viewers[survivors[1].name].op("refresh", dashboard_id=dashboard_id)
            assert reply["ok"], reply
            await asyncio.sleep(0.5)
        assert await lease_holder(survivors) in survivors
        assert sum([await metric(n, "livebi_live_queries_total") for n in survivors]) >= 1
    finally:
        for viewer in viewers.values():
            await viewer.ws.close()


async def test_tickets_are_single_use_and_sse_ops_reach_their_stream_on_any_node(cluster) -> None:
    import websockets

    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    ticket = await a.server.ticket("alice")
    ws = await websockets.connect(f"{b.server.ws_url}?ticket={ticket}")
    try:
        await ws.send(json.dumps({"id": 1, "op": "ping"}))
        assert json.loads(await ws.recv())["ok"]
        again = await websockets.connect(f"{c.server.ws_url}?ticket={ticket}")  # replayed on another node
        reply = json.loads(await again.recv())
        assert "already used" in reply["error"]["message"], reply
        await again.wait_closed()
        assert again.close_code == CloseCode.unauthenticated
    finally:
        await ws.close()

    # An SSE stream on A; its ops POSTed to B and C (a load balancer without sticky sessions).
    token = await a.server.token("alice")
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("GET", f"{a.server.base_url}/sse", params={"ticket": await a.server.ticket("alice")}) as stream:
            lines = stream.aiter_lines()
            opened = None
            async for line in lines:
                if line.startswith("data: "):
                    opened = json.loads(line[6:])
                    break
            assert opened and opened["type"] == "open", opened
            conn = opened["conn_id"]
            user_channel = f"user:{opened['user']['id']}"
            for node, op_id in ((b, 1), (c, 2), (a, 3)):
                r = await http.post(f"{node.server.base_url}/sse/ops", params={"conn": conn},
                                    headers={"Authorization": f"Bearer {token}"}, json={"id": op_id, "op": "ping"})
                assert r.status_code == 200, (node.name, r.text)
                assert r.json()["id"] == op_id and r.json()["ok"], r.json()
            r = await http.post(f"{b.server.base_url}/sse/ops", params={"conn": conn},
                                headers={"Authorization": f"Bearer {token}"},
                                json={"id": 4, "op": "subscribe", "channel": user_channel})
            assert r.status_code == 200 and r.json()["ok"], r.text
            bob = await c.server.token("bob")
            r = await http.post(f"{c.server.base_url}/sse/ops", params={"conn": conn},
                                headers={"Authorization": f"Bearer {bob}"}, json={"id": 5, "op": "ping"})
            assert r.status_code == 403, r.text
            r = await http.post(f"{c.server.base_url}/sse/ops", params={"conn": "nonexistent"},
                                headers={"Authorization": f"Bearer {token}"}, json={"id": 6, "op": "ping"})
            assert r.status_code == 404, r.text
