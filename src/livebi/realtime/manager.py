"""The live connections of this process and the delivery of hub output to them."""

from __future__ import annotations

from typing import Callable

from .connection import Connection
from .hub import Delivery, Hub, SubscribeResult


class ConnectionManager:
    def __init__(self, hub: Hub, *, on_frame_queued: Callable[[int], None] | None = None) -> None:
        self.hub = hub
        self.connections: dict[str, Connection] = {}
        self._on_frame_queued = on_frame_queued

    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.hub.disconnect(conn.id)

    def deliver(self, delivery: Delivery) -> None:
        """Queue one publication's frame on every subscribed connection (never blocks)."""
        queued = 0
        for conn_id in delivery.targets:
            conn = self.connections.get(conn_id)
            if conn is not None and conn.enqueue(delivery.frame):
                queued += 1
        if self._on_frame_queued and queued:
            self._on_frame_queued(queued)

    def subscribe(self, conn: Connection, channel: str, since: tuple[str, int] | None) -> SubscribeResult:
        return self.hub.subscribe(conn.id, channel, since)

    def unsubscribe(self, conn: Connection, channel: str) -> bool:
        return self.hub.unsubscribe(conn.id, channel)

    def count(self, transport: str | None = None) -> int:
        return sum(1 for c in self.connections.values() if transport is None or c.transport == transport)
