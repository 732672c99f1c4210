"""Window features, price and trade bookkeeping on small hand-computed cases."""

from __future__ import annotations

import pytest

from arbengine.signals import SymbolFeatures, TickOrderError
from arbengine.signals.features import FEATURE_NAMES
from tests.unit.signals.signals_helpers import HOUR, SEC, SMALL_SPEC, T0, batch, buy, sell

T = T0 + 2 * HOUR  # the tick under test


def state_with(*rows: tuple[int, int, float, float, bool]) -> SymbolFeatures:
    s = SymbolFeatures("BTCUSDT")
    s.add_trades(batch(rows))
    return s


def test_cvd_flow_vwap_over_the_three_windows() -> None:
    s = state_with(
        sell(1, T - 3000 * SEC, 98.0, 3.0),  # day window only
        buy(2, T - 200 * SEC, 99.0, 1.0),  # mid and day
        buy(3, T - 50 * SEC, 100.0, 2.0),  # all three
        sell(4, T - 20 * SEC, 101.0, 1.0),
        buy(5, T - 10 * SEC, 102.0, 0.5),
    )
    f = s.evaluate(T, SMALL_SPEC)
    # fast (60 s): +2 − 1 + 0.5 over 3.5 traded; Σp·q = 200 + 101 + 51 = 352
    assert f["cvd_fast"] == pytest.approx(1.5)
    assert f["flow_fast"] == pytest.approx(1.5 / 3.5)
    assert f["vwap_fast"] == pytest.approx(352 / 3.5)
    assert f["trades_fast"] == 3
    # mid (5 min) adds +1 @ 99
    assert f["cvd_mid"] == pytest.approx(2.5)
    assert f["flow_mid"] == pytest.approx(2.5 / 4.5)
    assert f["vwap_mid"] == pytest.approx(451 / 4.5)
    # day (1 h) adds −3 @ 98
    assert f["cvd_day"] == pytest.approx(-0.5)
    assert f["vwap_day"] == pytest.approx(745 / 7.5)
    assert f["price"] == 102.0
    assert f["vwap_dev_fast"] == pytest.approx((102 - 352 / 3.5) / (352 / 3.5))
    assert f["vwap_dev_mid"] == pytest.approx((102 - 451 / 4.5) / (451 / 4.5))
    assert "flow_day" not in FEATURE_NAMES


def test_trade_at_exactly_t_belongs_to_the_next_tick() -> None:
    s = state_with(buy(1, T - 1, 100.0, 1.0), buy(2, T, 200.0, 5.0))
    f = s.evaluate(T, SMALL_SPEC)
    assert f["trades_fast"] == 1
    assert f["cvd_fast"] == 1.0
    assert f["price"] == 100.0
    g = s.evaluate(T + 15 * SEC, SMALL_SPEC)
    assert g["trades_fast"] == 2
    assert g["cvd_fast"] == 6.0
    assert g["price"] == 200.0


def test_window_start_is_inclusive_and_one_ms_earlier_is_out() -> None:
    w = SMALL_SPEC.fast_ms
    s = state_with(buy(1, T - w - 1, 100.0, 7.0), buy(2, T - w, 100.0, 1.0))
    f = s.evaluate(T, SMALL_SPEC)
    assert f["cvd_fast"] == 1.0
    assert f["trades_fast"] == 1
    assert f["cvd_mid"] == 8.0


def test_empty_fast_window_gives_zero_flow_and_no_vwap() -> None:
    s = state_with(buy(1, T - 90 * SEC, 100.0, 1.0))  # out of the 60 s window, price fresh
    f = s.evaluate(T, SMALL_SPEC)
    assert f["cvd_fast"] == 0.0
    assert f["flow_fast"] == 0.0
    assert f["trades_fast"] == 0.0
    assert "vwap_fast" not in f
    assert "vwap_dev_fast" not in f
    assert f["vwap_mid"] == 100.0
    assert f["vwap_dev_mid"] == 0.0


def test_no_trades_at_all() -> None:
    f = SymbolFeatures("X").evaluate(T, SMALL_SPEC)
    assert dict(f) == {
        "cvd_fast": 0.0,
        "cvd_mid": 0.0,
        "cvd_day": 0.0,
        "flow_fast": 0.0,
        "flow_mid": 0.0,
        "liq_imbalance_fast": 0.0,
        "trades_fast": 0.0,
    }


