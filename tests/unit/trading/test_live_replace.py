"""The breakeven move's timer: the replace's duration and how long the position may have
had no stop, from the executor's actions and what it heard, in the machine's order and in
a different one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbengine.trading.live_replace import StopReplaceTimer
from arbengine.trading.live_trade import (
    Acked,
    Cancel,
    Ended,
    Filled,
    LiveTrade,
    Place,
    Rejected,
    TradeAction,
    TradeState,
)
from tests.unit.trading.test_live_trade import BE, SL, TP1, protected_trade

TP1_FILL = Filled(TP1, Decimal("0.270"), Decimal("60191.2"))


def after_tp1() -> tuple[LiveTrade, Place]:
    trade = protected_trade()
    (place,) = trade.on(TP1_FILL)
    assert isinstance(place, Place)
    return trade, place


def perform(
    timer: StopReplaceTimer, trade: LiveTrade, action: TradeAction, sent: float, answer: object,
    answered: float,
) -> list[TradeAction]:  # fmt: skip
    """What the executor does with one action: note it, perform it, note the answer."""
    timer.starting(trade, action, sent)
    timer.heard(trade, [answer], answered)  # type: ignore[list-item]
    return trade.on(answer)  # type: ignore[arg-type]


def test_in_the_machines_order_the_position_is_never_without_a_stop() -> None:
    trade = protected_trade()
    timer = StopReplaceTimer()
    timer.heard(trade, [TP1_FILL], 10.000)
    (place,) = trade.on(TP1_FILL)
    (cancel,) = perform(timer, trade, place, 10.001, Acked(BE), 10.004)
    assert isinstance(cancel, Cancel)
    assert timer.finished() is None  # the first stop is not gone yet
    perform(timer, trade, cancel, 10.004, Ended(SL), 10.007)

    moved = timer.finished()
    assert moved is not None
    assert moved.unprotected_ms == 0
    assert moved.replace_ms == pytest.approx(6.0)  # placement started → first stop gone
    assert moved.tp1_to_stop_ms == pytest.approx(4.0)  # fill heard → new stop acknowledged
    assert timer.finished() is None  # reported once


def test_a_cancel_sent_before_the_new_stop_stood_is_counted_as_unprotected() -> None:
    trade, place = after_tp1()
    timer = StopReplaceTimer()
    cancel = Cancel(SL)  # the other order: the first stop cancelled before the new one acks
    timer.starting(trade, cancel, 20.000)
    timer.heard(trade, [Ended(SL)], 20.003)
    timer.starting(trade, place, 20.003)
    timer.heard(trade, [Acked(BE)], 20.009)

    moved = timer.finished()
    assert moved is not None
    assert moved.unprotected_ms == pytest.approx(9.0)  # cancel sent → new stop acknowledged
    assert moved.replace_ms == pytest.approx(9.0)
    assert moved.tp1_to_stop_ms is None  # the fill was heard before this timer


def test_a_cancel_refused_as_unknown_means_the_first_stop_is_gone() -> None:
    trade, place = after_tp1()
    timer = StopReplaceTimer()
    (cancel,) = perform(timer, trade, place, 1.0, Acked(BE), 1.002)
    perform(timer, trade, cancel, 1.002, Rejected(SL, -2011, "Unknown order sent."), 1.003)
    moved = timer.finished()
    assert moved is not None
    assert moved.replace_ms == pytest.approx(3.0)


def test_a_refused_cancel_leaves_the_move_unfinished() -> None:
    trade, place = after_tp1()
    timer = StopReplaceTimer()
    (cancel,) = perform(timer, trade, place, 1.0, Acked(BE), 1.002)
    perform(timer, trade, cancel, 1.002, Rejected(SL, -1001, "Internal error"), 1.003)
    assert timer.finished() is None


def test_cancelling_the_stop_because_the_position_is_gone_is_no_move() -> None:
    trade = protected_trade()
    timer = StopReplaceTimer()
    actions = trade.on(Filled(TP1, Decimal("0.540"), Decimal("60191.2")))  # all of it
    assert trade.state == TradeState.CLOSING
    for action in actions:
        timer.starting(trade, action, 1.0)
        assert not isinstance(action, Place)
    timer.heard(trade, [Ended(SL)], 1.001)
    assert timer.cancel_sent_at is None
    assert timer.finished() is None
