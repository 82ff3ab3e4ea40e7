"""Fair admission of queries to a warehouse.

A warehouse runs a bounded number of queries at once (its worker threads or pooled
connections). Without admission, whoever submits most fills them: two accounts sending heavy
queries made a third user's ``SELECT 1`` wait for tens of seconds, and the wait counted against
that user's timeout. Admission puts a queue in front of each warehouse:

- at most ``slots`` queries run at once (never more than the connector can run, so an admitted
  query starts at once and its timeout measures only the engine's work);
- one user runs at most ``per_user`` of them, so a single account never holds every slot;
- waiting queries are served round-robin across users, oldest first within a user, so a user
  with one query waits behind at most one query of each other user, however many they queue.

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
        # users with waiting tickets, in the order they will be served next (round-robin)
        self._waiting: collections.OrderedDict[str, collections.deque[Hashable]] = collections.OrderedDict()

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
            self._running[user] += 1
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
        return True

    def release(self, user: str) -> list[tuple[str, Hashable]]:
        """A query of ``user`` finished; returns the ``(user, ticket)`` pairs admitted now."""
        if self._running[user] <= 0:
            raise ValueError(f"release without a running query for {user!r}")
        self._running[user] -= 1
        if not self._running[user]:
            del self._running[user]
        admitted: list[tuple[str, Hashable]] = []
        while self.running < self.slots:
            chosen = next((u for u in self._waiting if self._running[u] < self.per_user), None)
            if chosen is None:
                break
            queue = self._waiting.pop(chosen)
            ticket = queue.popleft()
            if queue:
                self._waiting[chosen] = queue  # back of the rotation
            self._running[chosen] += 1
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
        for other, other_queue in self._waiting.items():
            if other != user:
                ahead += min(len(other_queue), depth)
        return ahead


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