def test_price_is_absent_once_the_last_trade_is_older_than_max_staleness() -> None:
    stale = SMALL_SPEC.max_staleness_ms
    fresh = state_with(buy(1, T - stale, 100.0, 1.0)).evaluate(T, SMALL_SPEC)
    assert fresh["price"] == 100.0
    old = state_with(buy(1, T - stale - 1, 100.0, 1.0)).evaluate(T, SMALL_SPEC)
    assert "price" not in old
    assert "vwap_dev_mid" not in old  # needs price
    assert old["vwap_mid"] == 100.0  # window sums are never stale


def test_repeated_agg_id_counts_once() -> None:
    s = SymbolFeatures("X")
    first = s.add_trades(batch([buy(7, T - 5 * SEC, 100.0, 1.0), buy(7, T - 5 * SEC, 100.0, 1.0)]))
    again = s.add_trades(batch([buy(7, T - 4 * SEC, 150.0, 9.0)]))
    assert (first.accepted, first.duplicates) == (1, 1)
    assert (again.accepted, again.duplicates) == (0, 1)
    f = s.evaluate(T, SMALL_SPEC)
    assert f["cvd_fast"] == 1.0
    assert f["price"] == 100.0


def test_last_trade_is_by_time_then_agg_id_not_arrival() -> None:
    s = SymbolFeatures("X")
    s.add_trades(batch([buy(11, T - 1000, 101.0, 1.0)]))
    s.add_trades(batch([buy(10, T - 1000, 100.0, 1.0)]))  # same T, smaller id, later
    assert s.evaluate(T, SMALL_SPEC)["price"] == 101.0
    s2 = SymbolFeatures("X")
    s2.add_trades(batch([buy(10, T - 1000, 100.0, 1.0), buy(9, T - 999, 99.0, 1.0)]))
    assert s2.evaluate(T, SMALL_SPEC)["price"] == 99.0  # later T wins over larger id


def test_a_batch_of_one_trade_is_accepted_once() -> None:
    s = SymbolFeatures("X")
    trade = batch([sell(1, T - SEC, 100.0, 2.0)])
    assert s.add_trades(trade).accepted == 1
    assert s.add_trades(trade).duplicates == 1
    assert s.evaluate(T, SMALL_SPEC)["cvd_fast"] == -2.0


def test_late_trade_is_counted_from_the_next_tick_on() -> None:
    s = state_with(buy(1, T - 10 * SEC, 100.0, 1.0))
    before = s.evaluate(T, SMALL_SPEC)
    result = s.add_trades(batch([buy(2, T - 5 * SEC, 100.0, 4.0)]))
    assert result.late == 1
    assert s.late_trades == 1
    assert before["cvd_fast"] == 1.0  # the stored evaluation is not revised
    after = s.evaluate(T + 15 * SEC, SMALL_SPEC)
    assert after["cvd_fast"] == 5.0
    assert after["trades_fast"] == 2


def test_trade_older_than_the_horizon_of_the_last_tick_is_dropped() -> None:
    s = state_with(buy(1, T - 10 * SEC, 100.0, 1.0))
    s.evaluate(T, SMALL_SPEC)
    result = s.add_trades(batch([buy(2, T - 26 * HOUR - 1, 100.0, 1.0)]))
    assert (result.accepted, result.too_old) == (0, 1)


def test_ticks_are_whole_seconds_and_never_go_back() -> None:
    s = SymbolFeatures("X")
    with pytest.raises(ValueError, match="whole seconds"):
        s.evaluate(T + 1, SMALL_SPEC)
    s.evaluate(T, SMALL_SPEC)
    s.evaluate(T, SMALL_SPEC)  # the same tick again is fine
    with pytest.raises(TickOrderError):
        s.evaluate(T - 15 * SEC, SMALL_SPEC)


def test_invalid_trades_are_rejected() -> None:
    s = SymbolFeatures("X")
    with pytest.raises(ValueError, match="finite"):
        s.add_trades(batch([buy(1, T, float("nan"), 1.0)]))
    with pytest.raises(ValueError, match="> 0"):
        s.add_trades(batch([buy(1, T, 0.0, 1.0)]))
