"""The live connections of this process, their limits, and the delivery of hub output."""

from __future__ import annotations

import collections
from typing import Any, Callable

from .connection import Connection
from .hub import Delivery, Hub, SubscribeResult


class ConnectionLimitExceeded(Exception):
    """The user already has ``max_per_user`` connections."""


class ConnectionManager:
    def __init__(
        self,
        hub: Hub,
        *,
        max_connections: int = 10_000,
        max_per_user: int = 50,
        on_frame_queued: Callable[[int], None] | None = None,
    ) -> None:
        self.hub = hub
        self.max_connections = max_connections
        self.max_per_user = max_per_user
        self.connections: dict[str, Connection] = {}
        self._per_user: collections.Counter[str] = collections.Counter()
        self._on_frame_queued = on_frame_queued

    def full(self) -> bool:
        return len(self.connections) >= self.max_connections

    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn

    def bind_user(self, conn: Connection, user: Any) -> None:
        """Attach an authenticated user, enforcing the per-user connection limit."""
        if conn.user is not None:
            return
        if self._per_user[user.id] >= self.max_per_user:
            raise ConnectionLimitExceeded(f"user {user.username} already has {self.max_per_user} connections open")
        conn.user = user
        self._per_user[user.id] += 1

    def remove(self, conn: Connection) -> None:
        if self.connections.pop(conn.id, None) is not None and conn.user is not None:
            self._per_user[conn.user.id] -= 1
            if self._per_user[conn.user.id] <= 0:
                del self._per_user[conn.user.id]
        self.hub.disconnect(conn.id)

    def deliver(self, delivery: Delivery) -> None:
        """Queue one publication's frame on every subscribed connection (never blocks)."""
        queued = 0
        for conn_id in delivery.targets:
            conn = self.connections.get(conn_id)
            if conn is not None and conn.enqueue_publication(delivery.channel, delivery.epoch, delivery.seq, delivery.frame):
                queued += 1
        if self._on_frame_queued and queued:
            self._on_frame_queued(queued)

    def subscribe(self, conn: Connection, channel: str, since: tuple[str, int] | None) -> SubscribeResult:
        return self.hub.subscribe(conn.id, channel, since)

    def unsubscribe(self, conn: Connection, channel: str) -> bool:
        return self.hub.unsubscribe(conn.id, channel)

    def count(self, transport: str | None = None) -> int:
        return sum(1 for c in self.connections.values() if transport is None or c.transport == transport)

    def user_connections(self, user_id: str) -> int:
        return self._per_user.get(user_id, 0)
