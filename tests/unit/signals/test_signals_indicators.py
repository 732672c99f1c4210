"""Indicator features: as-of on known time, staleness, period series, absent never zero."""

from __future__ import annotations

import math

import pytest

from arbengine.domain.market import Indicator, Liquidation, MarkPrice, RateSnapshot
from arbengine.signals import FeatureSpec, InputSeries, SymbolFeatures
from arbengine.signals.features import FEATURE_NAMES
from tests.unit.signals.signals_helpers import HOUR, MIN, SEC, T0

SPEC = FeatureSpec(fast_ms=10 * MIN, max_staleness_ms=5 * MIN)
T = T0 + 30 * HOUR
STALE = SPEC.max_staleness_ms
INDICATOR_FEATURES = {
    "funding_rate",
    "funding_annualised",
    "oi_change_1h",
    "ls_global",
    "ls_top",
    "taker_ratio",
    "coinbase_premium_bps",
}


def features(*values: tuple[InputSeries, int, float]) -> dict[str, float]:
    s = SymbolFeatures("BTCUSDT")
    for series, known, value in values:
        s.add_value(series, known, value)
    return dict(s.evaluate(T, SPEC))


def test_no_inputs_means_absent_not_zero() -> None:
    f = features()
    assert INDICATOR_FEATURES.isdisjoint(f)
    assert set(FEATURE_NAMES) >= INDICATOR_FEATURES


def test_non_finite_values_are_no_values() -> None:
    f = features(
        (InputSeries.FUNDING_RATE, T - 2 * SEC, 0.0001),
        (InputSeries.FUNDING_RATE, T - SEC, float("nan")),
        (InputSeries.LS_GLOBAL, T - SEC, float("inf")),
    )
    assert f["funding_rate"] == 0.0001
    assert "ls_global" not in f


def test_value_known_exactly_at_t_is_not_seen_yet() -> None:
    assert "funding_rate" not in features((InputSeries.FUNDING_RATE, T, 0.0001))
    assert features((InputSeries.FUNDING_RATE, T - 1, 0.0001))["funding_rate"] == 0.0001


def test_latest_value_known_before_t_wins() -> None:
    f = features(
        (InputSeries.FUNDING_RATE, T - 3 * SEC, 0.0003),
        (InputSeries.FUNDING_RATE, T - 2 * SEC, 0.0002),
        (InputSeries.FUNDING_RATE, T + 1 * SEC, 0.0009),
    )
    assert f["funding_rate"] == 0.0002


def test_staleness_boundary() -> None:
    assert features((InputSeries.FUNDING_RATE, T - STALE, 0.0001))["funding_rate"] == 0.0001
    assert "funding_rate" not in features((InputSeries.FUNDING_RATE, T - STALE - 1, 0.0001))


def test_period_series_is_known_at_the_end_of_its_period() -> None:
    period = 5 * MIN
    s = SymbolFeatures("BTCUSDT")
    for start, value in ((T - period + 1, 4.0), (T - period, 3.0), (T - period - 1, 2.0)):
        s.add_indicator(
            Indicator(
                symbol="BTCUSDT", kind="ls_global", ts=start, known_at=start + period, value=value
            )
        )
    # known at t + 1 and at t: not yet visible; known at t − 1: visible
    assert s.evaluate(T, SPEC)["ls_global"] == pytest.approx(math.log(2.0))


def test_funding_annualised_uses_the_interval_or_8_hours() -> None:
    f = features((InputSeries.FUNDING_RATE, T - SEC, 0.0001))
    assert f["funding_annualised"] == pytest.approx(0.0001 * 3 * 365)
    g = features(
        (InputSeries.FUNDING_RATE, T - SEC, 0.0001),
        (InputSeries.FUNDING_INTERVAL_HOURS, T - 20 * HOUR, 4.0),  # never stale, in horizon
    )
    assert g["funding_annualised"] == pytest.approx(0.0001 * 6 * 365)
    h = features(
        (InputSeries.FUNDING_RATE, T - SEC, 0.0001),
        (InputSeries.FUNDING_INTERVAL_HOURS, T - 27 * HOUR, 4.0),  # outside the horizon
    )
    assert h["funding_annualised"] == pytest.approx(0.0001 * 3 * 365)


def test_oi_change_1h_judges_each_value_stale_at_its_own_time() -> None:
    f = features(
        (InputSeries.OPEN_INTEREST, T - HOUR - 4 * MIN, 100.0),
        (InputSeries.OPEN_INTEREST, T - 10 * SEC, 110.0),
    )
    assert f["oi_change_1h"] == pytest.approx(0.1)
    # the t − 1h value is older than t − 1h − max_staleness: absent
    g = features(
        (InputSeries.OPEN_INTEREST, T - HOUR - STALE - 1, 100.0),
        (InputSeries.OPEN_INTEREST, T - 10 * SEC, 110.0),
    )
    assert "oi_change_1h" not in g
    # a value known after t − 1h is not the as-of value at t − 1h
    h = features(
        (InputSeries.OPEN_INTEREST, T - HOUR + 1, 100.0),
        (InputSeries.OPEN_INTEREST, T - 10 * SEC, 110.0),
    )
    assert "oi_change_1h" not in h


