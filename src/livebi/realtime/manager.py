"""The live connections of this process, their limits, and the delivery of hub output.

Two budgets: authenticated connections count against ``max_connections`` (and
``max_per_user``); connections still waiting to authenticate are held apart, limited per client
address (``max_unauthenticated_per_address``) and overall (``max_unauthenticated``), so idle
sockets from anonymous clients can never lock real users out.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from .connection import Connection
from .hub import Delivery, Hub, SubscribeResult


class ConnectionLimitExceeded(Exception):
    """The user already has ``max_per_user`` connections."""


class ServerFull(ConnectionLimitExceeded):
    """The process already has ``max_connections`` authenticated connections (close 1013)."""


class TooManyUnauthenticated(Exception):
    """Too many connections waiting to authenticate: ``per_address`` says whose limit it was."""

    def __init__(self, message: str, *, per_address: bool) -> None:
        super().__init__(message)
        self.per_address = per_address


class ConnectionManager:
    def __init__(
        self,
        hub: Hub,
        *,
        max_connections: int = 10_000,
        max_per_user: int = 50,
        max_unauthenticated_per_address: int = 16,
        max_unauthenticated: int = 1000,
        on_frame_queued: Callable[[int], None] | None = None,
    ) -> None:
        self.hub = hub
        self.max_connections = max_connections
        self.max_per_user = max_per_user
        self.max_unauthenticated_per_address = max_unauthenticated_per_address
        self.max_unauthenticated = max_unauthenticated
        self.connections: dict[str, Connection] = {}  # authenticated connections
        self._waiting: dict[str, str] = {}  # conn id -> client address, until authenticated
        self._waiting_per_address: collections.Counter[str] = collections.Counter()
        self._per_user: collections.Counter[str] = collections.Counter()
        self._on_frame_queued = on_frame_queued
        #: on_watch(channel, +1 | -1): a connection started or stopped listening on ``channel``
        #: (each connection counts once per channel; the live service counts dashboard viewers)
        self.on_watch: Callable[[str, int], None] | None = None

    def full(self) -> bool:
        return len(self.connections) >= self.max_connections

    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn

    def admit_unauthenticated(self, conn: Connection, address: str) -> None:
        """Hold a connection that has yet to authenticate, outside max_connections.

        Raises:
            TooManyUnauthenticated: the address (or everyone together) has too many waiting.
        """
        if self._waiting_per_address[address] >= self.max_unauthenticated_per_address:
            raise TooManyUnauthenticated(
                f"more than {self.max_unauthenticated_per_address} unauthenticated connections from your address",
                per_address=True,
            )
        if len(self._waiting) >= self.max_unauthenticated:
            raise TooManyUnauthenticated("too many connections waiting to authenticate", per_address=False)
        self._waiting[conn.id] = address
        self._waiting_per_address[address] += 1

    def unauthenticated_count(self, address: str | None = None) -> int:
        return len(self._waiting) if address is None else self._waiting_per_address.get(address, 0)

    def _stop_waiting(self, conn: Connection) -> None:
        address = self._waiting.pop(conn.id, None)
        if address is not None:
            self._waiting_per_address[address] -= 1
            if self._waiting_per_address[address] <= 0:
                del self._waiting_per_address[address]

    def bind_user(self, conn: Connection, user: Any) -> None:
        """Attach an authenticated user and count the connection, enforcing the limits.

        Raises:
            ServerFull: max_connections authenticated connections are open.
            ConnectionLimitExceeded: the user has max_per_user connections open.
        """
        if conn.user is not None:
            return
        if conn.id not in self.connections and len(self.connections) >= self.max_connections:
            raise ServerFull(f"the server is at max_connections ({self.max_connections})")
        if self._per_user[user.id] >= self.max_per_user:
            raise ConnectionLimitExceeded(f"user {user.username} already has {self.max_per_user} connections open")
        conn.user = user
        self._per_user[user.id] += 1
        self._stop_waiting(conn)
        self.connections[conn.id] = conn

    async def close_user(self, user_id: str, code: int, reason: str) -> int:
        """Close every connection of a user (revoked tokens); returns how many."""
        mine = [c for c in self.connections.values() if c.user is not None and c.user.id == user_id]
        for conn in mine:
            await conn.close(code, reason)
        return len(mine)

    def remove(self, conn: Connection) -> None:
        self._stop_waiting(conn)
        if self.connections.pop(conn.id, None) is not None and conn.user is not None:
            self._per_user[conn.user.id] -= 1
            if self._per_user[conn.user.id] <= 0:
                del self._per_user[conn.user.id]
        channels = self.hub.disconnect(conn.id)
        if self.on_watch is not None:
            for channel in channels:
                self.on_watch(channel, -1)

    def deliver(self, delivery: Delivery) -> None:
        """Queue one publication's frame on every subscribed connection (never blocks)."""
        queued = 0
        for conn_id in delivery.targets:
            conn = self.connections.get(conn_id)
            if conn is not None and conn.enqueue_publication(delivery.channel, delivery.epoch, delivery.seq, delivery.frame):
                queued += 1
        if self._on_frame_queued and queued:
            self._on_frame_queued(queued)

    def subscribe(
        self, conn: Connection, channel: str, since: tuple[str, int] | None,
        older: tuple[tuple[int, str], ...] = (),
    ) -> SubscribeResult:
        """``older``: shared history a Redis broker fetched for ``since`` (Hub.subscribe)."""
        new = channel not in self.hub.channels_of(conn.id)
        result = self.hub.subscribe(conn.id, channel, since, older)
        if new and self.on_watch is not None:
            self.on_watch(channel, 1)
        return result

    def unsubscribe(self, conn: Connection, channel: str) -> bool:
        done = self.hub.unsubscribe(conn.id, channel)
        if done and self.on_watch is not None:
            self.on_watch(channel, -1)
        return done

    def count(self, transport: str | None = None) -> int:
        return sum(1 for c in self.connections.values() if transport is None or c.transport == transport)

    def user_connections(self, user_id: str) -> int:
        return self._per_user.get(user_id, 0)
