"""Candles, ATR and the ATR percentile on hand-computed cases."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from arbengine.signals import FeatureSpec, SymbolFeatures
from tests.unit.signals.signals_helpers import HOUR, SEC, T0, batch, buy

CANDLE = 300_000
SPEC = FeatureSpec(max_staleness_ms=26 * HOUR, atr_percentile_min_values=12)


class Feed:
    """Writes candles trade by trade: (high, low, close) or None for an empty candle."""

    def __init__(self, start_ms: int) -> None:
        self.start = start_ms
        self.next_id = 1
        self.rows: list[tuple[int, int, float, float, bool]] = []

    def candles(self, first_index: int, hlc: Sequence[tuple[float, float, float] | None]) -> None:
        for i, item in enumerate(hlc):
            if item is None:
                continue
            high, low, close = item
            base = self.start + (first_index + i) * CANDLE
            for offset, price in ((10, high), (20, low), (40, close)):
                self.rows.append(buy(self.next_id, base + offset * SEC, price, 1.0))
                self.next_id += 1

    def trade(self, t_ms: int, price: float) -> None:
        self.rows.append(buy(self.next_id, t_ms, price, 1.0))
        self.next_id += 1

    def state(self) -> SymbolFeatures:
        s = SymbolFeatures("X")
        s.add_trades(batch(self.rows))
        return s


START = T0 + 10 * HOUR
# TR: 5 (first candle: h − l), 3 (max(3, |104−102|, |101−102|)), 0 (empty: O=H=L=C=103),
# 7 (gap up: |110 − 103|), then ten candles of 2. Sum 35 over 14 candles.
FOURTEEN: list[tuple[float, float, float] | None] = [
    (105, 100, 102),
    (104, 101, 103),
    None,
    (110, 106, 108),
    *[(109, 107, 108)] * 10,
]


def test_atr_is_the_mean_tr_of_the_last_14_closed_candles() -> None:
    feed = Feed(START)
    feed.candles(0, FOURTEEN)
    s = feed.state()
    t = START + 14 * CANDLE  # candle 13 closes exactly here
    f = s.evaluate(t, SPEC)
    assert f["atr"] == pytest.approx(35 / 14)
    assert f["atr_pct"] == pytest.approx((35 / 14) / 108)


def test_atr_is_absent_with_13_closed_candles() -> None:
    feed = Feed(START)
    feed.candles(0, FOURTEEN)
    f = feed.state().evaluate(START + 14 * CANDLE - SEC, SPEC)  # candle 13 still open
    assert "atr" not in f
    assert "atr_pct" not in f
    assert "atr_percentile" not in f


def test_open_candle_does_not_count_until_it_closes() -> None:
    feed = Feed(START)
    feed.candles(0, FOURTEEN)
    feed.candles(14, [(200, 50, 120)])  # a wild candle 14, open at the tick
    f = feed.state().evaluate(START + 14 * CANDLE + 150 * SEC, SPEC)
    assert f["atr"] == pytest.approx(35 / 14)


def test_first_candle_in_the_horizon_has_tr_high_minus_low() -> None:
    t = START + 14 * CANDLE
    # A trade 25 h before t is history: candles from it to the 14 are empty and
    # count, and the first of the 14 uses its close (50): TR = max(5, 55, 50) = 55.
    inside = Feed(START)
    inside.trade(t - 25 * HOUR, 50.0)
    inside.candles(0, FOURTEEN)
    assert inside.state().evaluate(t, SPEC)["atr"] == pytest.approx((55 + 3 + 0 + 7 + 20) / 14)
    # The same trade 27 h before t is outside the history: the 14 stand alone.
    outside = Feed(START)
    outside.trade(t - 27 * HOUR, 50.0)
    outside.candles(0, FOURTEEN)
    assert outside.state().evaluate(t, SPEC)["atr"] == pytest.approx(35 / 14)


def test_atr_percentile_ranks_the_current_atr_among_the_last_closes() -> None:
    # 14 candles with TR 4, then 11 with TR 2: ATR at close 14 + j is (56 − 2j) / 14,
    # falling; at close 25 the current ATR (34/14) is the smallest of 12 values.
    feed = Feed(START)
    feed.candles(0, [(102, 98, 100)] * 14 + [(101, 99, 100)] * 11)
    s = feed.state()
    t = START + 25 * CANDLE
    f = s.evaluate(t, SPEC)
    assert f["atr"] == pytest.approx(34 / 14)
    assert f["atr_percentile"] == pytest.approx(100 / 12)
    g = SymbolFeatures("X")
    g.add_trades(batch(feed.rows))
    strict = FeatureSpec(max_staleness_ms=26 * HOUR, atr_percentile_min_values=13)
    assert "atr_percentile" not in g.evaluate(t, strict)


def test_atr_percentile_counts_ties_as_at_or_below() -> None:
    feed = Feed(START)
    feed.candles(0, [(101, 99, 100)] * 30)  # every TR is 2, every ATR is 2
    f = feed.state().evaluate(START + 30 * CANDLE, SPEC)
    assert f["atr"] == pytest.approx(2.0)
    assert f["atr_percentile"] == 100.0


def test_atr_percentile_uses_at_most_288_closes() -> None:
    # 14 candles of TR 10, then TR 2. The ATR at close c covers candles c−14..c−1, so
    # closes 15..27 (13 values) are above 2 and every later one is exactly 2.
    feed = Feed(START)
    feed.candles(0, [(105, 95, 100)] * 14 + [(101, 99, 100)] * 301)
    spec = FeatureSpec(max_staleness_ms=26 * HOUR)
    results = {}
    s = feed.state()
    for k in (302, 314, 315):
        results[k] = s.evaluate(START + k * CANDLE, spec)
    # K = 302: closes 15..302, 13 above the current 2.
    assert results[302]["atr"] == pytest.approx(2.0)
    assert results[302]["atr_percentile"] == pytest.approx(100 * (288 - 13) / 288)
    # K = 314: closes 27..314, only close 27 above.
    assert results[314]["atr_percentile"] == pytest.approx(100 * 287 / 288)
    # K = 315: closes 28..315, all equal.
    assert results[315]["atr_percentile"] == 100.0


def test_candle_changed_by_a_late_trade_is_recomputed() -> None:
    feed = Feed(START)
    feed.candles(0, FOURTEEN)
    s = feed.state()
    t = START + 14 * CANDLE
    assert s.evaluate(t, SPEC)["atr"] == pytest.approx(35 / 14)
    # A late trade at 130 in candle 13 (after its close 108): h = 130, TR = max(23, 22, 1) = 23.
    s.add_trades(batch([buy(999, START + 13 * CANDLE + 50 * SEC, 130.0, 1.0)]))
    assert s.evaluate(t + 15 * SEC, SPEC)["atr"] == pytest.approx((35 - 2 + 23) / 14)
