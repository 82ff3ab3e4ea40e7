"""SSE ops POSTed to a node that does not hold the stream reach the node that does, through
Redis (issue 12: no sticky sessions)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from livebi.cluster.sse_ops import SSEOpForwarder

pytestmark = pytest.mark.redis


async def test_an_op_runs_on_the_node_holding_the_stream_and_its_reply_comes_back(redis_url: str) -> None:
    import redis.asyncio as aioredis

    prefix = f"test-sse-{uuid.uuid4().hex[:8]}:"
    ran: list[tuple[str, str, str, bytes]] = []

    def node(name: str, streams: dict[str, str]):
        async def run_local(conn: str, user_id: str, raw: bytes):
            if conn not in streams:
                return None
            ran.append((name, conn, user_id, raw))
            if streams[conn] != user_id:
                return 403, {"detail": "that stream belongs to another user"}
            return 200, {"id": 7, "ok": True, "data": {"on": name}}
        return run_local

    clients = [aioredis.from_url(redis_url) for _ in range(3)]
    nodes = [SSEOpForwarder(clients[0], node("a", {}), prefix=prefix, timeout_s=1.0),
             SSEOpForwarder(clients[1], node("b", {"c-b": "u1"}), prefix=prefix, timeout_s=1.0),
             SSEOpForwarder(clients[2], node("c", {}), prefix=prefix, timeout_s=1.0)]
    try:
        for n in nodes:
            await n.start()
        for n in nodes:
            await n.wait_ready()
        op = b'{"id": 7, "op": "ping"}'
        assert await nodes[0].forward("c-b", "u1", op) == (200, {"id": 7, "ok": True, "data": {"on": "b"}})
        assert ran == [("b", "c-b", "u1", op)]
        status, body = await nodes[2].forward("c-b", "intruder", op)
        assert status == 403
        status, body = await nodes[0].forward("gone", "u1", op)
        assert status == 404 and "open /sse again" in body["detail"]
        # many at once, each answered to its own asker
        replies = await asyncio.gather(*(nodes[i % 2 * 2].forward("c-b", "u1", op) for i in range(20)))
        assert all(r == (200, {"id": 7, "ok": True, "data": {"on": "b"}}) for r in replies)
        assert nodes[1].served == 22 and nodes[0].forwarded + nodes[2].forwarded == 23
    finally:
        for n in nodes:
            await n.stop()
        for c in clients:
            await c.aclose()
