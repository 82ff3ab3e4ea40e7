"""Leases on a real Redis (127.0.0.1:6379): which node refreshes a live dashboard (issue 12).

Each test uses its own key prefix; "nodes" are RedisLeases instances with their own clients."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, AsyncIterator

import pytest

from livebi.live.lease import RedisLeases

pytestmark = pytest.mark.redis


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    import redis.asyncio as aioredis

    p = f"test-lease-{uuid.uuid4().hex[:8]}:"
    yield p
    client = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{p}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def nodes(redis_url: str, prefix: str):
    import redis.asyncio as aioredis

    made: list[tuple[RedisLeases, Any]] = []

    async def make(node_id: str, ttl_s: float = 1.0, on_forward=None) -> RedisLeases:
        client = aioredis.from_url(redis_url)
        leases = RedisLeases(client, prefix=prefix, node_id=node_id, ttl_s=ttl_s, on_forward=on_forward)
        await leases.start()
        made.append((leases, client))
        return leases

    yield make
    for leases, client in made:
        await leases.stop(release=False)
        await client.aclose()


async def test_one_holder_at_a_time_and_tokens_only_grow(nodes) -> None:
    a, b = await nodes("a"), await nodes("b")
    token_a = await a.acquire("live:d1")
    assert token_a is not None and token_a > 0
    assert await b.acquire("live:d1") is None
    assert await a.acquire("live:d1") == token_a  # held: the same token, renewed
    assert await b.acquire("live:d2") is not None  # other names are independent
    await a.release("live:d1")
    token_b = await b.acquire("live:d1")
    assert token_b is not None and token_b > token_a
    assert not await a.check("live:d1", token_a)
    assert await b.check("live:d1", token_b)


async def test_a_dead_holder_is_taken_over_within_its_ttl_and_its_stale_token_is_refused(nodes) -> None:
    a, b = await nodes("a", ttl_s=1.0), await nodes("b", ttl_s=1.0)
    token_a = await a.acquire("live:d1")
    assert token_a
    await asyncio.sleep(1.5)  # a renews: it stays the holder past its ttl
    assert await b.acquire("live:d1") is None
    await a.stop(release=False)  # a dies (no release, no renewal)
    loop = asyncio.get_running_loop()
    started = loop.time()
    token_b = None
    while token_b is None and loop.time() - started < 5:
        token_b = await b.acquire("live:d1")
        await asyncio.sleep(0.1)
    assert token_b is not None and token_b > token_a, "b never took over"
    assert loop.time() - started <= 1.5
    # a comes back from a long pause with its old token: it must not publish
    assert not await a.check("live:d1", token_a)


async def test_a_forwarded_message_reaches_the_holder_only(nodes) -> None:
    got: dict[str, list[Any]] = {"a": [], "b": []}

    async def on(node: str, name: str, message: dict) -> None:
        got[node].append((name, message))

    a = await nodes("a", on_forward=lambda n, m: on("a", n, m))
    b = await nodes("b", on_forward=lambda n, m: on("b", n, m))
    await asyncio.sleep(0.2)  # both listening
    assert await a.acquire("live:d1")
    await b.forward("live:d1", {"dashboard_id": "d1", "widget_id": "w1"})
    for _ in range(50):
        if got["a"]:
            break
        await asyncio.sleep(0.05)
    assert got["a"] == [("live:d1", {"dashboard_id": "d1", "widget_id": "w1"})]
    assert got["b"] == []


async def test_redis_unreachable_grants_a_local_lease_and_says_so() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    leases = RedisLeases(client, prefix="x:", node_id="lonely")
    try:
        assert await leases.acquire("live:d1") == 0
        assert await leases.check("live:d1", 0)
        assert leases.status()["redis_reachable"] is False and leases.outages == 1
        await leases.release("live:d1")  # no error: it would expire by itself
    finally:
        await client.aclose()
