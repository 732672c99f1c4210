"""Decoding user data stream frames: the kinds we read, the ones we skip, the malformed."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from arbengine.domain.exchange_closes import is_exchange_close
from arbengine.exchange.user_events import (
    ListenKeyExpired,
    MarginCall,
    OrderTradeUpdate,
    decode_user_event,
)

ADL_FILL = (
    b'{"e":"ORDER_TRADE_UPDATE","E":1,"T":2,"o":{"s":"ETHUSDT","c":"adl_autoclose","S":"SELL",'
    b'"o":"LIMIT","x":"TRADE","X":"FILLED","i":7,"q":"1.5","l":"1.5","z":"1.5","L":"2000.10",'
    b'"ap":"2000.10","T":2,"t":9,"n":"0.3","N":"USDT","rp":"-12.5","ot":"LIMIT"}}'
)


def test_an_adl_fill_decodes_with_decimals_and_is_the_exchanges_close() -> None:
    event = decode_user_event(ADL_FILL)
    assert isinstance(event, OrderTradeUpdate)
    order = event.order
    assert (order.symbol, order.status, order.order_id, order.trade_id) == (
        "ETHUSDT",
        "FILLED",
        7,
        9,
    )
    assert (order.last_filled_price, order.realized_pnl) == (Decimal("2000.10"), Decimal("-12.5"))
    assert order.exchange_close


@pytest.mark.parametrize(
    ("client_id", "theirs"),
    [
        ("autoclose-1700000000000btc", True),
        ("adl_autoclose", True),
        ("settlement_autoclose-ETHUSDT", True),
        ("aeabcdefgh00000000e0-BTCUSDT", False),
        ("web_12345", False),
    ],
)
def test_the_exchanges_own_client_ids(client_id: str, theirs: bool) -> None:
    assert is_exchange_close(client_id) is theirs


def test_margin_call_and_key_expiry_decode() -> None:
    call = decode_user_event(
        b'{"e":"MARGIN_CALL","E":5,"cw":"3.16","p":[{"s":"ETHUSDT","ps":"LONG","pa":"1.327",'
        b'"mt":"CROSSED","iw":"0","mp":"187.17","up":"-1.16","mm":"1.61"}]}'
    )
    assert isinstance(call, MarginCall)
    assert call.positions[0].maintenance_margin == Decimal("1.61")
    assert call.cross_wallet_balance == Decimal("3.16")
    expired = decode_user_event(b'{"e":"listenKeyExpired","E":6,"listenKey":"k"}')
    assert expired == ListenKeyExpired(event_time_ms=6, listen_key="k")


def test_kinds_we_do_not_read_are_skipped_and_a_broken_known_kind_is_malformed() -> None:
    assert decode_user_event(b'{"e":"TRADE_LITE","E":1,"s":"BTCUSDT"}') is None
    assert decode_user_event(b'{"e":"ACCOUNT_CONFIG_UPDATE","E":1}') is None
    with pytest.raises(msgspec.ValidationError, match="pa"):
        decode_user_event(
            b'{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"ORDER","P":[{"s":"BTCUSDT","ep":"1"}]}}'
        )
    with pytest.raises(msgspec.DecodeError):
        decode_user_event(b'{"e":"ORDER_TRADE_UPDATE"')
