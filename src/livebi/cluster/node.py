"""One node's part in a cluster: what it shares through the Redis broker's server besides
channels (issue 12). Built by the services when the broker is shared (``broker_url =
redis://…``); a single node (memory broker) has none of it.

- live refresh leases (:mod:`livebi.live.lease`): one node refreshes a dashboard at a time;
- connection tickets single-use across nodes (:mod:`.tickets`);
- SSE ops forwarded to the node holding the stream (:mod:`.sse_ops`): no sticky sessions;
- alerts made or deleted on other nodes picked up every ``live_alert_interval_s``;
- the live service follows what other nodes publish on dashboards watched here
  (:meth:`ClusterNode.delivered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Awaitable, Callable

from ..live.lease import RedisLeases
from .sse_ops import RunLocal, SSEOpForwarder
from .tickets import RedisTickets

log = logging.getLogger(__name__)


class ClusterNode:
    def __init__(self, broker: Any, settings: Any, *, run_sse_op: RunLocal,
                 on_error: Callable[[str], None] | None = None) -> None:
        client, prefix = broker.redis, settings.redis_prefix
        self.node_id = broker.name
        self.leases = RedisLeases(client, prefix=prefix, node_id=self.node_id, ttl_s=settings.live_lease_s)
        self.tickets = RedisTickets(client, prefix=prefix)
        self.sse = SSEOpForwarder(client, run_sse_op, prefix=prefix, node_id=self.node_id,
                                  timeout_s=settings.sse_forward_timeout_s)
        self.resync_interval_s = settings.live_alert_interval_s
        self._on_error = on_error
        self._resync_task: asyncio.Task[None] | None = None
        self._live: Any = None
        self._following: set[asyncio.Task[None]] = set()

    async def start(self, *, live: Any = None, resync_alerts: Callable[[], Awaitable[None]] | None = None) -> None:
        self._live = live
        await self.leases.start()
        await self.sse.start()
        if resync_alerts is not None:
            self._resync_task = asyncio.create_task(self._resync(resync_alerts), name="alerts-resync")

    async def stop(self) -> None:
        for task in self._following:
            task.cancel()
        if self._resync_task is not None:
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync_task
        await self.sse.stop()
        await self.leases.stop()  # handed back at once: another node takes over without waiting

    def delivered(self, delivery: Any) -> None:
        """A publication reached this node. The live service follows what other nodes publish
        on dashboards it has viewers of: edits (it replans: it may hold the lease, or take it
        over later) and refreshes (kept as each widget's latest for viewers arriving here)."""
        if self._live is None or not delivery.channel.startswith("dashboard:"):
            return
        dashboard_id = delivery.channel[len("dashboard:"):]
        head = delivery.frame[:300]
        if '"type":"dashboard_update"' in head:
            coro = self._live.dashboard_changed(dashboard_id)
        elif '"type":"dashboard_refresh"' in head and f"live:{dashboard_id}" not in self.leases.held:
            coro = self._observe_refresh(dashboard_id, delivery.frame)
        else:
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def _observe_refresh(self, dashboard_id: str, frame: str) -> None:
        """Another node's refresh: kept as the widget's latest (parsed off the loop: results can
        be large)."""
        try:
            publication = await asyncio.to_thread(json.loads, frame)
            self._live.observe_refresh(dashboard_id, publication["data"])
        except Exception:
            log.exception("cluster: keeping another node's refresh of %s failed", dashboard_id)
            if self._on_error is not None:
                self._on_error("live")

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
