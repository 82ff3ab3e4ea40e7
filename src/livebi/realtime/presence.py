"""Presence: who is on a dashboard channel, announced in coalesced updates.

Announcing every join and leave to everyone on a channel makes presence traffic grow with the
square of the number of people: each newcomer's join goes to all who are already there. So:

- ``system`` keeps no member list and publishes nothing; the ``presence`` op there answers
  with the number of subscribers (on this process).
- On ``dashboard:<id>`` joins, state updates and leaves are folded per channel and published
  as **one** ``presence`` publication per ``coalesce_s`` interval (``event: "changes"`` with
  ``joined``, ``updated``, ``left``). A join followed by a leave inside one interval publishes
  nothing; a join followed by a state update publishes one ``joined`` entry with the latest
  state.
- A channel with more than ``max_members`` members switches to counts only (``event:
  "count"``, published only when the count changed); it goes back to members, with a full
  ``event: "members"`` snapshot, once it has at most half that many, so a crowd at the
  threshold does not flap between the two. Counts go out at most once per
  ``count_interval_s``: a crowd's exact number matters less than its traffic.

A connecting client therefore costs O(1) presence work (its ``presence`` op reply carries the
current members) plus its share of one update per interval per channel.

:class:`PresenceBook` is the pure state (feed it calls, take the publications out with
:meth:`PresenceBook.flush`); :class:`Presence` is the small I/O shell that flushes it on a timer
through the server's ``publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Awaitable, Callable

from ..protocol import ErrorCode, ProtocolError, dumps

log = logging.getLogger(__name__)

MAX_STATE_BYTES = 2048

Publish = Callable[..., Awaitable[None]]


class Member:
    """One connection's presence on one channel."""

    __slots__ = ("conn_id", "user_id", "username", "state", "joined_at", "announced")

    def __init__(self, conn_id: str, user_id: str, username: str, state: dict[str, Any], joined_at: float) -> None:
        self.conn_id = conn_id
        self.user_id = user_id
        self.username = username
        self.state = state
        self.joined_at = joined_at
        self.announced = False  # clients were told of this member (by a flushed publication)

    def public(self) -> dict[str, Any]:
        return {"conn_id": self.conn_id, "user_id": self.user_id, "username": self.username, "state": self.state, "joined_at": self.joined_at}


class _Room:
    __slots__ = ("members", "pending", "left", "counts_only", "published_count", "published_at")

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.pending: set[str] = set()  # conn ids that joined or changed state since the last flush
        self.left: set[str] = set()  # announced members that left since the last flush
        self.counts_only = False
        self.published_count = 0
        self.published_at = float("-inf")


