"""What live trading stores: orders, trades, events and the run-time configuration.

The shapes of ``live_orders``, ``live_trades``, ``live_events`` and ``live_config``,
stated once, in the leaf package: the executor (trading/) writes them, the store
(``store/live_sql.py``) maps them to columns, the API reads them, and none of those may
import another. Times the exchange gives (fills, order updates, the signal tick) are
epoch ms like every market time; times of our own bookkeeping are ``datetime`` (UTC).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from arbengine.domain.events import Signal

OrderKind = Literal["order", "algo"]
"""``order``: ``/fapi/v1/order``; ``algo``: ``/fapi/v1/algoOrder`` (stops, take-profits)."""
OrderSide = Literal["BUY", "SELL"]
TradeStatus = Literal["pending", "open", "closed", "not_opened"]
"""``pending``: entry sent, not filled yet; ``not_opened``: the entry never filled
(rejected, expired, or the exchange never had it)."""
EventLevel = Literal["info", "warning", "error"]

PENDING = "PENDING"
"""Our status of an order sent and not yet answered."""
UNKNOWN = "UNKNOWN"
"""Our status of an order whose sending may or may not have reached the exchange (a
timeout, a 5xx, a dropped connection): to be asked for by client id, never resent blindly."""
NOT_FOUND = "NOT_FOUND"
"""Our status of an order the exchange says it does not have: it was never placed."""
FINAL_ORDER_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "FINISHED"})
"""Ends the exchange reported for a client id still in use: a later report of another
status is a stale one and is not stored."""
TERMINAL_ORDER_STATUSES = FINAL_ORDER_STATUSES | {"REJECTED", NOT_FOUND}
"""Statuses of an order no longer on the exchange; any other is open. A REJECTED or
NOT_FOUND order never existed there, so it may be sent again under its client id.
Kept equal to the ``live_orders_open`` index of the migration."""


class StatusChange(msgspec.Struct, frozen=True):
    """One entry of an order's ``status_history``."""

    status: str
    time: int
    """Epoch ms: the exchange's time of the report, or ours for PENDING / UNKNOWN."""
    note: str | None = None
    """Why, where it says more than the status (``-2019 Margin is insufficient``)."""
    written_us: int | None = None
    """The database's clock at the write (epoch µs): the order of the changes across a
    trade's orders, which the exchange's times cannot give (two clocks, ms ties). A
    restart replays a trade's changes in this order."""


class LiveOrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``live_orders`` row, less its ``id``. Written with ``upsert_order``, which keeps
    ``status_history`` itself: the history given in a row written is ignored."""

    client_order_id: str
    """``newClientOrderId`` or ``clientAlgoId``: the order's identity, chosen before sending."""
    exchange_order_id: int | None = None
    """``orderId`` or ``algoId`` once the exchange has answered."""
    kind: OrderKind
    role: str
    """What the order is for in its trade: entry, stop_loss, take_profit_1, … (the
    executor's names)."""
    symbol: str
    side: OrderSide
    type: str
    """Binance's order type: MARKET, STOP_MARKET, TAKE_PROFIT_MARKET, …"""
    quantity: float | None = None
    """None for a ``closePosition`` order."""
    price: float | None = None
    trigger_price: float | None = None
    reduce_only: bool = False
    close_position: bool = False
    status: str
    status_time: int
    """Epoch ms of ``status``; a report older than the stored one is ignored."""
    filled_quantity: float = 0.0
    average_price: float | None = None
    trade_id: int | None = None
    """The ``live_trades`` row it belongs to; None for an order of no trade of ours
    (protection given to an orphan position)."""
    status_history: list[StatusChange] = msgspec.field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    """Bookkeeping, set by the database."""

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_ORDER_STATUSES


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One fill of a trade's entry or exit (a ``userTrades`` row or an ORDER_TRADE_UPDATE)."""

    time: int
    price: float
    quantity: float
    fee: float
    """In USD (the commission, converted when paid in another asset)."""
    client_order_id: str
    trade_id: int | None = None
    """The exchange's trade id: a fill reported twice (stream and REST) is the same fill."""
    reason: str | None = None
    """For an exit fill: sl, breakeven, tp1, tp2, max_hold, flatten, liquidation, …"""


class PlanDifference(msgspec.Struct, frozen=True):
    """Where the live trade could not follow the paper plan exactly, and why (tick
    rounding of a trigger price, a partial fill, slippage on the entry)."""

    what: str
    paper: float | None
    live: float | None
    why: str


class LiveTradeRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``live_trades`` row, less its bookkeeping: one per (strategy, symbol, signal tick)."""

    id: int | None = None
    """Set by the database (``upsert_trade`` returns it)."""
    strategy: str
    strategy_hash: str
    symbol: str
    signal_tick: int
    """With ``strategy`` and ``symbol``: the ``signal_logs`` row this trade comes from."""
    direction: int
    status: TradeStatus
    quantity: float
    entry_price: float | None = None
    stop_price: float
    r_distance: float
    risk_usd: float
    entry_fills: list[Fill] = msgspec.field(default_factory=list)
    exit_fills: list[Fill] = msgspec.field(default_factory=list)
    fees: float = 0.0
    funding: float = 0.0
    realised_r: float | None = None
    realised_usd: float | None = None
    exit_reason: str | None = None
    plan_differences: list[PlanDifference] = msgspec.field(default_factory=list)
    paper_entry_tick: int | None = None
    """The paper twin: ``paper_trades`` (strategy, symbol, entry_tick = this)."""
    opened_at: int | None = None
    closed_at: int | None = None
    signal: Signal | None = None
    """The signal as traded: a restart rebuilds the exit plan from it (None for a trade
    stored before it was kept)."""


class TradeClose(msgspec.Struct, frozen=True, kw_only=True):
    """How a live trade ended: what ``close_trade`` writes."""

    closed_at: int
    exit_reason: str
    exit_fills: list[Fill]
    fees: float
    funding: float
    realised_r: float
    realised_usd: float


class LiveEventRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``live_events`` row: one action of the executor, the reconciler or an admin."""

    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    """Chosen when the event is made, so that writing it again changes nothing."""
    at: datetime
    level: EventLevel = "info"
    kind: str
    symbol: str | None = None
    strategy: str | None = None
    detail: dict[str, object] = msgspec.field(default_factory=dict)
    who: str


class LiveConfigRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``live_config`` row: the part of the live settings an admin may change at run
    time. The latest row is in force."""

    change_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    strategies: list[str]
    risk_per_trade_usd: float
    max_positions: int
    paused: bool
    changed_by: str
    changed_at: datetime | None = None
    """Set by the database when the change is stored."""
