"""What the exchange said about an order, as the live trade's events; what we store of it.

The executor's translation table (``live_trade``'s docstring, "Feeding it"), kept out of
the async service so that every status maps the same way whether it came from a REST
answer, a poll or (later) the user data stream, and so that it is tested without a
network. It reads plain values, not the exchange's reply structs (a sync core imports
no exchange client).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from arbengine.domain.live_rows import Fill, LiveOrderRow, LiveTradeRow, PlanDifference
from arbengine.trading.live_plan import AlgoOrder, MarketOrder, OrderRequest
from arbengine.trading.live_rules import ZERO, to_decimal
from arbengine.trading.live_trade import (
    Acked,
    Ended,
    Filled,
    LiveTrade,
    TradeEvent,
    TradeState,
    Triggered,
)

ORDER_DOES_NOT_EXIST = -2013


@dataclass(frozen=True, slots=True)
class OrderReport:
    """An order's or algo order's state as the exchange reported it."""

    client_id: str
    status: str
    """``status`` of an order, ``algoStatus`` of an algo order."""
    executed_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    exchange_id: int | None = None
    time_ms: int = 0


def order_events(report: OrderReport) -> list[TradeEvent]:
    """An order's ``status`` as events (none for a status that says nothing new)."""
    status = report.status
    if status == "NEW":
        return [Acked(report.client_id)]
    if status == "PARTIALLY_FILLED":
        return [Filled(report.client_id, report.executed_qty, report.avg_price, complete=False)]
    if status == "FILLED":
        return [Filled(report.client_id, report.executed_qty, report.avg_price)]
    if status in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"):
        if report.executed_qty > 0:
            # Ended with part of it done: the machine hears the fill, then the end.
            partial = Filled(
                report.client_id, report.executed_qty, report.avg_price, complete=False
            )
            return [partial, Ended(report.client_id)]
        return [Ended(report.client_id)]
    return []


def algo_events(report: OrderReport) -> list[TradeEvent]:
    """An algo order's ``algoStatus`` as events; FINISHED carries its order's execution
    (the caller reads it from the order the algo order placed)."""
    status = report.status
    if status == "NEW":
        return [Acked(report.client_id)]
    if status in ("TRIGGERING", "TRIGGERED"):
        return [Triggered(report.client_id)]
    if status == "FINISHED":
        return [Filled(report.client_id, report.executed_qty, report.avg_price)]
    if status in ("CANCELED", "EXPIRED", "REJECTED"):
        return [Ended(report.client_id)]
    return []


def request_client_id(order: OrderRequest) -> str:
    return order.client_algo_id if isinstance(order, AlgoOrder) else order.client_order_id


def order_row(
    order: OrderRequest,
    *,
    status: str,
    status_time: int,
    trade_id: int | None,
    report: OrderReport | None = None,
) -> LiveOrderRow:
    """The ``live_orders`` row of ``order`` in ``status`` (the exchange's, or PENDING,
    UNKNOWN, NOT_FOUND, REJECTED of ours)."""
    executed = report.executed_qty if report is not None else ZERO
    avg = report.avg_price if report is not None and report.avg_price > 0 else None
    if isinstance(order, MarketOrder):
        quantity: Decimal | None = order.quantity
        trigger: float | None = None
        reduce_only, close_position = order.reduce_only, False
    else:
        quantity, trigger = order.quantity, float(order.trigger_price)
        reduce_only, close_position = not order.close_position, order.close_position
    return LiveOrderRow(
        client_order_id=request_client_id(order),
        exchange_order_id=report.exchange_id if report is not None else None,
        kind="order" if isinstance(order, MarketOrder) else "algo",
        role=order.role,
        symbol=order.symbol,
        side=order.side,
        type="MARKET" if isinstance(order, MarketOrder) else order.type,
        quantity=None if quantity is None else float(quantity),
        trigger_price=trigger,
        reduce_only=reduce_only,
        close_position=close_position,
        status=status,
        status_time=status_time,
        filled_quantity=float(executed),
        average_price=None if avg is None else float(avg),
        trade_id=trade_id,
    )


@dataclass(frozen=True, slots=True)
class TradeResult:
    """A closed trade's outcome from its orders' executions (fees come later, from fills)."""

    realised_usd: float
    realised_r: float


def trade_result(trade: LiveTrade, fees: float = 0.0, funding: float = 0.0) -> TradeResult:
    """Realised USD and R of a trade whose entry filled: each exit's execution against
    the entry's average price, less ``fees``, plus ``funding`` (negative when paid), in
    units of the risk taken (R distance × the filled quantity)."""
    entry = trade.orders[trade.entry_id]
    direction = trade.signal.direction
    usd = sum(
        (
            direction * (o.avg_price - entry.avg_price) * o.executed
            for o in trade.orders.values()
            if o.role != "entry" and o.executed > 0
        ),
        ZERO,
    )
    net = usd - to_decimal(fees) + to_decimal(funding)
    risk = trade.sized.r_distance * entry.executed
    return TradeResult(float(net), float(net / risk) if risk > 0 else 0.0)


def trade_row(
    trade: LiveTrade, *, opened_at: int | None = None, entry_fills: list[Fill] | None = None
) -> LiveTradeRow:
    """The ``live_trades`` row of ``trade`` while it is pending or open (the close is
    written by ``close_trade``); ``not_opened`` once it ended without a position."""
    entry = trade.orders.get(trade.entry_id)
    filled = entry is not None and entry.executed > 0
    if trade.state == TradeState.CLOSED and trade.plan is None:
        status = "not_opened"
    elif trade.plan is not None:
        status = "open"
    else:
        status = "pending"
    plan = trade.plan
    return LiveTradeRow(
        strategy=trade.signal.strategy,
        strategy_hash=trade.signal.strategy_hash,
        symbol=trade.signal.symbol,
        signal_tick=trade.signal.tick_ms,
        direction=trade.signal.direction,
        status=status,  # type: ignore[arg-type]
        quantity=float(entry.executed if filled and entry is not None else trade.sized.qty),
        entry_price=float(entry.avg_price) if filled and entry is not None else None,
        stop_price=float(plan.stop_loss if plan is not None else trade.sized.stop),
        r_distance=float(trade.sized.r_distance),
        risk_usd=float(trade.sized.risk_usd),
        entry_fills=entry_fills or [],
        exit_reason=trade.exit_reason if status == "not_opened" else None,
        plan_differences=[]
        if plan is None
        else [
            PlanDifference(
                d.what,
                None if d.paper is None else float(d.paper),
                None if d.live is None else float(d.live),
                _WHY.get(d.what, "exchange rounding"),
            )
            for d in (*plan.differences, *trade.forced)
        ],
        paper_entry_tick=trade.signal.tick_ms,
        opened_at=opened_at,
        signal=trade.signal,
    )


_WHY = {
    "entry_price": "market fill against the paper's entry (slippage)",
    "quantity": "floored to the lot step, or partly filled",
    "stop_loss": "rounded to the tick, towards the entry",
    "breakeven_stop": "rounded to the tick, towards the entry",
    "take_profit_1": "rounded to the tick, towards the entry",
    "take_profit_2": "rounded to the tick, towards the entry",
    "tp1_quantity": "floored to the lot step",
    "sl_at_market": "price past the stop when it was placed (-2021): closed at market",
    "tp1_at_market": "price past TP1 when it was placed (-2021): TP1 taken at market",
    "tp2_at_market": "price past TP2 when it was placed (-2021): the rest closed at market",
}
