"""Connection tickets are single-use across nodes sharing Redis (issue 12)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from livebi.auth import AuthError, Authenticator, TokenSigner, User, hash_password
from livebi.cluster.tickets import RedisTickets
from livebi.store import MetadataStore

pytestmark = pytest.mark.redis


async def test_a_ticket_redeemed_on_one_node_is_refused_on_another(tmp_path: Path, redis_url: str) -> None:
    import redis.asyncio as aioredis

    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}")
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    prefix = f"test-tickets-{uuid.uuid4().hex[:8]}:"
    try:
        row = await store.add_user("tess", hash_password("pw-tess"))
        user = User(row["id"], "tess")
        nodes = []
        for client in clients:
            auth = Authenticator(store, TokenSigner("shared-secret", ttl_s=3600))
            auth.shared_tickets = RedisTickets(client, prefix=prefix)
            nodes.append(auth)
        ticket, _ = nodes[0].issue_ticket(user)
        assert (await nodes[1].redeem_ticket(ticket)).id == user.id
        with pytest.raises(AuthError, match="already used"):
            await nodes[0].redeem_ticket(ticket)
        with pytest.raises(AuthError, match="already used"):
            await nodes[1].redeem_ticket(ticket)
        fresh, _ = nodes[1].issue_ticket(user)
        assert (await nodes[0].redeem_ticket(fresh)).id == user.id
    finally:
        keys = [k async for k in clients[0].scan_iter(match=f"{prefix}*")]
        if keys:
            await clients[0].delete(*keys)
        for client in clients:
            await client.aclose()
        await store.engine.dispose()


async def test_redis_unreachable_checks_tickets_per_node_and_counts_them(tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    tickets = RedisTickets(client, prefix="x:")
    try:
        assert await tickets.first_use("t1", 30)
        assert tickets.status() == {"redis_reachable": False, "unchecked": 1}
    finally:
        await client.aclose()
