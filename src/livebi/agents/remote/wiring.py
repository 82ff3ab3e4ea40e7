"""Building a server's remote agents from its settings, and telling users when one degrades."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from ...config import Settings
from .pool import AgentPool
from .proxies import RemoteDataAgent, RemoteNLPAgent, RemoteVizAgent

log = logging.getLogger(__name__)

MESSAGES = {
    True: "The {what} service is reached over its HTTP fallback: answers may be slower, or fail while it is down.",
    False: "The {what} service is reached over WebSocket again.",
}
WHAT = {"nlp": "question understanding", "data": "query", "viz": "chart"}


def degradation_data(agent: str, transport: str, degraded: bool) -> dict[str, Any]:
    """The ``service_degradation`` publication's data for an agent pool changing transport."""
    return {"active": degraded, "component": f"{agent}_agent", "mode": transport, "transport": transport,
            "message": MESSAGES[degraded].format(what=WHAT[agent])}


class RemoteAgents:
    """The pools of a server's remote agents (none when every agent runs in process)."""

    def __init__(self, settings: Settings, *, publish: Callable[..., Awaitable[Any]] | None = None,
                 on_error: Callable[[], None] | None = None) -> None:
        """``publish(channel, type, data)`` receives ``service_degradation`` on ``system``;
        ``on_error()`` counts a publication that failed."""
        s = settings
        self._publish = publish
        self._on_error = on_error
        self._notices: set[asyncio.Task[None]] = set()
        self.pools: dict[str, AgentPool] = {}
        for agent, urls in (("nlp", s.nlp_agent_urls), ("data", s.data_agent_urls), ("viz", s.viz_agent_urls)):
            if not urls:
                continue
            if len(s.agent_token) < 16:
                raise ValueError(f"{agent}_agent_urls needs an agent_token of at least 16 characters (the agents' secret)")
            self.pools[agent] = AgentPool(
                agent, list(urls), token=s.agent_token,
                min_connections=s.agent_min_connections, max_connections=s.agent_max_connections,
                pool_timeout_s=s.agent_pool_timeout_s, connect_timeout_s=s.agent_connect_timeout_s,
                call_attempts=s.agent_call_attempts, ws_failures_before_http=s.agent_ws_failures_before_http,
                probe_interval_s=s.agent_probe_interval_s, backoff_base_s=s.agent_backoff_base_s,
                backoff_max_s=s.agent_backoff_max_s, max_message_bytes=s.agent_max_message_bytes,
                on_transport_change=self._transport_changed,
            )

    def nlp(self, local: Any) -> Any:
        pool = self.pools.get("nlp")
        return RemoteNLPAgent(local, pool) if pool else local

    def data(self, local: Any) -> Any:
        pool = self.pools.get("data")
        return RemoteDataAgent(local, pool) if pool else local

    def viz(self) -> RemoteVizAgent | None:
        pool = self.pools.get("viz")
        return RemoteVizAgent(pool) if pool else None

    async def start(self) -> None:
        for pool in self.pools.values():
            await pool.start()

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.close()
        for task in list(self._notices):
            task.cancel()

    def status(self) -> dict[str, Any]:
        """Per remote agent: its transport now and calls answered per transport."""
        return {agent: {"transport": pool.mode.transport, "calls": dict(pool.calls)} for agent, pool in self.pools.items()}

    def _transport_changed(self, agent: str, transport: str, degraded: bool) -> None:
        if self._publish is None:
            return
        task = asyncio.get_running_loop().create_task(self._notice(degradation_data(agent, transport, degraded)))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _notice(self, data: dict[str, Any]) -> None:
        try:
            await self._publish("system", "service_degradation", data)
        except Exception:  # a notice must not take the pool's recovery down with it
            log.exception("publishing service_degradation failed")
            if self._on_error:
                self._on_error()
