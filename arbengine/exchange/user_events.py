"""User data stream events as typed structs, decoded once from the frame bytes.

Binance's one-letter keys are renamed to what they mean (``o.X`` is ``status``);
only the keys a consumer reads are declared, and unknown keys are ignored.
Quantities, prices and money are ``Decimal`` (as the live trade machine and the
order replies in ``replies.py`` hold them: an order's quantity must round-trip
exactly); times are epoch milliseconds.

An event of a kind we do not read (``TRADE_LITE``, ``ACCOUNT_CONFIG_UPDATE``,
…) decodes to ``None``: Binance adds kinds without notice. A known kind with a
missing or mistyped key is a malformed frame (``msgspec.ValidationError``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, TypeAlias

import msgspec

from arbengine.domain.exchange_closes import is_exchange_close

ZERO = Decimal(0)


class OrderUpdate(msgspec.Struct, frozen=True):
    """``ORDER_TRADE_UPDATE.o``: one order's change (a fill, a cancel, an expiry)."""

    symbol: str = msgspec.field(name="s")
    client_id: str = msgspec.field(name="c")
    side: str = msgspec.field(name="S")
    order_type: str = msgspec.field(name="o")
    execution_type: str = msgspec.field(name="x")
    """NEW, TRADE, CANCELED, CALCULATED (a liquidation), EXPIRED, AMENDMENT."""
    status: str = msgspec.field(name="X")
    """NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, EXPIRED_IN_MATCH."""
    order_id: int = msgspec.field(name="i")
    quantity: Decimal = msgspec.field(name="q")
    last_filled_qty: Decimal = msgspec.field(name="l")
    filled_qty: Decimal = msgspec.field(name="z")
    last_filled_price: Decimal = msgspec.field(name="L")
    avg_price: Decimal = msgspec.field(name="ap")
    time_ms: int = msgspec.field(name="T")
    trade_id: int = msgspec.field(name="t", default=0)
    commission: Decimal = msgspec.field(name="n", default=ZERO)
    commission_asset: str = msgspec.field(name="N", default="")
    realized_pnl: Decimal = msgspec.field(name="rp", default=ZERO)
    original_type: str = msgspec.field(name="ot", default="")
    reduce_only: bool = msgspec.field(name="R", default=False)
    close_position: bool = msgspec.field(name="cp", default=False)
    position_side: str = msgspec.field(name="ps", default="BOTH")

    @property
    def exchange_close(self) -> bool:
        """Placed by the exchange itself: a liquidation or an auto-deleveraging."""
        return is_exchange_close(self.client_id)


class OrderTradeUpdate(msgspec.Struct, tag_field="e", tag="ORDER_TRADE_UPDATE", frozen=True):
    event_time_ms: int = msgspec.field(name="E")
    transaction_time_ms: int = msgspec.field(name="T")
    order: OrderUpdate = msgspec.field(name="o")


class AlgoOrderUpdate(msgspec.Struct, frozen=True):
    """``ALGO_UPDATE.o``: a conditional (algo) order's change; once triggered, the market
    order it became has id ``actual_order_id``."""

    client_algo_id: str = msgspec.field(name="caid")
    algo_id: int = msgspec.field(name="aid")
    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")
    order_type: str = msgspec.field(name="o")
    status: str = msgspec.field(name="X")
    """NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED."""
    trigger_price: Decimal = msgspec.field(name="tp")
    quantity: Decimal = msgspec.field(name="q", default=ZERO)
    algo_type: str = msgspec.field(name="at", default="CONDITIONAL")
    actual_order_id: str = msgspec.field(name="ai", default="")
    avg_price: Decimal = msgspec.field(name="ap", default=ZERO)
    executed_qty: Decimal = msgspec.field(name="aq", default=ZERO)
    close_position: bool = msgspec.field(name="cp", default=False)
    reduce_only: bool = msgspec.field(name="R", default=False)
    working_type: str = msgspec.field(name="wt", default="CONTRACT_PRICE")
    trigger_time_ms: int = msgspec.field(name="tt", default=0)
    reject_reason: str = msgspec.field(name="rm", default="")


class AlgoUpdate(msgspec.Struct, tag_field="e", tag="ALGO_UPDATE", frozen=True):
    event_time_ms: int = msgspec.field(name="E")
    transaction_time_ms: int = msgspec.field(name="T")
    order: AlgoOrderUpdate = msgspec.field(name="o")