def test_non_positive_inputs_make_ratio_features_absent() -> None:
    f = features(
        (InputSeries.OPEN_INTEREST, T - HOUR - MIN, 0.0),
        (InputSeries.OPEN_INTEREST, T - SEC, 110.0),
        (InputSeries.LS_GLOBAL, T - SEC, 0.0),
        (InputSeries.LS_TOP, T - SEC, -1.0),
        (InputSeries.TAKER_RATIO, T - SEC, 0.5),
        (InputSeries.COINBASE_PRICE, T - SEC, 100.0),
        (InputSeries.INDEX_PRICE, T - SEC, 0.0),
    )
    assert "oi_change_1h" not in f
    assert "ls_global" not in f
    assert "ls_top" not in f
    assert "coinbase_premium_bps" not in f
    assert f["taker_ratio"] == pytest.approx(-math.log(2.0))


def test_log_ratios_and_coinbase_premium() -> None:
    f = features(
        (InputSeries.LS_GLOBAL, T - SEC, 2.0),
        (InputSeries.LS_TOP, T - SEC, 1.0),
        (InputSeries.COINBASE_PRICE, T - SEC, 100.05),
        (InputSeries.INDEX_PRICE, T - 2 * SEC, 100.0),
    )
    assert f["ls_global"] == pytest.approx(math.log(2.0))
    assert f["ls_top"] == 0.0
    assert f["coinbase_premium_bps"] == pytest.approx(5.0)


def test_coinbase_premium_needs_both_prices_fresh() -> None:
    f = features(
        (InputSeries.COINBASE_PRICE, T - SEC, 100.05),
        (InputSeries.INDEX_PRICE, T - STALE - 1, 100.0),
    )
    assert "coinbase_premium_bps" not in f


def test_market_events_feed_the_series() -> None:
    s = SymbolFeatures("BTCUSDT")
    s.add_mark_price(
        MarkPrice(
            symbol="BTCUSDT",
            ts=T - 2 * SEC,
            mark_price=100.0,
            index_price=100.0,
            estimated_settle_price=None,
            funding_rate=0.0002,
            next_funding_time=0,
        )
    )
    s.add_mark_price(
        RateSnapshot(
            symbol="BTCUSDT",
            ts=T - SEC,
            mark_price=100.0,
            index_price=200.0,
            estimated_settle_price=None,
            funding_rate=0.0001,
            interest_rate=None,
            next_funding_time=None,
        )
    )
    assert s.add_indicator(
        Indicator(
            symbol="BTCUSDT", kind="coinbase_price", ts=T - SEC, known_at=T - SEC, value=201.0
        )
    )
    # settled funding history is not the current rate; unread kinds are ignored
    assert not s.add_indicator(
        Indicator(symbol="BTCUSDT", kind="funding_rate", ts=T - 1, known_at=T - 1, value=0.5)
    )
    assert not s.add_indicator(
        Indicator(symbol="BTCUSDT", kind="open_interest", ts=T - 1, known_at=T - 1, value=None)
    )
    f = s.evaluate(T, SPEC)
    assert f["funding_rate"] == 0.0001
    assert f["coinbase_premium_bps"] == pytest.approx(50.0)


def liquidation(side: str, t_ms: int, avg_price: float, qty: float) -> Liquidation:
    return Liquidation(
        symbol="BTCUSDT",
        ts=t_ms,
        event_time=t_ms + 5,
        side=side,  # type: ignore[arg-type]
        order_type="LIMIT",
        time_in_force="IOC",
        qty=qty,
        price=avg_price,
        avg_price=avg_price,
        status="FILLED",
        last_qty=qty,
        filled_qty=qty,
    )


def test_liquidation_imbalance_over_the_fast_window() -> None:
    s = SymbolFeatures("BTCUSDT")
    s.add_liquidation(liquidation("BUY", T - 5 * MIN, 100.0, 3.0))  # short liquidated: 300
    s.add_liquidation(liquidation("SELL", T - 1 * MIN, 50.0, 2.0))  # long liquidated: 100
    s.add_liquidation(liquidation("SELL", T - 1 * MIN, 50.0, 2.0))  # exact repeat: once
    s.add_liquidation(liquidation("SELL", T - 10 * MIN - 1, 10.0, 1000.0))  # before window
    s.add_liquidation(liquidation("SELL", T, 10.0, 1000.0))  # at t: next tick
    assert s.evaluate(T, SPEC)["liq_imbalance_fast"] == pytest.approx((300 - 100) / 400)


def test_liquidation_imbalance_is_zero_without_liquidations() -> None:
    assert SymbolFeatures("X").evaluate(T, SPEC)["liq_imbalance_fast"] == 0.0
