"""The Redis broker with two "nodes" (two hubs and brokers) in one process on one key prefix,
against the real Redis at 127.0.0.1:6379 (each test on its own prefix)."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
import redis.asyncio as aioredis

from livebi.realtime.hub import Delivery, Hub
from livebi.realtime.redis_broker import RedisBroker

pytestmark = pytest.mark.redis


class Node:
    """One livebi process's realtime core: a hub, a Redis broker and what it delivered."""

    def __init__(self, url: str, prefix: str, **kw) -> None:
        self.hub = Hub(history_size=kw.setdefault("history_size", 100))
        self.delivered: dict[str, list[tuple[str, int, dict]]] = {}  # conn -> (channel, seq, frame)
        self.broker = RedisBroker(url, self.hub, self._deliver, prefix=prefix, retry_s=kw.pop("retry_s", 0.2), **kw)

    def _deliver(self, delivery: Delivery) -> None:
        for conn in delivery.targets:
            self.delivered.setdefault(conn, []).append((delivery.channel, delivery.seq, json.loads(delivery.frame)))

    async def subscribe(self, conn: str, channel: str, since=None, **kw):
        since, older = await self.broker.prepare(channel, since, **kw)
        result = self.hub.subscribe(conn, channel, since, older)
        for seq, frame in result.missed:  # the replay goes out before anything later
            self.delivered.setdefault(conn, []).append((channel, seq, json.loads(frame)))
        return result

    def unsubscribe(self, conn: str, channel: str) -> None:
        self.hub.unsubscribe(conn, channel)
        self.broker.released(channel)

    def seqs(self, conn: str, channel: str) -> list[int]:
        return [seq for ch, seq, _ in self.delivered.get(conn, []) if ch == channel]


