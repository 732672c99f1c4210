"""The attempt limiters and the response cache, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from arbengine.api.cache import ResponseCache
from arbengine.api.ratelimit import Attempt, LoginThrottle, Refused, SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_limited_after_n_hits_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60.0, clock=clock)
    for _ in range(2):
        limiter.hit("ip")
        clock.now += 10
    assert limiter.retry_after("ip") is None
    limiter.hit("ip")  # hits at 1000, 1010, 1020
    assert limiter.retry_after("ip") == pytest.approx(40.0)  # 1000 + 60 - 1020
    assert limiter.retry_after("other") is None
    clock.now = 1060.0
    assert limiter.retry_after("ip") is None  # the hit at 1000 has left the window


def test_reset_forgets_a_key() -> None:
    limiter = SlidingWindowLimiter(1, 60.0, clock=Clock())
    limiter.hit("alice")
    assert limiter.retry_after("alice") is not None
    limiter.reset("alice")
    assert limiter.retry_after("alice") is None


def test_the_number_of_keys_is_bounded_oldest_first() -> None:
    limiter = SlidingWindowLimiter(1, 60.0, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        limiter.hit(key)
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("b") is not None
    assert limiter.retry_after("c") is not None


def test_a_released_hit_no_longer_counts() -> None:
    limiter = SlidingWindowLimiter(2, 60.0, clock=Clock())
    first = limiter.hit("ip")
    limiter.hit("ip")
    assert limiter.retry_after("ip") is not None
    limiter.release("ip", first)
    assert limiter.retry_after("ip") is None
    assert limiter.count("ip") == 1


def throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(
        per_address=5,
        per_account_address=3,
        delay_after=2,
        delay_initial_s=1.0,
        delay_max_s=5.0,
        window_s=60.0,
        clock=clock,
    )


def admitted(result: Attempt | Refused) -> Attempt:
    assert isinstance(result, Attempt), result
    return result


def test_attempts_are_reserved_when_admitted_not_when_they_fail() -> None:
    limits = throttle(Clock())
    # Three attempts in flight at once (none has failed yet): the fourth is refused.
    in_flight = [admitted(limits.admit("alice", "1.2.3.4")) for _ in range(3)]
    refused = limits.admit("alice", "1.2.3.4")
    assert isinstance(refused, Refused)
    assert refused.scope == "account_address"
    assert refused.retry_after_s == pytest.approx(60.0)
    # One of them could not be evaluated (say the database was down): its slot comes back.
    limits.abandoned(in_flight[0])
    admitted(limits.admit("alice", "1.2.3.4"))


def test_the_address_limit_spans_accounts() -> None:
    limits = throttle(Clock())
    for n in range(5):
        limits.failed(admitted(limits.admit(f"user{n}", "1.2.3.4")))
    refused = limits.admit("someone", "1.2.3.4")
    assert isinstance(refused, Refused)
    assert refused.scope == "address"
    admitted(limits.admit("someone", "5.6.7.8"))


def test_a_success_clears_its_address_for_the_account_and_counts_nothing() -> None:
    limits = throttle(Clock())
    for _ in range(2):
        limits.failed(admitted(limits.admit("alice", "1.2.3.4")))
    limits.succeeded(admitted(limits.admit("alice", "1.2.3.4")))
    for _ in range(3):
        admitted(limits.admit("alice", "1.2.3.4"))


def test_an_attacked_account_waits_longer_per_failure_up_to_the_cap_and_recovers() -> None:
    clock = Clock()
    limits = throttle(clock)
    delays = []
    for n in range(8):
        attempt = admitted(limits.admit("alice", f"10.0.0.{n}"))
        delays.append(attempt.delay_s)
        limits.failed(attempt)
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    clock.now += 61
    assert admitted(limits.admit("alice", "10.0.1.1")).delay_s == 0.0


def test_concurrent_attempts_on_an_account_each_wait_longer() -> None:
    limits = throttle(Clock())
    # None has failed yet, but each admitted attempt counts against the next.
    in_flight = [admitted(limits.admit("bob", f"10.0.0.{n}")) for n in range(5)]
    assert [a.delay_s for a in in_flight] == [0.0, 0.0, 1.0, 2.0, 4.0]


async def test_the_cache_serves_until_expiry_and_computes_once_for_many() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock)
    calls = 0
    release = asyncio.Event()

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        return f"v{calls}".encode()

    waiting = [asyncio.create_task(cache.get("rates", 3.0, compute)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [b"v1"] * 5
    assert calls == 1

    clock.now += 2.9
    assert await cache.get("rates", 3.0, compute) == b"v1"
    clock.now += 0.2
    assert await cache.get("rates", 3.0, compute) == b"v2"
    assert calls == 2


async def test_a_failed_computation_is_not_cached() -> None:
    cache = ResponseCache(clock=Clock())

    async def fail() -> bytes:
        raise ConnectionError("database down")

    async def succeed() -> bytes:
        return b"ok"

    with pytest.raises(ConnectionError):
        await cache.get("stats", 60.0, fail)
    assert await cache.get("stats", 60.0, succeed) == b"ok"


async def test_while_one_request_refreshes_the_others_get_the_previous_answer() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock)

    async def first() -> bytes:
        return b"old"

    assert await cache.get("stats", 60.0, first) == b"old"
    clock.now += 61
    release = asyncio.Event()

    async def slow() -> bytes:
        await release.wait()
        return b"new"

    refreshing = asyncio.create_task(cache.get("stats", 60.0, slow))
    await asyncio.sleep(0)  # the refresh now holds the lock
    assert await cache.get("stats", 60.0, slow) == b"old"
    release.set()
    assert await refreshing == b"new"
    assert await cache.get("stats", 60.0, slow) == b"new"
