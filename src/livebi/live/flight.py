"""Single flight: identical work asked for at the same moment runs once.

``run(key, fn)`` joins the flight already running for ``key`` or starts one. A caller that
must see data newer than some moment (a change was signalled at ``not_before``) does not join
a flight that started before it: it waits for that one to end and then starts (or joins) a
fresh one, so an insert that lands while a query runs is never answered by that older query.
A caller that is cancelled leaves the flight running for the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Awaitable, Callable, Hashable, TypeVar

T = TypeVar("T")


@dataclasses.dataclass
class _Flight:
    started: float
    task: asyncio.Task[Any]


class SingleFlight:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._flights: dict[Hashable, _Flight] = {}
        self.started = 0  # flights started (each one ran fn once)
        self.joined = 0  # callers that shared a flight someone else started

    def running(self, key: Hashable) -> bool:
        return key in self._flights

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]], *, not_before: float | None = None) -> T:
        while True:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._start(key, fn)
            elif not_before is not None and flight.started < not_before:
                # too old for this caller: let it finish (its own callers want it), then go again
                await asyncio.wait({flight.task})
                continue
            else:
                self.joined += 1
            return await asyncio.shield(flight.task)

    def _start(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> _Flight:
        self.started += 1
        flight = _Flight(self._clock(), asyncio.ensure_future(fn()))
        self._flights[key] = flight

        def done(task: asyncio.Task[Any]) -> None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not task.cancelled():
                task.exception()  # retrieved: every caller gets it through shield

        flight.task.add_done_callback(done)
        return flight