async def drop_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key a test made under its own prefix."""
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def prefix(redis_url: str):
    prefix = f"test:{secrets.token_hex(5)}:"
    yield prefix
    await drop_prefix(redis_url, prefix)


@pytest.fixture
async def nodes(redis_url: str, prefix: str):
    started: list[Node] = []

    async def start(**kw) -> Node:
        node = Node(redis_url, prefix, **kw)
        await node.broker.start()
        started.append(node)
        return node

    yield start
    for node in started:
        await node.broker.stop()


async def until(predicate, timeout: float = 5.0) -> None:
    async def loop():
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


async def test_publication_on_one_node_reaches_the_other_once_in_order(nodes) -> None:
    a, b = await nodes(), await nodes()
    await b.subscribe("b1", "dashboard:1")
    await b.subscribe("b2", "dashboard:1")
    await a.subscribe("a1", "dashboard:1")
    for i in range(50):
        await (a if i % 2 else b).broker.publish("dashboard:1", "dashboard_update", {"i": i})
    await until(lambda: len(b.seqs("b1", "dashboard:1")) == 50 and len(a.seqs("a1", "dashboard:1")) == 50)
    await asyncio.sleep(0.1)  # nothing more (no duplicate) arrives
    for node, conn in ((b, "b1"), (b, "b2"), (a, "a1")):
        assert node.seqs(conn, "dashboard:1") == list(range(1, 51))
        assert [f["data"]["i"] for _, _, f in node.delivered[conn]] == list(range(50))
    frames = [f for _, _, f in b.delivered["b1"]]
    assert len({f["epoch"] for f in frames}) == 1
    assert set(frames[0]) == {"channel", "epoch", "seq", "type", "ts", "data"}
    assert list(frames[0]) == ["channel", "epoch", "seq", "type", "ts", "data"]  # the hub's frame layout


async def test_recovery_with_since_across_nodes(nodes) -> None:
    a, b = await nodes(), await nodes()
    result = await a.subscribe("a1", "user:7")
    for i in range(5):
        await a.broker.publish("user:7", "notification", {"i": i})
    await until(lambda: len(a.seqs("a1", "user:7")) == 5)
    position = (result.epoch, 2)  # the client saw seq 1..2, then its node died
    # ...and it moves to node B, which does not follow user:7 yet
    moved = await b.subscribe("b1", "user:7", since=position)
    assert moved.recovered is True
    assert moved.epoch == result.epoch
    assert b.seqs("b1", "user:7") == [3, 4, 5]
    await a.broker.publish("user:7", "notification", {"i": 5})
    await until(lambda: b.seqs("b1", "user:7") == [3, 4, 5, 6])
    # a wrong epoch or a position older than history is not recovered
    assert (await b.subscribe("b2", "user:7", since=("other", 2))).recovered is False


async def test_recovery_races_live_publications_without_loss_or_duplicate(nodes) -> None:
    a, b = await nodes(history_size=500), await nodes(history_size=500)  # all 200 stay recoverable
    await a.subscribe("a0", "dashboard:9")
    epoch = a.hub.position("dashboard:9")[0]
    done = asyncio.Event()

    async def publish_many() -> None:
        for i in range(200):
            await a.broker.publish("dashboard:9", "dashboard_update", {"i": i})
            if i == 20:
                done.set()
        done.set()

    publisher = asyncio.create_task(publish_many())
    await done.wait()
    # subscribers join node B (which follows the channel already after the first) while A publishes
    results = []
    for n in range(10):
        results.append(await b.subscribe(f"b{n}", "dashboard:9", since=(epoch, 0)))
        await asyncio.sleep(0.005)
    await publisher
    await until(lambda: all(len(b.seqs(f"b{n}", "dashboard:9")) == 200 for n in range(10)))
    await asyncio.sleep(0.1)
    for n in range(10):
        assert results[n].recovered is True
        assert b.seqs(f"b{n}", "dashboard:9") == list(range(1, 201))


async def test_epoch_survives_a_node_restart(nodes) -> None:
    a = await nodes()
    await a.broker.publish("user:1", "notification", {"n": 1})
    await a.broker.publish("user:1", "notification", {"n": 2})
    first = await a.subscribe("a1", "user:1")
    assert first.seq == 2
    await a.broker.stop()
    again = await nodes()  # a new process on the same Redis
    result = await again.subscribe("x", "user:1", since=(first.epoch, 1))
    assert (result.epoch, result.seq, result.recovered) == (first.epoch, 2, True)
    assert again.seqs("x", "user:1") == [2]


async def test_epoch_changes_when_redis_lost_the_channel(nodes, redis_url: str, prefix: str) -> None:
    a = await nodes()
    await a.broker.publish("user:2", "notification", {})
    first = await a.subscribe("a1", "user:2")
    client = aioredis.Redis.from_url(redis_url)
    await client.delete(f"{prefix}m:user:2", f"{prefix}h:user:2")  # as a flushed Redis would
    await client.aclose()
    await a.broker.publish("user:2", "notification", {"after": True})
    await until(lambda: len(a.seqs("a1", "user:2")) == 1)
    channel, seq, frame = a.delivered["a1"][0]
    assert frame["epoch"] != first.epoch and seq == 1
    b = await nodes()
    assert (await b.subscribe("b1", "user:2", since=(first.epoch, 1))).recovered is False


async def test_each_node_subscribes_once_per_channel_and_leaves_with_its_last_subscriber(nodes, redis_url, prefix) -> None:
    a = await nodes()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)

    async def redis_subscribers(channel: str) -> int:
        return dict(await client.pubsub_numsub(f"{prefix}p:{channel}"))[f"{prefix}p:{channel}"]

    try:
        await asyncio.gather(*(a.subscribe(f"c{n}", "dashboard:5") for n in range(20)))
        assert await redis_subscribers("dashboard:5") == 1
        assert a.broker.listening() == {"dashboard:5"}
        for n in range(19):
            a.unsubscribe(f"c{n}", "dashboard:5")
        assert a.broker.listening() == {"dashboard:5"}
        a.unsubscribe("c19", "dashboard:5")
        assert a.broker.listening() == frozenset()
        await until_async(lambda: redis_subscribers("dashboard:5"), 0)
        # coming back: subscribed again, and publications flow again
        await a.subscribe("d", "dashboard:5")
        assert await redis_subscribers("dashboard:5") == 1
        await a.broker.publish("dashboard:5", "dashboard_update", {})
        await until(lambda: a.seqs("d", "dashboard:5") == [1])
    finally:
        await client.aclose()


async def until_async(fetch, expected, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await fetch()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{value} != {expected}"
        await asyncio.sleep(0.02)


async def test_history_is_bounded_by_history_size(nodes) -> None:
    a = await nodes(history_size=5)
    first = await a.subscribe("a1", "user:3")
    for i in range(12):
        await a.broker.publish("user:3", "notification", {"i": i})
    b = await nodes(history_size=5)
    assert (await b.subscribe("b1", "user:3", since=(first.epoch, 3))).recovered is False
    recovered = await b.subscribe("b2", "user:3", since=(first.epoch, 7))
    assert recovered.recovered is True
    assert b.seqs("b2", "user:3") == [8, 9, 10, 11, 12]


async def test_a_question_channel_replays_what_was_published_before_the_node_followed_it(nodes) -> None:
    a = await nodes()
    await a.broker.publish("query:abc", "progress", {"stage": "nlp"})
    result = await a.subscribe("asker", "query:abc", from_start=True)
    assert result.recovered is True
    await a.broker.publish("query:abc", "result", {}, final=True)
    await until(lambda: a.seqs("asker", "query:abc") == [1, 2])


async def test_unreachable_redis_at_start_serves_locally(unused_tcp_port_factory=None) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = Node(f"redis://127.0.0.1:{port}/0", "x:")
    await node.broker.start()
    try:
        assert node.broker.status()["mode"] == "single-node"
        await node.subscribe("c", "user:1")
        await node.broker.publish("user:1", "notification", {})
        assert node.seqs("c", "user:1") == [1]
    finally:
        await node.broker.stop()


class OwnRedis:
    """A redis-server this test starts, kills and starts again (empty: no persistence)."""

    def __init__(self, tmp_path) -> None:
        import shutil
        import socket

        self.server = shutil.which("redis-server")
        if self.server is None:
            pytest.skip("*** redis-server binary not found: outage test SKIPPED ***")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tmp_path
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self) -> None:
        import socket
        import subprocess
        import time

        self.proc = subprocess.Popen([self.server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


    @classmethod
    def serving(cls, tmp_path):
        """For a fixture: started, yielded, killed."""
        redis = cls(tmp_path)
        redis.start()
        try:
            yield redis
        finally:
            redis.kill()


@pytest.fixture
def own_redis(tmp_path):
    yield from OwnRedis.serving(tmp_path)


async def test_redis_outage_keeps_local_delivery_and_resumes(own_redis) -> None:
    """The node keeps serving its own subscribers, says so, and follows the shared channels
    again once Redis is back."""
    states: list[bool] = []
    a = Node(own_redis.url, "o:", on_degraded=states.append)
    b = Node(own_redis.url, "o:")
    await a.broker.start()
    await b.broker.start()
    try:
        await a.subscribe("a1", "dashboard:1")
        await b.subscribe("b1", "dashboard:1")
        await a.subscribe("a2", "user:1")
        await a.broker.publish("dashboard:1", "dashboard_update", {"n": 1})
        await until(lambda: b.seqs("b1", "dashboard:1") == [1] and a.seqs("a1", "dashboard:1") == [1])
        epoch_before = a.hub.position("user:1")[0]

        own_redis.kill()
        await a.broker.publish("dashboard:1", "dashboard_update", {"n": 2})  # no crash: local delivery
        assert a.broker.status()["mode"] == "single-node" and states == [True]
        assert [f["data"] for _, _, f in a.delivered["a1"]] == [{"n": 1}, {"n": 2}]
        assert a.delivered["a1"][-1][2]["epoch"] != a.delivered["a1"][0][2]["epoch"]  # a local epoch
        late = await a.subscribe("a3", "dashboard:1")  # subscribing still works, locally
        assert late.epoch == a.delivered["a1"][-1][2]["epoch"]

        own_redis.start()  # an empty Redis: every shared history was lost
        await until(lambda: a.broker.status()["mode"] == "cluster" and b.broker.status()["mode"] == "cluster", 10)
        assert states == [True, False]
        await b.broker.publish("dashboard:1", "dashboard_update", {"n": 3})
        await until(lambda: len(a.seqs("a1", "dashboard:1")) == 3 and len(a.seqs("a3", "dashboard:1")) == 1)
        assert a.delivered["a1"][-1][2]["data"] == {"n": 3}
        assert b.delivered["b1"][-1][2]["data"] == {"n": 3}
        # user:1 saw nothing during the outage, but Redis lost it: a new epoch, not recovered
        assert a.hub.position("user:1")[0] != epoch_before
    finally:
        await a.broker.stop()
        await b.broker.stop()


async def test_a_node_cut_off_from_redis_catches_up_from_history(own_redis) -> None:
    """Only node A's pub/sub connection dies while B keeps publishing: once A is back, its
    subscribers get what they missed from the shared history, in order, once; the epoch stays."""
    a = Node(own_redis.url, "c:", name="node-a", retry_s=1.0)  # B publishes while A is away
    b = Node(own_redis.url, "c:", name="node-b")
    await a.broker.start()
    await b.broker.start()
    admin = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        first = await a.subscribe("a1", "dashboard:1")
        await b.broker.publish("dashboard:1", "dashboard_update", {"n": 1})
        await until(lambda: a.seqs("a1", "dashboard:1") == [1])
        ids = [c["id"] for c in await admin.client_list(_type="pubsub") if c["name"] == "node-a"]
        assert len(ids) == 1
        await admin.execute_command("CLIENT", "KILL", "ID", ids[0])
        await until(lambda: a.broker.status()["mode"] == "single-node")
        for n in (2, 3):
            await b.broker.publish("dashboard:1", "dashboard_update", {"n": n})
        assert a.seqs("a1", "dashboard:1") == [1] and a.broker.status()["mode"] == "single-node"
        await until(lambda: a.broker.status()["mode"] == "cluster", 10)
        await b.broker.publish("dashboard:1", "dashboard_update", {"n": 4})
        await until(lambda: len(a.seqs("a1", "dashboard:1")) >= 4)
        await asyncio.sleep(0.1)
        assert a.seqs("a1", "dashboard:1") == [1, 2, 3, 4]
        assert [f["data"]["n"] for _, _, f in a.delivered["a1"]] == [1, 2, 3, 4]
        assert a.hub.position("dashboard:1") == (first.epoch, 4)
        assert b.broker.status()["mode"] == "cluster" and b.broker.status()["outages"] == 0
    finally:
        await admin.aclose()
        await a.broker.stop()
        await b.broker.stop()


async def test_a_publication_lost_on_the_way_is_taken_from_history(nodes, redis_url: str, prefix: str) -> None:
    """Redis pub/sub may drop messages (a reconnect): a node that sees seq jump fills the gap
    from the shared history before delivering what came after it."""
    a = await nodes()
    await a.subscribe("a1", "user:4")
    await a.broker.publish("user:4", "notification", {"n": 1})
    await until(lambda: a.seqs("a1", "user:4") == [1])
    # publication 2 is stored and sequenced as the script does, but its PUBLISH never arrives
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    epoch = await client.hget(f"{prefix}m:user:4", "e")
    seq = await client.hincrby(f"{prefix}m:user:4", "s", 1)
    frame = '{"channel":"user:4","epoch":"%s","seq":%d,"type":"notification","ts":1,"data":{"n":2}}' % (epoch, seq)
    import time

    await client.rpush(f"{prefix}h:user:4", f"{seq} {time.time()} {frame}")
    await client.aclose()
    await a.broker.publish("user:4", "notification", {"n": 3})
    await until(lambda: len(a.seqs("a1", "user:4")) == 3)
    assert a.seqs("a1", "user:4") == [1, 2, 3]
    assert [f["data"]["n"] for _, _, f in a.delivered["a1"]] == [1, 2, 3]
    assert a.broker.status()["gaps"] == 0


async def test_a_hung_redis_is_noticed_by_a_node_that_only_listens(own_redis) -> None:
    """SIGSTOP leaves every connection open but silent: the watchdog's ping through pub/sub
    goes unanswered, the node serves its clients alone, and resumes after SIGCONT."""
    import signal

    a = Node(own_redis.url, "h:", retry_s=0.2)  # checked every second
    await a.broker.start()
    try:
        await a.subscribe("a1", "user:1")
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            await until(lambda: a.broker.status()["mode"] == "single-node", 10)
            await a.broker.publish("user:1", "notification", {"n": 1})  # at once, locally
            assert a.seqs("a1", "user:1") == [1]
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        await until(lambda: a.broker.status()["mode"] == "cluster", 20)
        await a.broker.publish("user:1", "notification", {"n": 2})
        await until(lambda: len(a.seqs("a1", "user:1")) == 2)
    finally:
        await a.broker.stop()


# Presence across nodes ------------------------------------------------------------------------


def member(conn_id: str, joined_at: float = 1.0, **state) -> dict:
    return {"conn_id": conn_id, "user_id": "u1", "username": "alice", "state": state, "joined_at": joined_at}


async def test_presence_counts_and_members_cover_every_node(nodes) -> None:
    a, b = await nodes(), await nodes()
    a.broker.name = a.broker.presence.node = "node-a"
    b.broker.name = b.broker.presence.node = "node-b"
    await a.broker._beat()
    await b.broker._beat()
    changes = {"event": "changes", "count": 1, "joined": [member("ca1")], "updated": [], "left": []}
    assert (await a.broker.presence_publication("dashboard:1", changes))["count"] == 1
    changes = {"event": "changes", "count": 2, "joined": [member("cb1", 2.0), member("cb2", 3.0)], "updated": [], "left": []}
    assert (await b.broker.presence_publication("dashboard:1", changes))["count"] == 3  # the cluster's count
    assert [m["conn_id"] for m in await a.broker.presence_others("dashboard:1")] != []
    assert sorted(m["conn_id"] for m in await a.broker.presence_others("dashboard:1")) == ["cb1", "cb2"]
    assert [m["conn_id"] for m in await b.broker.presence_others("dashboard:1")] == ["ca1"]
    left = {"event": "changes", "count": 1, "joined": [], "updated": [member("cb2", 3.0, editing="w1")], "left": ["cb1"]}
    assert (await b.broker.presence_publication("dashboard:1", left))["count"] == 2
    assert [m["state"] for m in await a.broker.presence_others("dashboard:1")] == [{"editing": "w1"}]
    # a snapshot (after a crowd shrank) replaces the node's members and lists everyone's
    snapshot = {"event": "members", "count": 1, "members": [member("ca9", 0.5)]}
    out = await a.broker.presence_publication("dashboard:1", snapshot)
    assert [m["conn_id"] for m in out["members"]] == ["ca9", "cb2"] and out["count"] == 2


async def test_members_of_a_node_that_stopped_beating_are_announced_left_once(nodes, redis_url, prefix) -> None:
    from livebi.realtime.redis_presence import PresenceRegistry

    a, b = await nodes(retry_s=0.2), await nodes(retry_s=0.2)  # both beat every second
    await a.subscribe("viewer-a", "dashboard:2")
    await b.subscribe("viewer-b", "dashboard:2")
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ghost = PresenceRegistry(client, prefix=prefix, node="ghost", heartbeat_ttl_s=0.3)
        await ghost.heartbeat()
        await ghost.mirror("dashboard:2", {"event": "changes", "count": 1, "joined": [member("g1")], "updated": [], "left": []})
        assert [m["conn_id"] for m in await a.broker.presence_others("dashboard:2")] == ["g1"]
        # the ghost never beats again: within a few beats one node removes it and says so
        await until(lambda: any(f["type"] == "presence" for _, _, f in a.delivered.get("viewer-a", [])), 10)
        await asyncio.sleep(1.5)  # the other node's later beats find nothing left to announce
        for node, conn in ((a, "viewer-a"), (b, "viewer-b")):
            announced = [f["data"] for _, _, f in node.delivered[conn] if f["type"] == "presence"]
            assert announced == [{"event": "changes", "count": 0, "joined": [], "updated": [], "left": ["g1"]}]
        assert await a.broker.presence_others("dashboard:2") == []
    finally:
        await client.aclose()
