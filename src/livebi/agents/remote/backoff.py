"""Pure logic of an agent pool: the reconnection schedule, slots and round robin, and when to
fall back to HTTP and return to WebSocket. No I/O, no clock: :mod:`.pool` feeds it events.
"""

from __future__ import annotations

import random
from typing import Sequence


class Backoff:
    """Exponential backoff with "equal jitter": attempt ``n`` waits between half and all of
    ``min(max_s, base_s * factor**n)``, so retries of many callers spread out instead of
    arriving together, and none retries at once."""

    def __init__(self, *, base_s: float, max_s: float, factor: float = 2.0, rng: random.Random | None = None) -> None:
        if base_s <= 0 or max_s < base_s or factor < 1:
            raise ValueError("need 0 < base_s <= max_s and factor >= 1")
        self.base_s, self.max_s, self.factor = base_s, max_s, factor
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt`` (0: the first retry)."""
        return min(self.max_s, self.base_s * self.factor ** min(max(0, attempt), 64))

    def delay(self, attempt: int) -> float:
        """A wait before retry number ``attempt``, in ``[ceiling/2, ceiling]``."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)


class PoolExhausted(Exception):
    """Every slot of the pool is taken."""


class PoolLedger:
    """Which URL the next call goes to and how many calls hold a connection.

    At most ``max_connections`` calls run at once (each on a connection of its own, WebSocket
    or an HTTP stream); URLs are taken in turn so calls spread over every agent, skipping one
    whose connection just failed until its backoff is over (longer after each failure in a
    row), so a dead agent among live ones costs a call no retry once it is known.
    """

    def __init__(self, urls: Sequence[str], *, max_connections: int) -> None:
        if not urls:
            raise ValueError("an agent pool needs at least one URL")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.urls = list(urls)
        self.max_connections = max_connections
        self.in_use = 0
        self._next = 0
        self._down_until: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def next_url(self, now: float = 0.0) -> str:
        """The next URL in turn that is not backing off at ``now``; when every one is, the one
        whose backoff ends first."""
        for _ in range(len(self.urls)):
            url = self.urls[self._next]
            self._next = (self._next + 1) % len(self.urls)
            if self._down_until.get(url, 0.0) <= now:
                return url
        return min(self.urls, key=lambda u: self._down_until.get(u, 0.0))

    def backing_off(self, url: str, now: float) -> float:
        """Seconds until ``url``'s backoff ends (0: it may be tried now)."""
        return max(0.0, self._down_until.get(url, 0.0) - now)

    def failed(self, url: str, now: float, backoff: Backoff) -> float:
        """A connection to ``url`` failed at ``now``: it backs off; returns until when."""
        failures = self._failures.get(url, 0)
        self._failures[url] = failures + 1
        self._down_until[url] = now + backoff.delay(failures)
        return self._down_until[url]

    def succeeded(self, url: str) -> None:
        self._failures.pop(url, None)
        self._down_until.pop(url, None)

    def take(self) -> None:
        """Take a slot; raises PoolExhausted when all ``max_connections`` are taken."""
        if self.in_use >= self.max_connections:
            raise PoolExhausted(f"all {self.max_connections} connections are busy")
        self.in_use += 1

    def give_back(self) -> None:
        if self.in_use <= 0:
            raise RuntimeError("give_back without take")
        self.in_use -= 1

    @property
    def free(self) -> int:
        return self.max_connections - self.in_use


class TransportMode:
    """WebSocket until ``failures_before_http`` WebSocket failures in a row, then HTTP until a
    probe opens a WebSocket again. Each method returns True when the mode just changed (the
    moment to tell users)."""

    def __init__(self, *, failures_before_http: int) -> None:
        if failures_before_http < 1:
            raise ValueError("failures_before_http must be at least 1")
        self.failures_before_http = failures_before_http
        self.transport = "websocket"
        self.failures = 0  # WebSocket failures in a row

    @property
    def degraded(self) -> bool:
        return self.transport == "http"

    def ws_failed(self) -> bool:
        self.failures += 1
        if self.transport == "websocket" and self.failures >= self.failures_before_http:
            self.transport = "http"
            return True
        return False

    def ws_succeeded(self) -> bool:
        """A WebSocket opened (a call's or a probe's)."""
        self.failures = 0
        if self.transport == "http":
            self.transport = "websocket"
            return True
        return False
