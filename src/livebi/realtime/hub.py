"""The real-time hub: channels, sequence numbers, history and subscriptions.

A pure state machine in the manner of ``websockets.protocol``: it never awaits and never touches
a socket. Callers feed it subscribe/unsubscribe/publish calls and get back *what to send to
whom*; the I/O layer (connections, brokers) does the sending. That keeps the delivery rules
testable by feeding data in, and lets several transports share one hub.

Each publication is serialized once, when it is published; every subscriber receives the same
frame string.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
import time
from typing import Any, Callable, Iterable

from ..protocol import dumps


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One publication and the connections it must be sent to."""

    channel: str
    epoch: str
    seq: int
    frame: str  # the serialized publication, shared by every target
    targets: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SubscribeResult:
    epoch: str
    seq: int  # the channel's current position (last published seq)
    recovered: bool | None  # None when no ``since`` was given
    missed: tuple[tuple[int, str], ...]  # (seq, frame) to replay, in order, when recovered


@dataclasses.dataclass
class _Entry:
    seq: int
    ts: float
    frame: str


@dataclasses.dataclass
class PresenceEntry:
    """Who is on a channel through one connection, and what they are doing there."""

    conn_id: str
    user_id: str
    username: str
    state: dict[str, Any]
    joined_at: float

    def public(self) -> dict[str, Any]:
        return {"conn_id": self.conn_id, "user_id": self.user_id, "username": self.username, "state": self.state, "joined_at": self.joined_at}


class _Channel:
    __slots__ = ("name", "epoch", "seq", "history", "subscribers", "presence")

    def __init__(self, name: str, epoch: str) -> None:
        self.name = name
        self.epoch = epoch
        self.seq = 0
        self.history: collections.deque[_Entry] = collections.deque()
        self.subscribers: set[str] = set()
        self.presence: dict[str, PresenceEntry] = {}


