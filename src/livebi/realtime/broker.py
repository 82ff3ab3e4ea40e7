"""Brokers carry publications from publishers to the hub that fans them out.

A broker is picked by URL (``broker_url``). Only the in-memory broker exists so far; a Redis
broker for several processes or nodes implements the same two methods.

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
    async def publish(self, channel: str, type: str, data: dict[str, Any], *, final: bool = False) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MemoryBroker:
    def __init__(self, hub: Hub, deliver: Callable[[Delivery], None]) -> None:
        self._hub = hub
        self._deliver = deliver

    async def publish(self, channel: str, type: str, data: dict[str, Any], *, final: bool = False) -> None:
        self._deliver(self._hub.publish(channel, type, data, final=final))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def open_broker(url: str, hub: Hub, deliver: Callable[[Delivery], None]) -> Broker:
    if url in ("memory://", "memory", ""):
        return MemoryBroker(hub, deliver)
    raise ValueError(f"unsupported broker URL {url!r}: only memory:// is available in this version")