class BalanceUpdate(msgspec.Struct, frozen=True):
    asset: str = msgspec.field(name="a")
    wallet_balance: Decimal = msgspec.field(name="wb")
    cross_wallet_balance: Decimal = msgspec.field(name="cw", default=ZERO)
    balance_change: Decimal = msgspec.field(name="bc", default=ZERO)
    """Except from PnL and commission (a transfer, funding)."""


class PositionUpdate(msgspec.Struct, frozen=True):
    symbol: str = msgspec.field(name="s")
    amount: Decimal = msgspec.field(name="pa")
    """Signed: a short is negative; zero is flat."""
    entry_price: Decimal = msgspec.field(name="ep")
    accumulated_realized: Decimal = msgspec.field(name="cr", default=ZERO)
    unrealized_pnl: Decimal = msgspec.field(name="up", default=ZERO)
    break_even_price: Decimal = msgspec.field(name="bep", default=ZERO)
    margin_type: str = msgspec.field(name="mt", default="cross")
    position_side: str = msgspec.field(name="ps", default="BOTH")


class AccountChange(msgspec.Struct, frozen=True):
    reason: str = msgspec.field(name="m")
    """ORDER, FUNDING_FEE, DEPOSIT, WITHDRAW, MARGIN_TRANSFER, ADL, INSURANCE_CLEAR, …"""
    balances: tuple[BalanceUpdate, ...] = msgspec.field(name="B", default=())
    positions: tuple[PositionUpdate, ...] = msgspec.field(name="P", default=())


class AccountUpdate(msgspec.Struct, tag_field="e", tag="ACCOUNT_UPDATE", frozen=True):
    event_time_ms: int = msgspec.field(name="E")
    transaction_time_ms: int = msgspec.field(name="T")
    account: AccountChange = msgspec.field(name="a")


class MarginCallPosition(msgspec.Struct, frozen=True):
    symbol: str = msgspec.field(name="s")
    amount: Decimal = msgspec.field(name="pa")
    mark_price: Decimal = msgspec.field(name="mp")
    unrealized_pnl: Decimal = msgspec.field(name="up", default=ZERO)
    maintenance_margin: Decimal = msgspec.field(name="mm", default=ZERO)
    margin_type: str = msgspec.field(name="mt", default="cross")
    position_side: str = msgspec.field(name="ps", default="BOTH")


class MarginCall(msgspec.Struct, tag_field="e", tag="MARGIN_CALL", frozen=True):
    event_time_ms: int = msgspec.field(name="E")
    positions: tuple[MarginCallPosition, ...] = msgspec.field(name="p", default=())
    cross_wallet_balance: Decimal = msgspec.field(name="cw", default=ZERO)


class ListenKeyExpired(msgspec.Struct, tag_field="e", tag="listenKeyExpired", frozen=True):
    """The stream's key lapsed: no event follows on it (the stream takes a new key)."""

    event_time_ms: int = msgspec.field(name="E")
    listen_key: str = msgspec.field(name="listenKey", default="")


class Resync(msgspec.Struct, frozen=True):
    """Not Binance's: the stream (re)connected, so events may have been missed before
    now. Read positions and open orders over REST; events after this one follow it."""

    reason: Literal["connected", "reconnected", "listen_key_expired", "listen_key_gone"]
    connection: int
    """1 for the first connection of the stream's life."""


ExchangeEvent: TypeAlias = OrderTradeUpdate | AlgoUpdate | AccountUpdate | MarginCall
"""What the exchange reports on the account."""

UserEvent: TypeAlias = ExchangeEvent | Resync
"""What the user stream delivers: the exchange's events, and a ``Resync`` after a gap."""

_WireEvent: TypeAlias = ExchangeEvent | ListenKeyExpired


class _Kind(msgspec.Struct, frozen=True):
    e: str


_KNOWN = {"ORDER_TRADE_UPDATE", "ALGO_UPDATE", "ACCOUNT_UPDATE", "MARGIN_CALL", "listenKeyExpired"}
_decode_kind = msgspec.json.Decoder(_Kind).decode
_decode_event = msgspec.json.Decoder(_WireEvent, strict=False).decode


def decode_user_event(frame: bytes) -> ExchangeEvent | ListenKeyExpired | None:
    """One frame of the raw user stream (``/ws``); None for a kind we do not read."""
    if _decode_kind(frame).e not in _KNOWN:
        return None
    return _decode_event(frame)
