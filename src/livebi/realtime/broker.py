"""Brokers carry publications from publishers to the hub that fans them out.

A broker is picked by URL (``broker_url``): ``memory://`` (this module, one process) or
``redis://host:port/db`` (:mod:`.redis_broker`, several processes or nodes sharing channels).

Delivery guarantees of :class:`MemoryBroker`: one process; publications on a channel are
delivered in ``seq`` order, at most once per live subscription; channel history (bounded by
``history_size``, ``history_ttl_s`` and bytes per channel and overall) lets a client that reconnects recover what it missed.
History lives in memory, so a restart loses it: each channel gets a new ``epoch`` and clients
resubscribing with an old one are told ``recovered: false``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .hub import Delivery, Hub


class Broker(Protocol):
    #: True when positions and history are shared elsewhere: a subscribe must ``await
    #: prepare()`` before :meth:`Hub.subscribe`; False (memory) skips that step entirely.
    shared: bool

    async def publish(self, channel: str, type: str, data: dict[str, Any], *, final: bool = False) -> None: ...

    async def prepare(
        self, channel: str, since: tuple[str, int] | None, *, from_start: bool = False
    ) -> tuple[tuple[str, int] | None, tuple[tuple[int, str], ...]]: ...

    def released(self, channel: str) -> None: ...

    def status(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MemoryBroker:
    shared = False

    def __init__(self, hub: Hub, deliver: Callable[[Delivery], None]) -> None:
        self._hub = hub
        self._deliver = deliver

    async def prepare(
        self, channel: str, since: tuple[str, int] | None, *, from_start: bool = False
    ) -> tuple[tuple[str, int] | None, tuple[tuple[int, str], ...]]:
        return since, ()  # the hub holds everything already

    def released(self, channel: str) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"kind": "memory", "mode": "single-node"}

    async def publish(self, channel: str, type: str, data: dict[str, Any], *, final: bool = False) -> None:
        self._deliver(self._hub.publish(channel, type, data, final=final))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def open_broker(
    url: str, hub: Hub, deliver: Callable[[Delivery], None], *, redis_prefix: str = "livebi:",
    meta_ttl_s: float = 7 * 86400.0, retry_s: float = 1.0,
    on_degraded: Callable[[bool], None] | None = None, on_error: Callable[[str], None] | None = None,
) -> Broker:
    """The broker for ``url``; the Redis broker takes its history bounds from ``hub``."""
    if url in ("memory://", "memory", ""):
        return MemoryBroker(hub, deliver)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_broker import RedisBroker

        return RedisBroker(
            url, hub, deliver, prefix=redis_prefix, history_size=hub.history_size, history_ttl_s=hub.history_ttl,
            meta_ttl_s=meta_ttl_s, retry_s=retry_s, on_degraded=on_degraded, on_error=on_error,
        )
    raise ValueError(f"unsupported broker URL {url!r}: use memory:// or redis://host:port/db")
