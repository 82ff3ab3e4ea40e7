"""One node's part in a cluster: what it shares through the Redis broker's server besides
channels (issue 12). Built by the services when the broker is shared (``broker_url =
redis://…``); a single node (memory broker) has none of it.

- live refresh leases (:mod:`livebi.live.lease`): one node refreshes a dashboard at a time;
- connection tickets single-use across nodes (:mod:`.tickets`);
- SSE ops forwarded to the node holding the stream (:mod:`.sse_ops`): no sticky sessions;
- alerts made or deleted on other nodes picked up every ``live_alert_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable

from ..live.lease import RedisLeases
from .sse_ops import RunLocal, SSEOpForwarder
from .tickets import RedisTickets

log = logging.getLogger(__name__)


class ClusterNode:
    def __init__(self, broker: Any, settings: Any, *, run_sse_op: RunLocal) -> None:
        client, prefix = broker.redis, settings.redis_prefix
        self.node_id = broker.name
        self.leases = RedisLeases(client, prefix=prefix, node_id=self.node_id, ttl_s=settings.live_lease_s)
        self.tickets = RedisTickets(client, prefix=prefix)
        self.sse = SSEOpForwarder(client, run_sse_op, prefix=prefix, node_id=self.node_id,
                                  timeout_s=settings.sse_forward_timeout_s)
        self.resync_interval_s = settings.live_alert_interval_s
        self._resync_task: asyncio.Task[None] | None = None

    async def start(self, *, resync_alerts: Callable[[], Awaitable[None]] | None = None) -> None:
        await self.leases.start()
        await self.sse.start()
        if resync_alerts is not None:
            self._resync_task = asyncio.create_task(self._resync(resync_alerts), name="alerts-resync")

    async def stop(self) -> None:
        if self._resync_task is not None:
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync_task
        await self.sse.stop()
        await self.leases.stop()  # handed back at once: another node takes over without waiting

    def status(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "leases": self.leases.status(), "tickets": self.tickets.status(),
                "sse_ops": {"forwarded": self.sse.forwarded, "served": self.sse.served}}

    async def _resync(self, resync_alerts: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.resync_interval_s)
            try:
                await resync_alerts()
            except Exception:
                log.exception("cluster: resyncing alerts from the store failed")
