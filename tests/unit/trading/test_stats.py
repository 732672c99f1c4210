"""Backtest statistics on a small hand-computed set of trades."""

from __future__ import annotations

import math

import pytest

from arbengine.trading.stats import DAY_MS, TradeOutcome, summarise

D0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def trade(entry_h: float, close_h: float | None, r: float, funding: float = 0.0) -> TradeOutcome:
    close = None if close_h is None else D0 + int(close_h * 3_600_000)
    return TradeOutcome(D0 + int(entry_h * 3_600_000), close, r, r * 100, funding)


def test_summary_of_worked_example() -> None:
    outcomes = [
        trade(1, 2, 2.0),  # day 1
        trade(3, 5, -1.0, funding=-0.5),  # day 1 (overlaps nothing)
        trade(25, 26, -1.0),  # day 2
        trade(49, 50, 1.5),  # day 3
        trade(70, None, 0.0),  # still open at the end (day 3, 2 h until the end)
    ]
    s = summarise(outcomes, D0, D0 + 3 * DAY_MS)
    assert s.trades == 4
    assert s.open_trades == 1
    assert s.win_rate == 0.5
    assert s.total_r == pytest.approx(1.5)
    assert s.avg_r == pytest.approx(0.375)
    assert s.profit_factor == pytest.approx(3.5 / 2.0)
    assert s.expectancy_usd == pytest.approx(37.5)
    # cumulative: 2, 1, 0, 1.5 -> peak 2, trough 0
    assert s.max_drawdown_r == pytest.approx(2.0)
    daily = [1.0, -1.0, 1.5]
    mean = sum(daily) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in daily) / 2)
    downside = math.sqrt(1.0 / 3)
    assert s.sharpe == pytest.approx(mean / std * math.sqrt(365))
    assert s.sortino == pytest.approx(mean / downside * math.sqrt(365))
    # open for 1 + 2 + 1 + 1 + 2 hours of 72
    assert s.exposure == pytest.approx(7 / 72)
    assert s.funding_usd == pytest.approx(-0.5)


def test_overlapping_positions_count_once_for_exposure() -> None:
    s = summarise([trade(0, 2, 1.0), trade(1, 3, 1.0)], D0, D0 + DAY_MS)
    assert s.exposure == pytest.approx(3 / 24)
    assert s.profit_factor is None  # no losses
    assert s.sharpe is None  # one day only


def test_empty_set() -> None:
    s = summarise([], D0, D0 + 2 * DAY_MS)
    assert (s.trades, s.win_rate, s.avg_r, s.total_r, s.exposure) == (0, None, None, 0.0, 0.0)
    assert s.sharpe is None
