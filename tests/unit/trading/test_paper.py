"""Paper exits on worked examples (SIGNALS.md, Paper trades). Expected numbers are computed
by hand in each test from the formulas, never read back from the code."""

from __future__ import annotations

import pytest

from arbengine.trading.paper import ExitRule, FundingSettlement, PaperBook, open_position

T0 = 1_700_002_800_000  # on the hour, as funding times are
MIN = 60_000


def book_with(direction: int, rule: ExitRule, price: float = 100.0, atr: float = 2.0):
    book = PaperBook()
    position = open_position(
        strategy="s",
        strategy_hash="h",
        symbol="BTCUSDT",
        direction=direction,
        tick=T0,
        price=price,
        atr=atr,
        rule=rule,
    )
    book.add(position)
    return book, position


def walk(book: PaperBook, *trades: tuple[int, float]) -> None:
    ids = list(range(1, len(trades) + 1))
    book.on_trades("BTCUSDT", ids, [t for t, _ in trades], [p for _, p in trades])


def test_levels_from_entry_with_slippage() -> None:
    rule = ExitRule(sl_atr=1.5, tp1_atr=1.5, tp1_fraction=0.5, tp2_atr=3.0, slippage_bps=1)
    _, long = book_with(1, rule)
    e = 100 * 1.0001
    assert long.entry_price == pytest.approx(e, rel=1e-12)
    assert long.r_distance == pytest.approx(3.0)
    assert long.stop_loss == pytest.approx(e - 3.0)
    assert long.take_profit_1 == pytest.approx(e + 3.0)
    assert long.take_profit_2 == pytest.approx(e + 6.0)
    assert long.quantity == pytest.approx(100 / 3.0)
    _, short = book_with(-1, rule)
    assert short.entry_price == pytest.approx(100 * 0.9999)
    assert short.stop_loss == pytest.approx(100 * 0.9999 + 3.0)


def test_stop_loss_gapped_through_fills_at_the_trade_price() -> None:
    book, pos = book_with(1, ExitRule(sl_atr=1.5))
    walk(book, (T0, 99.0), (T0 + 1000, 95.0))
    assert not pos.is_open
    assert [(f.price, f.fraction, f.reason) for f in pos.fills] == [(95.0, 1.0, "sl")]
    assert pos.result_r() == pytest.approx(-5.0 / 3.0)
    assert pos.result_usd() == pytest.approx(-500.0 / 3.0)
    assert book.open == []
    assert book.closed == [pos]


def test_tp1_then_breakeven_stop_with_fees() -> None:
    rule = ExitRule(
        sl_atr=1.5, tp1_atr=1.5, tp1_fraction=0.5, tp2_atr=3.0, breakeven_after_tp1=True, fee_bps=4
    )
    book, pos = book_with(1, rule)
    walk(book, (T0 + 1, 101.0), (T0 + 2, 103.5), (T0 + 3, 100.5), (T0 + 4, 99.9))
    assert [(f.price, f.fraction, f.reason) for f in pos.fills] == [
        (103.5, 0.5, "tp1"),
        (99.9, 0.5, "breakeven"),
    ]
    gross = 0.5 * 3.5 + 0.5 * -0.1
    fees = 0.0004 * (100 + 0.5 * 103.5 + 0.5 * 99.9)
    assert pos.result_r() == pytest.approx((gross - fees) / 3.0, rel=1e-12)


def test_one_trade_through_tp1_and_tp2_closes_both_parts_at_its_price() -> None:
    rule = ExitRule(sl_atr=1.5, tp1_atr=1.5, tp1_fraction=0.4, tp2_atr=3.0)
    book, pos = book_with(-1, rule)
    walk(book, (T0 + 5, 99.0), (T0 + 6, 92.0))
    assert [(f.price, f.fraction, f.reason) for f in pos.fills] == [
        (92.0, 0.4, "tp1"),
        (92.0, pytest.approx(0.6), "tp2"),
    ]
    assert pos.result_r() == pytest.approx(8.0 / 3.0)


def test_stop_is_checked_before_max_hold_on_the_same_trade() -> None:
    book, pos = book_with(1, ExitRule(sl_atr=1.5, max_hold_ms=10 * MIN))
    walk(book, (T0 + 10 * MIN, 96.0))
    assert [(f.price, f.reason) for f in pos.fills] == [(96.0, "sl")]


def test_tp1_without_tp2_leaves_the_rest_to_the_stop() -> None:
    rule = ExitRule(sl_atr=1.0, tp1_atr=0.5, tp1_fraction=0.5, breakeven_after_tp1=True)
    book, pos = book_with(1, rule)
    walk(book, (T0 + 1, 101.0), (T0 + 2, 150.0), (T0 + 3, 100.0))
    assert [(f.price, f.reason) for f in pos.fills] == [(101.0, "tp1"), (100.0, "breakeven")]
    assert pos.result_r() == pytest.approx(0.5 * 1.0 / 2.0)


