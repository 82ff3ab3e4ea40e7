"""Connection tickets are single-use across the cluster.

A ticket (``POST /api/ticket``) opens one WebSocket or SSE stream and travels in the URL, where
proxies and logs keep it, so it must not open a second connection. One node remembers the
tickets it redeemed; with several nodes behind a load balancer the same ticket could otherwise
open one connection per node within its lifetime. :class:`RedisTickets` records each redeemed
ticket id in Redis (``SET NX`` with the ticket's lifetime): the first node to redeem it wins.

When Redis cannot be reached, each node checks only its own record (the broker is in
single-node mode then too), logs the outage once and counts the tickets it could not check
cluster-wide (``unchecked``, in ``/health``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..realtime.redis_util import UNREACHABLE

log = logging.getLogger(__name__)


class RedisTickets:
    def __init__(self, client: Any, *, prefix: str = "livebi:") -> None:
        self._redis = client
        self.prefix = prefix
        self.unchecked = 0  # tickets redeemed while Redis was unreachable
        self._down = False

    async def first_use(self, ticket_id: str, ttl_s: float) -> bool:
        """True when no node redeemed ``ticket_id`` before (and now this one has)."""
        try:
            first = await self._redis.set(f"{self.prefix}ticket:{ticket_id}", b"1", nx=True, px=int(ttl_s * 1000) + 1000)
        except UNREACHABLE as exc:
            self.unchecked += 1
            if not self._down:
                self._down = True
                log.warning("tickets: Redis unreachable (%s); tickets are single-use per node until it returns", exc)
            return True
        if self._down:
            self._down = False
            log.warning("tickets: Redis reachable again; tickets are single-use across the cluster")
        return bool(first)

    def status(self) -> dict[str, Any]:
        return {"redis_reachable": not self._down, "unchecked": self.unchecked}
