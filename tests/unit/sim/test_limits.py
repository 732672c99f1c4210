"""Weight windows and the 429 → 418 escalation, on an injected clock."""

from __future__ import annotations

from arbengine.sim.limits import LimitConfig, RateLimiter, group_of

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


def test_futures_data_and_funding_have_request_counts_of_their_own() -> None:
    limiter = RateLimiter(LimitConfig(futures_data_requests=3, funding_requests=2))
    t = 1_700_000_100.0  # the start of a 5-minute window
    assert group_of("/futures/data/openInterestHist") == "futures_data"
    assert group_of("/fapi/v1/fundingInfo") == group_of("/fapi/v1/fundingRate") == "funding"
    assert group_of("/fapi/v1/premiumIndex") is None
    for _ in range(3):
        assert limiter.count(IP, "futures_data", t).status == 200
    refused = limiter.count(IP, "futures_data", t + 1)
    assert (refused.status, refused.code) == (429, -1003)
    assert refused.retry_after == 299  # to the end of the 5-minute window
    assert "futures_data is 3 requests per 5 minutes" in refused.msg
    assert limiter.count(IP, "funding", t + 1).status == 200  # another group's count
    assert limiter.check(IP, 1, t + 1).status == 200  # and the weight are untouched
    assert limiter.count(IP, "futures_data", t + 300).status == 200  # a new window


def test_calling_a_refused_group_again_brings_a_ban() -> None:
    limiter = RateLimiter(LimitConfig(funding_requests=1, ban_after=2))
    t = 1_700_000_100.0
    limiter.count(IP, "funding", t)
    assert limiter.count(IP, "funding", t).status == 429
    assert limiter.count(IP, "funding", t + 1).status == 429  # strike 1
    assert limiter.count(IP, "funding", t + 2).status == 418  # strike 2: banned
    assert limiter.check(IP, 1, t + 3).status == 418  # every call
