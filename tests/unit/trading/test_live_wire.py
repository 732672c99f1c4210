"""What the exchange reports about an order, as the live trade machine's events, and
the trade's realised result from its orders' executions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbengine.trading.live_sizing import Sized, size_entry
from arbengine.trading.live_trade import Acked, Ended, Filled, LiveTrade, Triggered
from arbengine.trading.live_wire import OrderReport, algo_events, order_events, trade_result
from tests.support.live_examples import RISK, V52_EXIT, rules_for, signal

CID = "ae-test"


def report(status: str, qty: str = "0", price: str = "0") -> OrderReport:
    return OrderReport(CID, status, Decimal(qty), Decimal(price))


@pytest.mark.parametrize(
    ("status", "events"),
    [
        ("NEW", [Acked(CID)]),
        ("PARTIALLY_FILLED", [Filled(CID, Decimal("0.5"), Decimal(100), complete=False)]),
        ("FILLED", [Filled(CID, Decimal("0.5"), Decimal(100))]),
        ("CANCELED", [Filled(CID, Decimal("0.5"), Decimal(100), complete=False), Ended(CID)]),
        ("EXPIRED", [Filled(CID, Decimal("0.5"), Decimal(100), complete=False), Ended(CID)]),
    ],
)
def test_an_order_status_with_an_execution(status: str, events: list[object]) -> None:
    assert order_events(report(status, "0.5", "100")) == events


def test_an_order_ended_without_execution_is_only_ended() -> None:
    assert order_events(report("EXPIRED")) == [Ended(CID)]
    assert order_events(report("CANCELED")) == [Ended(CID)]


@pytest.mark.parametrize(
    ("status", "events"),
    [
        ("NEW", [Acked(CID)]),
        ("TRIGGERING", [Triggered(CID)]),
        ("TRIGGERED", [Triggered(CID)]),
        ("FINISHED", [Filled(CID, Decimal(1), Decimal(90))]),
        ("CANCELED", [Ended(CID)]),
        ("EXPIRED", [Ended(CID)]),
        ("REJECTED", [Ended(CID)]),
        ("SOMETHING_NEW", []),
    ],
)
def test_an_algo_status(status: str, events: list[object]) -> None:
    assert algo_events(report(status, "1", "90")) == events


def test_a_stopped_out_trade_realises_minus_one_r_before_fees() -> None:
    rules = rules_for("BTCUSDT")
    sig = signal(price=60_000.0, atr=200.0)
    sized = size_entry(
        sig, V52_EXIT, rules, risk_usd=RISK, leverage=1, available_margin=Decimal(10**6)
    )
    assert isinstance(sized, Sized)
    trade = LiveTrade(sig, V52_EXIT, rules, sized)
    trade.start()
    trade.on(Filled(trade.entry_id, sized.qty, sized.entry))
    assert trade.stop_id is None
    sl = next(o for o in trade.orders.values() if o.role == "sl")
    trade.on(Acked(sl.client_id))
    trade.on(Filled(sl.client_id, sized.qty, sized.stop))

    result = trade_result(trade)
    assert result.realised_r == pytest.approx(-1.0)
    assert result.realised_usd == pytest.approx(-float(sized.qty * sized.r_distance))
