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


@dataclasses.dataclass(eq=False)
class _Entry:
    seq: int
    ts: float
    frame: str
    channel: "_Channel"
    size: int = 0  # bytes of ``frame`` (UTF-8 is close enough to len for the budget)
    live: bool = True  # False once trimmed from its channel's history


class _Channel:
    __slots__ = ("name", "epoch", "seq", "history", "history_bytes", "subscribers", "finished", "idle_since")

    def __init__(self, name: str, epoch: str) -> None:
        self.name = name
        self.epoch = epoch
        self.seq = 0
        self.history: collections.deque[_Entry] = collections.deque()
        self.history_bytes = 0
        self.subscribers: set[str] = set()
        self.finished = False  # a final publication was made: nothing more will come
        self.idle_since: float | None = None  # when a finished channel last had no subscriber


class Hub:
    """Channels with per-channel ``seq``, bounded history and subscriber sets.

    History is bounded four ways: by count and age per channel, by bytes per channel (one huge
    result cannot pin memory), and by bytes over all channels (the oldest publications anywhere
    go first). A channel whose last publication was ``final`` (a question's result or error) is
    forgotten entirely ``finished_grace`` seconds after its last subscriber left: nobody can
    still need its history then, and a client that comes back later is told
    ``recovered: false``.

    Args:
        history_size: publications kept per channel for recovery.
        history_ttl: seconds a publication stays in history.
        history_bytes_per_channel: bytes of frames one channel's history may hold.
        history_bytes_total: bytes of frames all histories together may hold.
        finished_grace: seconds a finished channel without subscribers is kept.
        clock: returns the current time in seconds (injected so tests control it).
        new_epoch: returns a fresh epoch string; a channel gets one when it is created, so a
            channel that was forgotten (or a restarted process) never reuses positions.
    """

    def __init__(
        self,
        *,
        history_size: int = 1000,
        history_ttl: float = 300.0,
        history_bytes_per_channel: int = 8 * 1024 * 1024,
        history_bytes_total: int = 256 * 1024 * 1024,
        finished_grace: float = 30.0,
        clock: Callable[[], float] = time.time,
        new_epoch: Callable[[], str] = lambda: secrets.token_hex(4),
    ) -> None:
        self.history_size = history_size
        self.history_ttl = history_ttl
        self.history_bytes_per_channel = history_bytes_per_channel
        self.history_bytes_total = history_bytes_total
        self.finished_grace = finished_grace
        self._clock = clock
        self._new_epoch = new_epoch
        self._channels: dict[str, _Channel] = {}
        self._by_conn: dict[str, set[str]] = {}
        # every live history entry, oldest first (with trimmed ones skipped lazily)
        self._all_entries: collections.deque[_Entry] = collections.deque()
        self.history_bytes = 0

    # Queries --------------------------------------------------------------------------------

    def position(self, channel: str) -> tuple[str, int]:
        ch = self._channel(channel)
        return ch.epoch, ch.seq

    def subscribers(self, channel: str) -> frozenset[str]:
        ch = self._channels.get(channel)
        return frozenset(ch.subscribers) if ch else frozenset()

    def channels_of(self, conn_id: str) -> frozenset[str]:
        return frozenset(self._by_conn.get(conn_id, ()))

    def is_subscribed(self, conn_id: str, channel: str) -> bool:
        chans = self._by_conn.get(conn_id)
        return chans is not None and channel in chans

    def subscriber_count(self, channel: str) -> int:
        ch = self._channels.get(channel)
        return len(ch.subscribers) if ch else 0

    def channel_count(self) -> int:
        return len(self._channels)

    # Commands -------------------------------------------------------------------------------

    def publish(self, channel: str, type: str, data: dict[str, Any], *, final: bool = False) -> Delivery:
        """Assign the next ``seq``, record the publication in history, return who gets it.

        ``final`` marks the channel's last publication (a question's outcome): once no one is
        subscribed any more, the channel is forgotten after ``finished_grace`` seconds.
        """
        ch = self._channel(channel)
        ch.seq += 1
        now = self._clock()
        frame = dumps(
            {"channel": channel, "epoch": ch.epoch, "seq": ch.seq, "type": type, "ts": round(now, 3), "data": data}
        )
        self._record(ch, now, frame, final)
        return Delivery(channel, ch.epoch, ch.seq, frame, tuple(ch.subscribers))

    def subscribe(
        self, conn_id: str, channel: str, since: tuple[str, int] | None = None,
        older: tuple[tuple[int, str], ...] = (),
    ) -> SubscribeResult:
        """Add ``conn_id`` to ``channel``; with ``since=(epoch, seq)`` compute what it missed.

        Recovery succeeds when the epoch matches and history still holds every publication
        after ``seq``; the missed frames come back in order and the caller must send them
        before any later publication (the hub is single-threaded, so nothing interleaves).

        ``older``: publications of the channel's current epoch read from elsewhere (a Redis
        broker's shared history), ``(seq, frame)`` in order; merged with local history by
        ``seq``, so a fetch that raced live publications yields neither a gap nor a duplicate.
        """
        ch = self._channel(channel)
        ch.subscribers.add(conn_id)
        ch.idle_since = None
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
            if not older:
                return SubscribeResult(ch.epoch, ch.seq, False, ())
            # the gap [seq + 1, oldest) must come from ``older``, contiguously
            merged = [(s, f) for s, f in older if seq < s < oldest]
            if [s for s, _ in merged] != list(range(seq + 1, min(oldest, ch.seq + 1))):
                return SubscribeResult(ch.epoch, ch.seq, False, ())
            missed = tuple(merged) + tuple((e.seq, e.frame) for e in ch.history)
            return SubscribeResult(ch.epoch, ch.seq, True, missed)
        missed = tuple((e.seq, e.frame) for e in ch.history if e.seq > seq)
        return SubscribeResult(ch.epoch, ch.seq, True, missed)

    # Channels sequenced elsewhere (a Redis broker) ------------------------------------------
    #
    # A shared broker assigns epoch and seq for the whole cluster; the hub then only mirrors
    # what it was told: ``follow`` sets a channel's position when this process starts
    # listening, ``accept`` records a publication that arrived and says who gets it here.

    def knows(self, channel: str) -> bool:
        return channel in self._channels

    def covers(self, channel: str, seq: int) -> bool:
        """Local history alone can recover a subscriber at ``seq`` (of the current epoch)."""
        ch = self._channels.get(channel)
        if ch is None:
            return False
        if seq >= ch.seq:
            return True
        self._trim(ch, self._clock())
        return bool(ch.history) and ch.history[0].seq <= seq + 1

    def follow(self, channel: str, epoch: str, seq: int) -> None:
        """The shared position of ``channel`` is ``(epoch, seq)``: adopt it.

        Local history is kept only when it still leads up to ``seq`` in the same epoch (it
        must stay contiguous); otherwise it is dropped and recovery falls back to the shared
        history.
        """
        ch = self._channel(channel)
        if ch.epoch == epoch and ch.seq >= seq:
            return
        self._drop_history(ch, len(ch.history))
        ch.epoch, ch.seq = epoch, seq

    def accept(self, channel: str, epoch: str, seq: int, frame: str, *, final: bool = False) -> Delivery | None:
        """Record a publication sequenced elsewhere; None when it was already seen here.

        A new ``epoch`` (the shared history was lost) replaces the channel's position; a
        ``seq`` past the next one (publications lost on the way) restarts local history at
        it. Either way the publication is delivered: live delivery is at most once.
        """
        ch = self._channel(channel)
        if epoch == ch.epoch and seq <= ch.seq:
            return None
        if epoch != ch.epoch or seq != ch.seq + 1:
            self._drop_history(ch, len(ch.history))
            ch.epoch = epoch
        ch.seq = seq
        self._record(ch, self._clock(), frame, final)
        return Delivery(channel, epoch, seq, frame, tuple(ch.subscribers))

    def diverge(self, channel: str) -> None:
        """Give ``channel`` a new local epoch (history cleared): what follows is sequenced here,
        apart from the shared history (a Redis broker that lost its server)."""
        ch = self._channel(channel)
        self._drop_history(ch, len(ch.history))
        ch.epoch, ch.seq = self._new_epoch(), 0

    def unsubscribe(self, conn_id: str, channel: str) -> bool:
        ch = self._channels.get(channel)
        if ch is None or conn_id not in ch.subscribers:
            return False
        ch.subscribers.discard(conn_id)
        self._mark_idle(ch)
        chans = self._by_conn.get(conn_id)
        if chans is not None:
            chans.discard(channel)
            if not chans:
                del self._by_conn[conn_id]
        return True

    def disconnect(self, conn_id: str) -> list[str]:
        """Remove a connection from every channel; returns the channels it was in."""
        chans = self._by_conn.pop(conn_id, set())
        for name in chans:
            ch = self._channels.get(name)
            if ch is not None:
                ch.subscribers.discard(conn_id)
                self._mark_idle(ch)
        return sorted(chans)

    def prune(self) -> int:
        """Expire old history, forget idle empty channels and finished channels nobody has
        watched for ``finished_grace`` seconds; returns channels forgotten."""
        now = self._clock()
        forgotten = 0
        for name in list(self._channels):
            ch = self._channels[name]
            self._trim(ch, now)
            released = ch.idle_since is not None and now - ch.idle_since >= self.finished_grace
            if not ch.subscribers and (released or not ch.history):
                self._drop_history(ch, len(ch.history))
                del self._channels[name]
                forgotten += 1
        if len(self._all_entries) > 2 * len(self._channels) + 1024:
            # compact: trimmed entries are skipped lazily and would otherwise pile up here
            self._all_entries = collections.deque(e for e in self._all_entries if e.live)
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

    def _record(self, ch: _Channel, now: float, frame: str, final: bool) -> None:
        """Append the publication at ``ch.seq`` to history, within its bounds."""
        entry = _Entry(ch.seq, now, frame, ch, len(frame))
        ch.history.append(entry)
        ch.history_bytes += entry.size
        self._all_entries.append(entry)
        self.history_bytes += entry.size
        self._trim(ch, now)
        self._trim_total()
        if final:
            ch.finished = True
            if not ch.subscribers:
                ch.idle_since = now

    def _trim(self, ch: _Channel, now: float) -> None:
        history = ch.history
        cutoff = now - self.history_ttl
        drop = 0
        kept_bytes = ch.history_bytes
        for entry in history:
            if (
                len(history) - drop > self.history_size
                or entry.ts < cutoff
                or (kept_bytes > self.history_bytes_per_channel and len(history) - drop > 0)
            ):
                drop += 1
                kept_bytes -= entry.size
            else:
                break
        self._drop_history(ch, drop)

    def _trim_total(self) -> None:
        """Drop the oldest publications of any channel until all history fits its budget."""
        entries = self._all_entries
        while entries and self.history_bytes > self.history_bytes_total:
            entry = entries.popleft()
            if entry.live:
                # Global order is publication order, so this is its channel's oldest entry.
                self._drop_history(entry.channel, 1)

    def _drop_history(self, ch: _Channel, count: int) -> None:
        for _ in range(count):
            entry = ch.history.popleft()
            entry.live = False
            ch.history_bytes -= entry.size
            self.history_bytes -= entry.size

    def _mark_idle(self, ch: _Channel) -> None:
        if ch.finished and not ch.subscribers and ch.idle_since is None:
            ch.idle_since = self._clock()