class PresenceBook:
    """Members per channel and what changed since the last :meth:`flush` (pure; clock injected).

    Args:
        max_members: past this many members a channel publishes counts only.
        count_interval_s: a channel on counts publishes at most this often.
        clock: the current time in seconds (``joined_at``, the count interval).
    """

    def __init__(self, *, max_members: int = 100, count_interval_s: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.max_members = max(1, max_members)
        self.count_interval_s = count_interval_s
        self._clock = clock
        self._rooms: dict[str, _Room] = {}
        self._by_conn: dict[str, set[str]] = {}
        self.dirty: set[str] = set()  # channels with something to flush

    # Commands -------------------------------------------------------------------------------

    def join(self, conn_id: str, channel: str, *, user_id: str, username: str, state: dict[str, Any] | None = None) -> bool:
        """Record ``conn_id`` as present on ``channel``; False when it already was."""
        room = self._rooms.get(channel)
        if room is None:
            room = self._rooms[channel] = _Room()
        if conn_id in room.members:
            return False
        room.members[conn_id] = Member(conn_id, user_id, username, dict(state or {}), round(self._clock(), 3))
        self._by_conn.setdefault(conn_id, set()).add(channel)
        self._touch(channel, room, conn_id)
        return True

    def set_state(self, conn_id: str, channel: str, state: dict[str, Any]) -> Member | None:
        room = self._rooms.get(channel)
        member = room.members.get(conn_id) if room else None
        if member is not None and member.state != state:
            member.state = dict(state)
            self._touch(channel, room, conn_id)
        return member

    def leave(self, conn_id: str, channel: str) -> bool:
        room = self._rooms.get(channel)
        member = room.members.pop(conn_id, None) if room else None
        if member is None:
            return False
        chans = self._by_conn.get(conn_id)
        if chans is not None:
            chans.discard(channel)
            if not chans:
                del self._by_conn[conn_id]
        room.pending.discard(conn_id)
        if member.announced:
            room.left.add(conn_id)
        self.dirty.add(channel)
        return True

    def leave_all(self, conn_id: str) -> list[str]:
        """Remove a connection from every channel; returns those it was present on."""
        chans = sorted(self._by_conn.get(conn_id, ()))
        for channel in chans:
            self.leave(conn_id, channel)
        return chans

    def flush(self) -> list[tuple[str, dict[str, Any]]]:
        """What to publish for every channel that changed: ``(channel, presence data)``.

        A channel on counts whose last count went out less than ``count_interval_s`` ago stays
        in :attr:`dirty` for a later flush."""
        now = self._clock()
        out = []
        deferred = set()
        for channel in sorted(self.dirty):
            room = self._rooms.get(channel)
            if room is None:
                continue
            if room.counts_only and len(room.members) > self.max_members // 2 and now - room.published_at < self.count_interval_s:
                deferred.add(channel)
                continue
            data = self._flush_room(room)
            if data is not None:
                room.published_at = now
            if data is not None:
                out.append((channel, data))
            if not room.members:
                del self._rooms[channel]
        self.dirty = deferred
        return out

    # Queries --------------------------------------------------------------------------------

    def members(self, channel: str) -> list[Member]:
        room = self._rooms.get(channel)
        return sorted(room.members.values(), key=lambda m: (m.joined_at, m.conn_id)) if room else []

    def count(self, channel: str) -> int:
        room = self._rooms.get(channel)
        return len(room.members) if room else 0

    def counts_only(self, channel: str) -> bool:
        """Whether ``channel`` publishes counts only (as of the last flush, or over the limit now)."""
        room = self._rooms.get(channel)
        return room is not None and (room.counts_only or len(room.members) > self.max_members)

    def channels_of(self, conn_id: str) -> frozenset[str]:
        return frozenset(self._by_conn.get(conn_id, ()))

    # Internals ------------------------------------------------------------------------------

    def _touch(self, channel: str, room: _Room, conn_id: str) -> None:
        if not room.counts_only:
            room.pending.add(conn_id)
        self.dirty.add(channel)

    def _flush_room(self, room: _Room) -> dict[str, Any] | None:
        count = len(room.members)
        data: dict[str, Any] | None = None
        if room.counts_only and count <= self.max_members // 2:
            room.counts_only = False
            data = {"event": "members", "count": count, "members": [m.public() for m in self._sorted(room)]}
            for member in room.members.values():
                member.announced = True
        elif not room.counts_only and count > self.max_members:
            room.counts_only = True
            data = {"event": "count", "count": count}
        elif room.counts_only:
            if count != room.published_count:
                data = {"event": "count", "count": count}
        else:
            joined, updated = [], []
            for conn_id in sorted(room.pending):
                member = room.members.get(conn_id)
                if member is not None:
                    (updated if member.announced else joined).append(member)
                    member.announced = True
            left = sorted(room.left)
            if joined or updated or left:
                data = {
                    "event": "changes", "count": count,
                    "joined": [m.public() for m in sorted(joined, key=lambda m: (m.joined_at, m.conn_id))],
                    "updated": [m.public() for m in updated],
                    "left": left,
                }
        room.pending.clear()
        room.left.clear()
        if data is not None:
            room.published_count = count
        return data

    @staticmethod
    def _sorted(room: _Room) -> list[Member]:
        return sorted(room.members.values(), key=lambda m: (m.joined_at, m.conn_id))


class Presence:
    """The presence rules of a server: which channels keep members, the ``presence`` op, and
    one task that publishes what changed at most once per ``coalesce_s`` per channel.

    Args:
        publish: ``publish(channel, type, data)``, the server's publish.
        subscribed: ``subscribed(conn_id, channel)``: whether a connection is subscribed.
        subscriber_count: ``subscriber_count(channel)`` on this process (the ``system`` count).
        enabled: the ``presence`` setting.
        coalesce_s: the interval joins, updates and leaves are folded over.
        max_members: past this many members a channel publishes counts only.
        count_interval_s: a channel on counts publishes at most this often.
        on_error: called once per failed publication (after logging it).
    """

    def __init__(
        self,
        *,
        publish: Publish,
        subscribed: Callable[[str, str], bool],
        subscriber_count: Callable[[str], int],
        enabled: bool = True,
        coalesce_s: float = 0.25,
        max_members: int = 100,
        count_interval_s: float = 5.0,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.book = PresenceBook(max_members=max_members, count_interval_s=count_interval_s)
        self.enabled = enabled
        self.coalesce_s = max(0.0, coalesce_s)
        self._publish = publish
        self._subscribed = subscribed
        self._subscriber_count = subscriber_count
        self._on_error = on_error
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def keeps_members(self, channel: str) -> bool:
        return self.enabled and channel.startswith("dashboard:")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flush_loop(), name="presence-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def join(self, conn: Any, channel: str) -> None:
        """A connection subscribed to ``channel`` (a resubscription changes nothing)."""
        if conn.user is not None and self.keeps_members(channel):
            if self.book.join(conn.id, channel, user_id=conn.user.id, username=conn.user.username):
                self._wakeup.set()

    def leave(self, conn_id: str, channel: str) -> None:
        if self.book.leave(conn_id, channel):
            self._wakeup.set()

    def leave_all(self, conn_id: str) -> None:
        if self.book.leave_all(conn_id):
            self._wakeup.set()

    def op(self, conn: Any, channel: str, state: dict[str, Any] | None) -> dict[str, Any]:
        """The ``presence`` op: optionally set this connection's state; the reply data."""
        if not self.enabled:
            raise ProtocolError(ErrorCode.feature_disabled, "presence is switched off on this server")
        if channel != "system" and not self.keeps_members(channel):
            raise ProtocolError(ErrorCode.invalid_op, "presence is kept on dashboard:<id> and system channels only")
        if not self._subscribed(conn.id, channel):
            raise ProtocolError(ErrorCode.not_subscribed, f"subscribe to {channel} first")
        if channel == "system":
            if state is not None:
                raise ProtocolError(ErrorCode.invalid_op, "system keeps a count only: presence state goes on dashboard:<id>")
            return {"channel": channel, "members": [], "count": self._subscriber_count(channel), "counts_only": True}
        if state is not None:
            if len(dumps(state)) > MAX_STATE_BYTES:
                raise ProtocolError(ErrorCode.invalid_op, f"presence state must be at most {MAX_STATE_BYTES} bytes of JSON")
            if self.book.set_state(conn.id, channel, state) is not None:
                self._wakeup.set()
        counts_only = self.book.counts_only(channel)
        members = [] if counts_only else [m.public() for m in self.book.members(channel)]
        return {"channel": channel, "members": members, "count": self.book.count(channel), "counts_only": counts_only}

    async def flush(self) -> int:
        """Publish what changed now; returns how many publications were made."""
        published = 0
        for channel, data in self.book.flush():
            try:
                await self._publish(channel, "presence", data)
                published += 1
            except Exception:  # noqa: BLE001 - the other channels must still hear of their changes
                log.exception("could not publish presence on %s", channel)
                if self._on_error is not None:
                    self._on_error()
        return published

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            # The first change opens the interval; everything until it ends is folded in.
            await asyncio.sleep(self.coalesce_s)
            self._wakeup.clear()
            await self.flush()
            if self.book.dirty:  # counts held back for their interval: look again later
                self._wakeup.set()
