"""User stream frames as the executor's inputs: order and algo reports by client id,
position changes by symbol with the exchange's time; the rest says nothing to it."""

from __future__ import annotations

from decimal import Decimal

from arbengine.exchange.user_events import (
    ListenKeyExpired,
    MarginCall,
    Resync,
    decode_user_event,
)
from arbengine.trading.live_service import StreamedOrder, StreamedPosition, stream_reports
from arbengine.trading.live_wire import OrderReport


def reports(frame: bytes) -> list[StreamedOrder | StreamedPosition]:
    event = decode_user_event(frame)
    assert event is not None
    assert not isinstance(event, ListenKeyExpired)
    return stream_reports(event)


def test_an_order_update_is_its_cumulative_report_at_the_transaction_time() -> None:
    frame = (
        b'{"e":"ORDER_TRADE_UPDATE","E":100,"T":99,"o":{"s":"BTCUSDT","c":"ae1-BTCUSDT",'
        b'"S":"BUY","o":"MARKET","x":"TRADE","X":"PARTIALLY_FILLED","i":7,"q":"0.010",'
        b'"l":"0.004","z":"0.006","L":"60001.0","ap":"60000.5","T":99}}'
    )
    assert reports(frame) == [
        StreamedOrder(
            OrderReport("ae1-BTCUSDT", "PARTIALLY_FILLED", Decimal("0.006"), Decimal("60000.5"),
                        7, 99),
            algo=False,
        )
    ]  # fmt: skip


def test_an_algo_update_is_an_algo_report_and_finished_without_execution_is_left_out() -> None:
    def frame(status: str, executed: str) -> bytes:
        return (
            b'{"e":"ALGO_UPDATE","E":5,"T":4,"o":{"caid":"as1-BTCUSDT","aid":11,"s":"BTCUSDT",'
            b'"S":"SELL","o":"STOP_MARKET","X":"' + status.encode() + b'","tp":"59000",'
            b'"aq":"' + executed.encode() + b'","ap":"58990"}}'
        )

    [triggered] = reports(frame("TRIGGERED", "0"))
    assert triggered == StreamedOrder(
        OrderReport("as1-BTCUSDT", "TRIGGERED", Decimal(0), Decimal("58990"), 11, 4), algo=True
    )
    assert reports(frame("FINISHED", "0")) == []
    [finished] = reports(frame("FINISHED", "0.010"))
    assert isinstance(finished, StreamedOrder)
    assert (finished.report.status, finished.report.executed_qty) == ("FINISHED", Decimal("0.010"))


def test_an_account_update_is_each_one_way_position_with_its_time() -> None:
    frame = (
        b'{"e":"ACCOUNT_UPDATE","E":9,"T":8,"a":{"m":"ORDER","B":[],"P":['
        b'{"s":"BTCUSDT","pa":"0","ep":"0","ps":"BOTH"},'
        b'{"s":"ETHUSDT","pa":"1.5","ep":"2000","ps":"LONG"}]}}'
    )
    assert reports(frame) == [StreamedPosition("BTCUSDT", Decimal(0), 8)]


def test_a_resync_and_a_margin_call_say_nothing_to_the_executor() -> None:
    assert stream_reports(Resync(reason="connected", connection=1)) == []
    call = decode_user_event(
        b'{"e":"MARGIN_CALL","E":5,"cw":"3.16","p":[{"s":"ETHUSDT","ps":"BOTH","pa":"1.3",'
        b'"mt":"CROSSED","iw":"0","mp":"187.17","up":"-1.16","mm":"1.61"}]}'
    )
    assert isinstance(call, MarginCall)
    assert stream_reports(call) == []