def test_max_hold_closes_at_the_first_trade_at_or_after_the_limit() -> None:
    book, pos = book_with(1, ExitRule(sl_atr=1.5, max_hold_ms=70 * MIN))
    walk(book, (T0 + 70 * MIN - 1, 100.5), (T0 + 70 * MIN, 101.2), (T0 + 70 * MIN + 1, 90.0))
    assert [(f.ts, f.price, f.reason) for f in pos.fills] == [(T0 + 70 * MIN, 101.2, "max_hold")]
    assert pos.result_r() == pytest.approx(1.2 / 3.0)


def test_trades_before_the_entry_tick_are_ignored() -> None:
    book, pos = book_with(1, ExitRule(sl_atr=1.5))
    walk(book, (T0 - 1, 50.0))
    assert pos.is_open


def test_funding_charged_on_the_open_fraction_and_included_in_the_result() -> None:
    rule = ExitRule(sl_atr=1.5, tp1_atr=1.5, tp1_fraction=0.5, tp2_atr=3.0)
    book, pos = book_with(1, rule)
    tau1, tau2 = T0 + 10 * MIN, T0 + 20 * MIN
    book.on_funding(FundingSettlement("BTCUSDT", tau1, 0.0001, 100.0))
    book.on_funding(FundingSettlement("BTCUSDT", tau2, 0.0002, None))  # mark from the last trade
    walk(book, (T0 + 1, 103.0), (tau1, 104.0), (tau2 - 5, 104.5), (tau2, 106.0))
    # τ1: full position open (the TP1 fill at T0+1 left half) -> fraction 0.5
    # τ2: fraction 0.5, mark = last trade before τ2 = 104.5; the TP2 fill at τ2 comes after.
    charges = [(c.time, c.fraction, c.mark) for c in pos.funding]
    assert charges == [(tau1, 0.5, 100.0), (tau2, 0.5, 104.5)]
    funding = -(0.0001 * 100.0 * 0.5) - (0.0002 * 104.5 * 0.5)
    assert pos.funding_per_unit == pytest.approx(funding)
    gross = 0.5 * 3.0 + 0.5 * 6.0
    assert pos.result_r() == pytest.approx((gross + funding) / 3.0)


def test_short_receives_positive_funding_and_late_records_are_charged() -> None:
    book, pos = book_with(-1, ExitRule(sl_atr=1.5, max_hold_ms=60 * MIN))
    tau = T0 + 30 * MIN
    walk(book, (tau + 1, 99.0), (T0 + 60 * MIN, 98.0))
    assert not pos.is_open
    assert pos.funding == []
    book.on_funding(FundingSettlement("BTCUSDT", tau, 0.0003, 99.5))  # arrives after the close
    assert pos.funding_per_unit == pytest.approx(0.0003 * 99.5)
    book.on_funding(FundingSettlement("BTCUSDT", T0 + 61 * MIN, 0.01, 99.0))  # after the close
    assert len(pos.funding) == 1


def test_funding_at_or_before_entry_is_not_charged() -> None:
    book, pos = book_with(1, ExitRule(sl_atr=1.5))
    book.on_funding(FundingSettlement("BTCUSDT", T0, 0.01, 100.0))
    walk(book, (T0 + 1, 100.0), (T0 + 2, 90.0))
    assert pos.funding == []


def test_a_closed_position_is_forgotten_once_its_funding_is_final() -> None:
    book, closed = book_with(-1, ExitRule(sl_atr=1.5, max_hold_ms=60 * MIN))
    tau = T0 + 30 * MIN
    walk(book, (tau + 1, 99.0), (T0 + 60 * MIN, 98.0))
    assert book.closed == [closed]
    assert book.forget_settled() == 0  # its funding at τ may still come: kept
    book.on_funding(FundingSettlement("BTCUSDT", tau, 0.0003, 99.5))  # and is charged when it does
    assert closed.funding_per_unit == pytest.approx(0.0003 * 99.5)
    assert book.forget_settled() == 0  # a funding time at its close may still come
    book.on_funding(FundingSettlement("BTCUSDT", T0 + 60 * MIN, 0.01, 98.0))
    assert len(closed.funding) == 2  # the time of its close is still charged
    assert book.forget_settled() == 1
    assert book.closed == []


def test_funding_times_no_open_position_can_be_charged_are_forgotten() -> None:
    book, early = book_with(1, ExitRule(sl_atr=1.5))
    late = open_position(strategy="s", strategy_hash="h", symbol="BTCUSDT", direction=1,
                         tick=T0 + 90 * MIN, price=100.0, atr=2.0,
                         rule=ExitRule(sl_atr=1.5))  # fmt: skip
    book.add(late)
    for k in (1, 2, 3):  # funding every 30 minutes, not yet walked to
        book.on_funding(FundingSettlement("BTCUSDT", T0 + k * 30 * MIN, 0.0001, 100.0))
    book.forget_settled()
    walk(book, (T0 + 100 * MIN, 100.0))
    assert [c.time for c in early.funding] == [T0 + 30 * MIN, T0 + 60 * MIN, T0 + 90 * MIN]
    assert late.funding == []
    book.on_trades("BTCUSDT", [2], [T0 + 101 * MIN], [90.0])  # both stopped out
    assert book.open == []
    book.forget_settled()
    # The latest time stays (what tells a closed position's funding is final), nothing else.
    assert list(book._funding["BTCUSDT"]) == [T0 + 90 * MIN]
