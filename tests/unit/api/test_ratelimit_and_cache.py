"""The attempt limiter and the response cache, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from arbengine.api.cache import ResponseCache
from arbengine.api.ratelimit import SlidingWindowLimiter


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
