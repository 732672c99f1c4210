"""Weight windows and the 429 → 418 escalation, on an injected clock."""

from __future__ import annotations

from arbengine.sim.limits import LimitConfig, RateLimiter

IP = "127.0.0.1"
MINUTE = 1_700_000_080.0  # 40 s into a minute


def test_weight_accumulates_within_the_minute_and_resets_after() -> None:
    limiter = RateLimiter(LimitConfig(weight_per_minute=100))
    assert limiter.check(IP, 20, MINUTE).used_weight == 20
    assert limiter.check(IP, 20, MINUTE + 1).used_weight == 40
    assert limiter.check(IP, 5, MINUTE + 20).used_weight == 5  # next minute


def test_over_the_limit_is_429_until_the_minute_ends() -> None:
    limiter = RateLimiter(LimitConfig(weight_per_minute=100, ban_after=3))
    for _ in range(5):
        assert limiter.check(IP, 20, MINUTE).status == 200
    verdict = limiter.check(IP, 20, MINUTE + 0.5)
    assert (verdict.status, verdict.code) == (429, -1003)
    assert verdict.retry_after == 20  # 19.5 s left in the minute, rounded up
    assert limiter.check(IP, 1, MINUTE + 21).status == 200  # a new window


def test_ignoring_429_brings_418_with_escalating_bans() -> None:
    limiter = RateLimiter(LimitConfig(weight_per_minute=10, ban_after=2, ban_seconds=120))
    limiter.check(IP, 10, MINUTE)
    assert limiter.check(IP, 1, MINUTE).status == 429
    assert limiter.check(IP, 1, MINUTE + 1).status == 429  # strike 1
    banned = limiter.check(IP, 1, MINUTE + 2)  # strike 2: banned
    assert banned.status == 418
    assert banned.retry_after == 120
    assert "banned until" in banned.msg
    assert limiter.check(IP, 1, MINUTE + 100).status == 418  # still banned, new minute or not
    after = MINUTE + 2 + 121
    assert limiter.check(IP, 1, after).status == 200
    second = limiter.ban(IP, after)
    assert second.retry_after == 240  # doubled


def test_order_counts_limit_per_ten_seconds() -> None:
    limiter = RateLimiter(LimitConfig(orders_per_10s=3))
    t = 1_700_000_000.0
    for n in range(1, 4):
        verdict, c10, c60 = limiter.order(t)
        assert verdict is None
        assert (c10, c60) == (n, n)
    verdict, c10, _ = limiter.order(t + 1)
    assert verdict is not None
    assert (verdict.status, verdict.code) == (429, -1015)
    assert limiter.order(t + 10)[0] is None
