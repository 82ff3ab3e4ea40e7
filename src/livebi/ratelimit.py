"""Token buckets per key (client address, username): a pure rate limiter with an injected clock.

Each key has a bucket of ``burst`` tokens that refills at ``rate_per_s``. :meth:`take` spends a
token or says how many seconds until one is available (the ``Retry-After`` a client is told).
Full buckets carry no information, so they are forgotten when more than ``max_keys`` keys are
tracked: memory stays bounded however many addresses an attacker uses.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable


class KeyedRateLimiter:
    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, as of when)

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: Hashable, now: float) -> float:
        tokens, then = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - then) * self.rate_per_s)

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may take a token (0.0: now). Takes nothing."""
        level = self._level(key, self._clock())
        return 0.0 if level >= 1 else (1 - level) / self.rate_per_s

    def take(self, key: Hashable) -> float:
        """Spend one token of ``key``: 0.0 when taken, else the seconds to wait (nothing taken)."""
        now = self._clock()
        level = self._level(key, now)
        if level < 1:
            return (1 - level) / self.rate_per_s
        self._store(key, level - 1, now)
        return 0.0

    def charge(self, key: Hashable) -> None:
        """Spend one token of ``key`` even if none is left (the bucket stops at empty)."""
        now = self._clock()
        self._store(key, max(0.0, self._level(key, now) - 1), now)

    def _store(self, key: Hashable, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        full = [k for k in self._buckets if self._level(k, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        # Still too many busy keys: drop the oldest half (their owners get a fresh burst, which
        # is the price of bounded memory; the login guard's pool bound still holds).
        if len(self._buckets) > self.max_keys:
            for key in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[key]
