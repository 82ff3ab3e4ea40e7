"""The login limiter and guard, fed a fake clock: pure decisions, no sockets, no timing."""

from __future__ import annotations

import pytest

from livebi.auth_limits import LoginGuard, LoginThrottled
from livebi.ratelimit import KeyedRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_buckets_allow_a_burst_then_the_rate_and_say_how_long_to_wait() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(rate_per_s=0.5, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(2.0), "one token every 2 s"
    assert limiter.take("b") == 0.0, "keys are independent"
    clock.now += 1.0
    assert limiter.take("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.take("a") == 0.0
    assert limiter.retry_after("a") == pytest.approx(2.0), "retry_after does not take"
    assert limiter.retry_after("a") == pytest.approx(2.0)


def test_charge_takes_without_asking_and_never_goes_below_empty() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(rate_per_s=1, burst=2, clock=clock)
    for _ in range(5):
        limiter.charge("a")
    assert limiter.retry_after("a") == pytest.approx(1.0), "a flood of charges does not lock out longer"


def test_the_limiter_forgets_idle_keys_so_memory_stays_bounded() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(rate_per_s=1, burst=1, clock=clock, max_keys=10)
    for i in range(10):
        limiter.take(f"k{i}")
    clock.now += 5  # every bucket is full again: nothing to remember
    for i in range(10, 100):
        limiter.take(f"k{i}")
        clock.now += 1
    assert len(limiter) <= 10
    # Busy keys survive a sweep of full ones.
    limiter = KeyedRateLimiter(rate_per_s=0.001, burst=1, clock=clock, max_keys=4)
    limiter.take("busy")
    for i in range(3):
        limiter.take(f"idle{i}")
    clock.now += 10_000
    limiter.take("busy")  # empty again
    limiter.take("new")
    assert limiter.retry_after("busy") > 0


def guard(clock: Clock, **kw) -> LoginGuard:
    opts = dict(address_rate_per_s=1.0, address_burst=3, username_failures_per_s=0.1, username_burst=2,
                hash_slots=2, queue_max=2, clock=clock)
    opts.update(kw)
    return LoginGuard(**opts)


def test_one_verification_in_flight_per_address_and_per_username() -> None:
    g = guard(Clock())
    g.begin("1.1.1.1", "alice")
    with pytest.raises(LoginThrottled, match="address"):
        g.check("1.1.1.1", "bob")
    with pytest.raises(LoginThrottled, match="alice"):
        g.check("2.2.2.2", "alice")
    g.check("2.2.2.2", "bob")  # another source, another user: admitted
    g.end("1.1.1.1", "alice", failed=False)
    g.check("1.1.1.1", "bob")


def test_the_pool_queue_is_bounded_and_refuses_instead_of_waiting() -> None:
    g = guard(Clock(), hash_slots=2, queue_max=1)
    for i in range(3):
        g.check(f"10.0.0.{i}", f"u{i}")
        g.begin(f"10.0.0.{i}", f"u{i}")
    with pytest.raises(LoginThrottled, match="busy") as info:
        g.check("10.0.0.9", "u9")
    assert info.value.retry_after >= 1
    g.end("10.0.0.0", "u0", failed=True)
    g.check("10.0.0.9", "u9")


def test_address_attempts_and_username_failures_are_rate_limited() -> None:
    clock = Clock()
    g = guard(clock)
    for _ in range(3):
        g.check("1.1.1.1", "x")
        g.begin("1.1.1.1", "x")
        g.end("1.1.1.1", "x", failed=False)  # even successes count for the address
    with pytest.raises(LoginThrottled) as info:
        g.check("1.1.1.1", "x")
    assert info.value.retry_after == pytest.approx(1.0)
    # Failures for one username, from ever new addresses.
    for i in range(2):
        g.check(f"9.9.9.{i}", "alice")
        g.begin(f"9.9.9.{i}", "alice")
        g.end(f"9.9.9.{i}", "alice", failed=True)
    with pytest.raises(LoginThrottled, match="alice") as info:
        g.check("9.9.9.200", "alice")
    assert info.value.retry_after == pytest.approx(10.0)
    g.check("9.9.9.200", "bob")
    clock.now += 10
    g.check("9.9.9.201", "alice")


def test_a_refused_check_consumes_nothing() -> None:
    clock = Clock()
    g = guard(clock, address_burst=1)
    g.begin("1.1.1.1", "alice")
    for _ in range(5):
        with pytest.raises(LoginThrottled):
            g.check("2.2.2.2", "alice")  # refused for the username: the address keeps its token
    g.end("1.1.1.1", "alice", failed=False)
    g.check("2.2.2.2", "alice")


def test_client_address_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    from livebi.transports.client_address import client_address

    assert client_address("198.51.100.7", "1.2.3.4", []) == "198.51.100.7"
    assert client_address("198.51.100.7", "1.2.3.4", ["10.0.0.0/8"]) == "198.51.100.7", "peer is no proxy"
    assert client_address("10.0.0.2", "1.2.3.4", ["10.0.0.0/8"]) == "1.2.3.4"
    # A client's own forged entries sit left of the real one: read from the right.
    assert client_address("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.3", ["10.0.0.0/8"]) == "1.2.3.4"
    assert client_address("10.0.0.2", "garbage, 10.0.0.9", ["10.0.0.0/8"]) == "garbage"
    assert client_address(None, None, []) == "unknown"
