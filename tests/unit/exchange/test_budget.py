"""The REST budget's rules on explicit times: live polls never wait for repair or backfill."""

from __future__ import annotations

import pytest

from arbengine.exchange.budget import (
    MINUTE_MS,
    SLACK_MS,
    Priority,
    RequestBudget,
    RequestGroup,
    Wait,
    binance_groups,
)

T0 = 1_700_000_040_000 // MINUTE_MS * MINUTE_MS  # the start of a minute
LIVE, REPAIR, BACKFILL = Priority.LIVE, Priority.REPAIR, Priority.BACKFILL


def send(budget: RequestBudget, priority: Priority, weight: int, now: int) -> Wait | None:
    """Ask; when allowed, send and have it answered at once (the exchange counts it)."""
    wait = budget.wait(priority, weight, None, now)
    if wait is None:
        minute = budget.take(priority, weight, None, now)
        budget.answered(weight, budget.used + weight, minute, now)
    return wait


def test_the_reserve_is_the_declared_live_demand_with_headroom() -> None:
    budget = RequestBudget(weight_limit=2400, safety=0.8)
    assert budget.budget == 1920
    budget.declare_live("premium_index", 300)  # weight 10 every 2 s
    budget.declare_live("open_interest", 200)  # 100 symbols every 30 s
    assert budget.live_reserve == 500 * 1.25 + 20
    assert budget.lower_share == 1920 - 645
    budget.declare_live("open_interest", 600)  # redeclared: 300 symbols
    assert budget.live_reserve == 900 * 1.25 + 20
    assert not budget.live_demand_high


def test_a_live_demand_beyond_the_budget_still_leaves_repair_a_share() -> None:
    budget = RequestBudget(weight_limit=2400, safety=0.8)
    budget.declare_live("open_interest", 2000)
    assert budget.live_demand_high
    assert budget.lower_share == 192  # 10 % of 1920


def test_live_may_use_the_whole_budget_then_waits_for_the_next_minute() -> None:
    budget = RequestBudget(weight_limit=100, safety=1.0)
    for _ in range(5):
        assert send(budget, LIVE, 20, T0 + 1_000) is None
    wait = send(budget, LIVE, 20, T0 + 1_000)
    assert wait is not None
    assert wait.reason == "weight"
    assert wait.ms is not None
    assert MINUTE_MS - 1_000 <= wait.ms <= MINUTE_MS - 1_000 + 100
    assert send(budget, LIVE, 20, T0 + MINUTE_MS + 50) is None


def test_repair_receives_its_share_gradually_through_the_minute() -> None:
    budget = RequestBudget(weight_limit=2400, safety=0.8)
    budget.declare_live("premium_index", 300)
    share = budget.lower_share  # 1920 - 395 = 1525
    sent_at_start = 0
    while send(budget, REPAIR, 20, T0) is None:
        sent_at_start += 20
    assert sent_at_start <= share * SLACK_MS / MINUTE_MS
    assert sent_at_start > share * SLACK_MS / MINUTE_MS - 20
    wait = budget.wait(REPAIR, 20, None, T0)
    assert wait is not None
    assert wait.reason == "paced"
    assert wait.ms is not None
    assert 0 < wait.ms < 2_000  # the next call's turn comes within a second or so
    sent = sent_at_start
    for ms in range(0, MINUTE_MS, 100):
        while send(budget, REPAIR, 20, T0 + ms) is None:
            sent += 20
        if ms == 30_000:
            assert sent <= share * (30_000 + SLACK_MS) / MINUTE_MS
    assert share - 20 < sent <= share


