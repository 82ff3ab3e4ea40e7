"""Admission control for password checks: who may start an argon2 verification now.

argon2 is slow on purpose (~0.2 s of CPU), so unchecked logins are a cheap way to exhaust a
server. :class:`LoginGuard` decides, without I/O and with an injected clock, whether an attempt
may start:

- at most one verification in flight per client address and per username, so one source (or
  one targeted account) holds at most one hashing slot however many requests it sends at once;
- a bounded pool: ``hash_slots`` verifications run, ``queue_max`` more may wait; beyond that
  attempts are refused at once instead of queueing for seconds;
- token buckets: every attempt from an address spends a token; each failed attempt for a
  username spends one of that username's tokens (so a user's own successful logins never lock
  them out, while guessing one password from many addresses is slowed down).

A refused attempt raises :class:`LoginThrottled` with ``retry_after`` seconds (HTTP 429 +
``Retry-After``) and consumes nothing. The per-username limit is a deliberate trade-off: an
attacker can delay a targeted user's login by failing on their name; the limit only slows, it
never locks the account.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from .ratelimit import KeyedRateLimiter


class LoginThrottled(Exception):
    """The attempt was refused before any password was checked; retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class LoginGuard:
    def __init__(
        self,
        *,
        address_rate_per_s: float,
        address_burst: int,
        username_failures_per_s: float,
        username_burst: int,
        hash_slots: int,
        queue_max: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hash_slots = hash_slots
        self.queue_max = queue_max
        self._by_address = KeyedRateLimiter(rate_per_s=address_rate_per_s, burst=address_burst, clock=clock)
        self._by_username = KeyedRateLimiter(rate_per_s=username_failures_per_s, burst=username_burst, clock=clock)
        self._busy_addresses: set[str] = set()
        self._busy_usernames: set[str] = set()
        self.in_flight = 0  # admitted attempts: verifying or waiting for a slot

    def check(self, address: str, username: str) -> None:
        """Admit an attempt (spending the address's token) or raise LoginThrottled."""
        if address in self._busy_addresses:
            raise LoginThrottled("a login from your address is already being checked; retry when it is answered", 1)
        if username in self._busy_usernames:
            raise LoginThrottled(f"a login for {username!r} is already being checked; retry shortly", 1)
        if self.in_flight >= self.hash_slots + self.queue_max:
            raise LoginThrottled("the server is busy checking logins; retry shortly", 1)
        wait = self._by_username.retry_after(username)
        if wait > 0:
            raise LoginThrottled(f"too many failed logins for {username!r}; retry later", wait)
        wait = self._by_address.take(address)
        if wait > 0:
            raise LoginThrottled("too many login attempts from your address; retry later", wait)

    def begin(self, address: str, username: str) -> None:
        self._busy_addresses.add(address)
        self._busy_usernames.add(username)
        self.in_flight += 1

    def end(self, address: str, username: str, *, failed: bool) -> None:
        self._busy_addresses.discard(address)
        self._busy_usernames.discard(username)
        self.in_flight -= 1
        if failed:
            self._by_username.charge(username)
