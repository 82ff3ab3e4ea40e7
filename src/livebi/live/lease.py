"""Which node refreshes a live dashboard when several livebi nodes share the work (issue 12).

Every node with a viewer of a dashboard (or an alert keeping it alive) plans its refreshes, but
only the holder of the dashboard's lease runs them: one query per refresh for the whole cluster,
and its alerts fire once. The others' viewers get the holder's publications through the shared
broker.

- :class:`LocalLeases` (one process, the memory broker): this node holds every lease.
- :class:`RedisLeases`: a lease is a Redis key ``<prefix>lease:<name>`` holding
  ``<node id>|<fencing token>`` with an expiry (``ttl_s``). Taking a free lease draws the next
  fencing token from a counter that only grows (``<prefix>fence:<name>``); the holder renews
  its leases every ``ttl_s / 3``. A node that dies stops renewing: its leases expire and the next
  node that wants one takes it over, with a larger token. Before publishing a result, the
  refresher checks it still holds the lease with the token it started under (:meth:`check`):
  a node that stalled past its lease (a long GC pause, a frozen VM) learns it lost the lease and
  drops its stale result instead of publishing it over the new holder's.

  A manual refresh asked on a node that does not hold the lease is forwarded to the holder
  (:meth:`forward`, a Redis pub/sub message every node listens to).

  When Redis cannot be reached, each node refreshes for its own viewers (the broker is then in
  single-node mode too, so nobody gets two results): :meth:`acquire` grants a local lease with
  token 0, logs the outage once and counts it (``outages``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, Awaitable, Callable

from ..realtime.redis_util import UNREACHABLE, listen

log = logging.getLogger(__name__)

#: on_forward(name, message): a manual refresh forwarded to this node, the holder
OnForward = Callable[[str, dict[str, Any]], Awaitable[None]]

# KEYS: lease, fence counter; ARGV: node id, ttl ms -> the token (held or newly taken) or nil
_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if v then
  local sep = string.find(v, '|', 1, true)
  if sep and string.sub(v, 1, sep - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(v, sep + 1))
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

# KEYS: lease; ARGV: "<node>|<token>", ttl ms -> 1 renewed, 0 lost
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease; ARGV: "<node>|<token>" -> 1 released, 0 not ours
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

class LocalLeases:
    """One node: it holds every lease."""

    node_id = "local"
    outages = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def acquire(self, name: str) -> int | None:
        return 1

    async def check(self, name: str, token: int) -> bool:
        return True

    async def release(self, name: str) -> None:
        return None

    async def forward(self, name: str, message: dict[str, Any]) -> None:
        raise RuntimeError("a single node holds every lease: nothing to forward")

    def status(self) -> dict[str, Any]:
        return {"mode": "local"}


class RedisLeases:
    """Leases shared through Redis (see the module doc)."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "livebi:",
        node_id: str | None = None,
        ttl_s: float = 6.0,
        on_forward: OnForward | None = None,
    ) -> None:
        self._redis = client
        self.prefix = prefix
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.on_forward = on_forward
        self.held: dict[str, int] = {}  # name -> token, as last acquired or renewed
        self.outages = 0  # times Redis could not be reached
        self._down = False
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: Any = None

    @property
    def _forward_channel(self) -> str:
        return f"{self.prefix}lease-forward"

    def _keys(self, name: str) -> list[str]:
        return [f"{self.prefix}lease:{name}", f"{self.prefix}fence:{name}"]

    def _value(self, token: int) -> str:
        return f"{self.node_id}|{token}"

    # Lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._renew_loop(), name="lease-renew"))
        if self.on_forward is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="lease-forward"))

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing; ``release`` hands the leases back at once (a clean shutdown) instead
        of letting them expire."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if release:
            for name in list(self.held):
                await self.release(name)
        self.held.clear()

    # Leases -----------------------------------------------------------------------------------

    async def acquire(self, name: str) -> int | None:
        """This node's token for ``name`` (taking the lease if it is free), or None when another
        node holds it. Token 0: Redis is unreachable, refresh for this node's own viewers."""
        try:
            token = await self._acquire(keys=self._keys(name), args=[self.node_id, self.ttl_ms])
        except UNREACHABLE as exc:
            self._unreachable(exc)
            return 0
        self._reachable()
        if token is None:
            self.held.pop(name, None)
            return None
        self.held[name] = int(token)
        return int(token)

    async def check(self, name: str, token: int) -> bool:
        """Whether this node still holds ``name`` under ``token`` (renewing it)."""
        if token == 0:
            return True  # granted locally during an outage
        try:
            ok = await self._renew(keys=self._keys(name)[:1], args=[self._value(token), self.ttl_ms])
        except UNREACHABLE as exc:
            self._unreachable(exc)
            return True  # cannot tell: the broker is local now, our viewers need the result
        self._reachable()
        if not ok and self.held.get(name) == token:
            del self.held[name]
            log.warning("lease %s: lost (token %d); another node refreshes it now", name, token)
        return bool(ok)

    async def release(self, name: str) -> None:
        token = self.held.pop(name, None)
        if not token:
            return
        try:
            await self._release(keys=self._keys(name)[:1], args=[self._value(token)])
        except UNREACHABLE as exc:
            self._unreachable(exc)  # it expires by itself

    async def forward(self, name: str, message: dict[str, Any]) -> None:
        """Hand ``message`` to whichever node holds ``name`` (it acts on it; others ignore it)."""
        try:
            await self._redis.publish(self._forward_channel, json.dumps({"name": name, "message": message}))
        except UNREACHABLE as exc:
            self._unreachable(exc)
            log.warning("lease %s: a forwarded refresh was lost (Redis unreachable)", name)

    def status(self) -> dict[str, Any]:
        return {"mode": "redis", "node_id": self.node_id, "held": len(self.held), "redis_reachable": not self._down,
                "outages": self.outages}

    # Internals --------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            for name, token in list(self.held.items()):
                try:
                    await self.check(name, token)
                except Exception:
                    log.exception("lease %s: renewing failed", name)

    async def _listen(self) -> None:
        """Forwarded manual refreshes: acted on by the holder."""
        await listen(self._redis, [self._forward_channel], self._on_forward_message, what="lease forward",
                     on_unreachable=self._unreachable)

    async def _on_forward_message(self, channel: str, body: Any) -> None:
        try:
            name, message = body["name"], body["message"]
        except (KeyError, TypeError):
            log.warning("lease forward: malformed message %r ignored", body)
            return
        if name in self.held and self.on_forward is not None:
            await self.on_forward(name, message)

    def _unreachable(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            self.outages += 1
            log.warning("leases: Redis unreachable (%s); refreshing for this node's viewers only until it returns", exc)

    def _reachable(self) -> None:
        if self._down:
            self._down = False
            log.warning("leases: Redis reachable again; leases are shared by the cluster")