def test_a_minute_of_repair_and_backfill_never_delays_a_live_poll() -> None:
    """Three minutes of a tape catch-up and a backfill asking all the time, live polls due
    every 2 s (premiumIndex) and a round of 100 open-interest calls every 30 s."""
    budget = RequestBudget(weight_limit=2400, safety=0.8)
    budget.declare_live("premium_index", 10 * 30)
    budget.declare_live("open_interest", 100 * 2)
    per_minute: dict[int, int] = {}
    lower = 0
    for ms in range(0, 3 * MINUTE_MS, 50):
        now = T0 + ms
        if ms % 2_000 == 0:
            assert send(budget, LIVE, 10, now) is None, f"premiumIndex waited at {ms} ms"
            per_minute[now // MINUTE_MS] = per_minute.get(now // MINUTE_MS, 0) + 10
        if ms % 30_000 == 0:
            for _ in range(100):
                assert send(budget, LIVE, 1, now) is None, f"openInterest waited at {ms} ms"
            per_minute[now // MINUTE_MS] = per_minute.get(now // MINUTE_MS, 0) + 100
        for priority in (REPAIR, BACKFILL):
            if send(budget, priority, 20, now) is None:
                lower += 20
                per_minute[now // MINUTE_MS] = per_minute.get(now // MINUTE_MS, 0) + 20
    assert max(per_minute.values()) <= budget.budget
    assert lower >= 3 * (budget.lower_share - 20)  # and repair got all it was allowed


def test_weight_the_exchange_counts_beyond_ours_comes_out_of_repair_not_live() -> None:
    budget = RequestBudget(weight_limit=1000, safety=1.0)
    budget.declare_live("premium_index", 300)  # reserve 395
    minute = budget.take(LIVE, 1, None, T0 + 50_000)
    budget.answered(1, 700, minute, T0 + 50_000)  # someone else on our IP used 699
    wait = budget.wait(REPAIR, 20, None, T0 + 50_000)
    assert wait is not None
    assert wait.reason == "weight"
    assert budget.wait(LIVE, 10, None, T0 + 50_000) is None


def test_a_count_from_a_minute_that_has_ended_is_not_carried_into_the_next() -> None:
    budget = RequestBudget(weight_limit=100, safety=1.0)
    minute = budget.take(LIVE, 1, None, T0 + 59_990)
    budget.answered(1, 95, minute, T0 + MINUTE_MS + 20)  # answered after the minute turned
    assert budget.used == 0
    assert budget.wait(LIVE, 20, None, T0 + MINUTE_MS + 30) is None


def test_weight_sent_this_minute_counts_whatever_the_answers_say() -> None:
    budget = RequestBudget(weight_limit=50, safety=1.0)
    assert budget.wait(LIVE, 20, None, T0) is None
    minute = budget.take(LIVE, 20, None, T0)
    budget.take(LIVE, 20, None, T0)
    assert budget.wait(LIVE, 20, None, T0) is not None  # 40 in flight
    budget.answered(20, None, minute, T0)  # an answer without a count (or a failure)
    budget.answered(20, 5, minute, T0)  # a count below what we sent (another window's)
    assert budget.committed(T0) == 40
    assert budget.wait(LIVE, 20, None, T0) is not None
    assert budget.wait(LIVE, 20, None, T0 + MINUTE_MS) is None


def test_a_request_count_group_is_a_sliding_window_within_the_safety_share() -> None:
    group = RequestGroup("futures_data", 10, 300_000, prefixes=("/futures/data/",))
    budget = RequestBudget(weight_limit=2400, safety=0.8, groups=[group])
    assert budget.group_for("/futures/data/openInterestHist") == "futures_data"
    assert budget.group_for("/fapi/v1/premiumIndex") is None
    for i in range(8):  # 80 % of 10
        assert budget.wait(BACKFILL, 0, "futures_data", T0 + i * 1_000) is None
        budget.take(BACKFILL, 0, "futures_data", T0 + i * 1_000)
    wait = budget.wait(LIVE, 0, "futures_data", T0 + 10_000)
    assert wait == Wait("futures_data", 300_000 - 10_000 + 1)
    # The first request leaves the window: one more may go; weight is untouched.
    assert budget.wait(BACKFILL, 0, "futures_data", T0 + 300_001) is None
    assert budget.used == budget.inflight == budget.lower_used == 0


def test_a_group_refused_by_the_exchange_waits_alone() -> None:
    budget = RequestBudget(safety=0.8, groups=binance_groups())
    budget.pause_group("funding", T0 + 30_000)
    assert budget.wait(LIVE, 0, "funding", T0) == Wait("funding", 30_000)
    assert budget.wait(LIVE, 0, "futures_data", T0) is None
    assert budget.wait(LIVE, 10, None, T0) is None
    assert budget.wait(LIVE, 0, "funding", T0 + 30_000) is None


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/futures/data/globalLongShortAccountRatio", "futures_data"),
        ("/futures/data/takerlongshortRatio", "futures_data"),
        ("/fapi/v1/fundingRate", "funding"),
        ("/fapi/v1/fundingInfo", "funding"),
        ("/fapi/v1/aggTrades", None),
    ],
)
def test_binance_groups(path: str, group: str | None) -> None:
    assert RequestBudget(safety=0.8, groups=binance_groups()).group_for(path) == group
