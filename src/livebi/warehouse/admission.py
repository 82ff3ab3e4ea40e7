"""Fair admission of queries to a warehouse.

A warehouse runs a bounded number of queries at once (its worker threads or pooled
connections). Without admission, whoever submits most fills them: two accounts sending heavy
queries made a third user's ``SELECT 1`` wait for tens of seconds, and the wait counted against
that user's timeout. Admission puts a queue in front of each warehouse:

- at most ``slots`` queries run at once (never more than the connector can run, so an admitted
  query starts at once and its timeout measures only the engine's work);
- one user runs at most ``per_user`` of them, so a single account never holds every slot;
- a free slot goes to the waiting user who was served least recently (a user who has not run
  anything lately goes first), oldest query first within a user: users take turns, so a user
  with one query waits for at most one query of each other user, however many they queue, and
  a newcomer is next in line.

:class:`AdmissionState` is the pure rule (no I/O, fed by tests); :class:`FairQueue` wraps it for
asyncio and reports the waiting position while a query waits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from typing import AsyncIterator, Callable, Hashable


class AdmissionState:
    """Who runs and who waits for one warehouse (pure state machine).

    Tickets are opaque hashables, one per query. ``request`` either admits a ticket at once or
    queues it; ``release`` frees a slot and returns the tickets admitted in its place.
    """

    def __init__(self, *, slots: int, per_user: int) -> None:
        if slots < 1 or per_user < 1:
            raise ValueError("slots and per_user must be at least 1")
        self.slots = slots
        self.per_user = per_user
        self._running: collections.Counter[str] = collections.Counter()
        # users with waiting tickets, in the order they started waiting
        self._waiting: collections.OrderedDict[str, collections.deque[Hashable]] = collections.OrderedDict()
        # admission number of each active user's latest admission (least recently served first)
        self._served: dict[str, int] = {}
        self._admissions = 0

    @property
    def running(self) -> int:
        return sum(self._running.values())

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def running_for(self, user: str) -> int:
        return self._running[user]

    def request(self, user: str, ticket: Hashable) -> bool:
        """Admit ``ticket`` now (True) or queue it (False)."""
        if self.running < self.slots and self._running[user] < self.per_user:
            # Nobody eligible can be waiting here: release() admits eligible waiters at once.
            self._admit(user)
            return True
        self._waiting.setdefault(user, collections.deque()).append(ticket)
        return False

    def withdraw(self, user: str, ticket: Hashable) -> bool:
        """Remove a waiting ticket (its query was cancelled); False if it was not waiting."""
        queue = self._waiting.get(user)
        if queue is None or ticket not in queue:
            return False
        queue.remove(ticket)
        if not queue:
            del self._waiting[user]
            self._forget_if_idle(user)
        return True

    def release(self, user: str) -> list[tuple[str, Hashable]]:
        """A query of ``user`` finished; returns the ``(user, ticket)`` pairs admitted now."""
        if self._running[user] <= 0:
            raise ValueError(f"release without a running query for {user!r}")
        self._running[user] -= 1
        if not self._running[user]:
            del self._running[user]
            self._forget_if_idle(user)
        admitted: list[tuple[str, Hashable]] = []
        while self.running < self.slots:
            eligible = [u for u in self._turn_order() if self._running[u] < self.per_user]
            if not eligible:
                break
            chosen = eligible[0]
            queue = self._waiting[chosen]
            ticket = queue.popleft()
            if not queue:
                del self._waiting[chosen]
            self._admit(chosen)
            admitted.append((chosen, ticket))
        return admitted

    def position(self, user: str, ticket: Hashable) -> int | None:
        """How many queries will be admitted before ``ticket`` at most (None: not waiting).

        Round-robin: every other waiting user gets up to as many turns as ``ticket`` is deep
        in its own user's queue.
        """
        queue = self._waiting.get(user)
        if queue is None or ticket not in queue:
            return None
        depth = queue.index(ticket) + 1
        ahead = depth - 1
        before_me = True
        for other in self._turn_order():
            if other == user:
                before_me = False
                continue
            # Users take turns: each other user gets depth - 1 turns before this ticket's turn,
            # and one more when it comes before this user in the turn order.
            ahead += min(len(self._waiting[other]), depth if before_me else depth - 1)
        return ahead

    def _turn_order(self) -> list[str]:
        """Waiting users, least recently served first (never served: in order of waiting)."""
        return sorted(self._waiting, key=lambda u: self._served.get(u, -1))

    def _admit(self, user: str) -> None:
        self._running[user] += 1
        self._admissions += 1
        self._served[user] = self._admissions

    def _forget_if_idle(self, user: str) -> None:
        if not self._running[user] and user not in self._waiting:
            self._served.pop(user, None)
            del self._running[user]  # Counter lookups above may have added a zero entry


class FairQueue:
    """asyncio admission to one warehouse; see the module docstring."""

    def __init__(self, *, slots: int, per_user: int, report_interval: float = 0.25) -> None:
        self.state = AdmissionState(slots=slots, per_user=per_user)
        self._report_interval = report_interval
        self._grants: dict[Hashable, asyncio.Future[None]] = {}
        self._ids = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, user: str, on_wait: Callable[[int], None] | None = None) -> AsyncIterator[None]:
        """Hold a slot for the body; wait (reporting ``on_wait(queries_ahead)``) until one
        is free. Cancellation while waiting leaves the queue cleanly."""
        ticket = next(self._ids)
        if not self.state.request(user, ticket):
            await self._wait(user, ticket, on_wait)
        try:
            yield
        finally:
            self._admit(self.state.release(user))

    async def _wait(self, user: str, ticket: Hashable, on_wait: Callable[[int], None] | None) -> None:
        granted = asyncio.get_running_loop().create_future()
        self._grants[ticket] = granted
        try:
            while not granted.done():
                if on_wait is not None:
                    ahead = self.state.position(user, ticket)
                    if ahead is not None:
                        on_wait(ahead)
                await asyncio.wait({granted}, timeout=self._report_interval)
        except BaseException:
            if not self.state.withdraw(user, ticket):
                # Admitted in the same instant we were cancelled: give the slot back.
                self._admit(self.state.release(user))
            raise
        finally:
            self._grants.pop(ticket, None)

    def _admit(self, admitted: list[tuple[str, Hashable]]) -> None:
        for _user, ticket in admitted:
            future = self._grants.get(ticket)
            if future is not None and not future.done():
                future.set_result(None)