class Hub:
    """Channels with per-channel ``seq``, bounded history and subscriber sets.

    Args:
        history_size: publications kept per channel for recovery.
        history_ttl: seconds a publication stays in history.
        clock: returns the current time in seconds (injected so tests control it).
        new_epoch: returns a fresh epoch string; a channel gets one when it is created, so a
            channel that was forgotten (or a restarted process) never reuses positions.
    """

    def __init__(
        self,
        *,
        history_size: int = 1000,
        history_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        new_epoch: Callable[[], str] = lambda: secrets.token_hex(4),
    ) -> None:
        self.history_size = history_size
        self.history_ttl = history_ttl
        self._clock = clock
        self._new_epoch = new_epoch
        self._channels: dict[str, _Channel] = {}
        self._by_conn: dict[str, set[str]] = {}

    # Queries --------------------------------------------------------------------------------

    def position(self, channel: str) -> tuple[str, int]:
        ch = self._channel(channel)
        return ch.epoch, ch.seq

    def subscribers(self, channel: str) -> frozenset[str]:
        ch = self._channels.get(channel)
        return frozenset(ch.subscribers) if ch else frozenset()

    def channels_of(self, conn_id: str) -> frozenset[str]:
        return frozenset(self._by_conn.get(conn_id, ()))

    def channel_count(self) -> int:
        return len(self._channels)

    # Commands -------------------------------------------------------------------------------

    def publish(self, channel: str, type: str, data: dict[str, Any]) -> Delivery:
        """Assign the next ``seq``, record the publication in history, return who gets it."""
        ch = self._channel(channel)
        ch.seq += 1
        now = self._clock()
        frame = dumps(
            {"channel": channel, "epoch": ch.epoch, "seq": ch.seq, "type": type, "ts": round(now, 3), "data": data}
        )
        ch.history.append(_Entry(ch.seq, now, frame))
        self._trim(ch, now)
        return Delivery(channel, ch.epoch, ch.seq, frame, tuple(ch.subscribers))

    def subscribe(self, conn_id: str, channel: str, since: tuple[str, int] | None = None) -> SubscribeResult:
        """Add ``conn_id`` to ``channel``; with ``since=(epoch, seq)`` compute what it missed.

        Recovery succeeds when the epoch matches and history still holds every publication
        after ``seq``; the missed frames come back in order and the caller must send them
        before any later publication (the hub is single-threaded, so nothing interleaves).
        """
        ch = self._channel(channel)
        ch.subscribers.add(conn_id)
        self._by_conn.setdefault(conn_id, set()).add(channel)
        if since is None:
            return SubscribeResult(ch.epoch, ch.seq, None, ())
        epoch, seq = since
        self._trim(ch, self._clock())
        if epoch != ch.epoch or seq > ch.seq:
            return SubscribeResult(ch.epoch, ch.seq, False, ())
        if seq == ch.seq:
            return SubscribeResult(ch.epoch, ch.seq, True, ())
        oldest = ch.history[0].seq if ch.history else ch.seq + 1
        if seq + 1 < oldest:
            return SubscribeResult(ch.epoch, ch.seq, False, ())
        missed = tuple((e.seq, e.frame) for e in ch.history if e.seq > seq)
        return SubscribeResult(ch.epoch, ch.seq, True, missed)

    def unsubscribe(self, conn_id: str, channel: str) -> bool:
        ch = self._channels.get(channel)
        if ch is None or conn_id not in ch.subscribers:
            return False
        ch.subscribers.discard(conn_id)
        ch.presence.pop(conn_id, None)
        chans = self._by_conn.get(conn_id)
        if chans is not None:
            chans.discard(channel)
            if not chans:
                del self._by_conn[conn_id]
        return True

    def disconnect(self, conn_id: str) -> list[str]:
        """Remove a connection from every channel; returns the channels it was in.

        Its presence entries go too: callers publish ``leave`` for the channels that
        :meth:`present_on` reported before calling this.
        """
        chans = self._by_conn.pop(conn_id, set())
        for name in chans:
            ch = self._channels.get(name)
            if ch is not None:
                ch.subscribers.discard(conn_id)
                ch.presence.pop(conn_id, None)
        return sorted(chans)

    # Presence -------------------------------------------------------------------------------

    def join(self, conn_id: str, channel: str, *, user_id: str, username: str, state: dict[str, Any] | None = None) -> PresenceEntry:
        """Record that ``conn_id`` (subscribed to ``channel``) is present there."""
        ch = self._channel(channel)
        entry = PresenceEntry(conn_id, user_id, username, dict(state or {}), round(self._clock(), 3))
        ch.presence[conn_id] = entry
        return entry

    def set_state(self, conn_id: str, channel: str, state: dict[str, Any]) -> PresenceEntry | None:
        ch = self._channels.get(channel)
        entry = ch.presence.get(conn_id) if ch else None
        if entry is not None:
            entry.state = dict(state)
        return entry

    def leave(self, conn_id: str, channel: str) -> PresenceEntry | None:
        ch = self._channels.get(channel)
        return ch.presence.pop(conn_id, None) if ch else None

    def presence(self, channel: str) -> list[PresenceEntry]:
        ch = self._channels.get(channel)
        return sorted(ch.presence.values(), key=lambda e: (e.joined_at, e.conn_id)) if ch else []

    def present_on(self, conn_id: str) -> list[tuple[str, PresenceEntry]]:
        """The channels where ``conn_id`` has a presence entry."""
        out = []
        for name in self._by_conn.get(conn_id, ()):
            ch = self._channels.get(name)
            if ch is not None and conn_id in ch.presence:
                out.append((name, ch.presence[conn_id]))
        return sorted(out, key=lambda item: item[0])

    def prune(self) -> int:
        """Expire old history and forget idle empty channels; returns channels forgotten."""
        now = self._clock()
        forgotten = 0
        for name in list(self._channels):
            ch = self._channels[name]
            self._trim(ch, now)
            if not ch.subscribers and not ch.history and not ch.presence:
                del self._channels[name]
                forgotten += 1
        return forgotten

    def history_frames(self, channel: str) -> Iterable[str]:
        ch = self._channels.get(channel)
        return tuple(e.frame for e in ch.history) if ch else ()

    # Internals ------------------------------------------------------------------------------

    def _channel(self, name: str) -> _Channel:
        ch = self._channels.get(name)
        if ch is None:
            ch = self._channels[name] = _Channel(name, self._new_epoch())
        return ch

    def _trim(self, ch: _Channel, now: float) -> None:
        history = ch.history
        while len(history) > self.history_size:
            history.popleft()
        cutoff = now - self.history_ttl
        while history and history[0].ts < cutoff:
            history.popleft()
