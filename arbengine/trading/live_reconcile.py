"""Reconciliation: what to do so that the exchange and our records agree again.

A synchronous core. The service (``live_reconciler``) reads the exchange (positions,
open orders, open algo orders) and the records (open ``live_trades`` and
``live_orders``), calls :func:`reconcile`, and carries the decisions out (or, dry-run,
only shows them). Each decision says what and why; each becomes a ``live_events`` row.

Rules, per symbol (one-way mode: one position per symbol, one open trade per symbol):

- A position with an open (or pending: its fill not written yet) trade of ours and
  no stop on the exchange (an open
  STOP_MARKET on the exit side, ``closePosition`` or reduce-only: whoever placed it)
  gets its stop back at the trade's recorded stop price, under the trade's next
  ``sl`` client id: :class:`RestoreStop`.
- A position no open trade accounts for is an orphan, handled by ``orphan_policy``:
  ``protect`` places a ``closePosition`` stop at the *configured risk distance*
  (:class:`ProtectOrphan`), ``flatten`` a reduce-only market order
  (:class:`FlattenOrphan`), ``alert`` only reports it (:class:`AlertOrphan`). An orphan
  already carrying a stop is left alone.
- A pending trade (its process ended before writing it open) whose position stands
  with a stop is written open with its entry: :class:`OpenPending`. One with no
  position is settled by its entry, asked by client id: filled, it opened and ended
  while nobody drove it (written open, then closed with the exchange's fills); never
  filled, it is ``not_opened``: :class:`SettlePending`.
- An open trade of ours whose symbol has no position on the exchange was closed there
  (stop, take-profit, liquidation, a manual close while we were away):
  :class:`CloseWithFills` (the service closes it with the exchange's fills), and its
  algo orders still open there are cancelled (:class:`CancelLeftover`).
- An order our records hold open that the exchange has no more (not among its open
  orders or algo orders): :class:`MarkOrderGone` (the service asks for it by client id
  and records how it ended).

Trades the executor is driving right now (``driven``) are its own: their orders may be
in flight, so they are neither protected, closed nor their orders marked here; their
positions are not orphans either.

The orphan's stop distance: the loss a trade of ours may take, ``risk_per_trade_usd``,
over the orphan's size, from its entry price: ``entry ∓ risk / |amount|``, on the tick
grid towards the entry. An orphan thus risks no more than any trade of ours. When the
mark price has already passed that stop, a stop would trigger at once (-2021): the
orphan is flattened instead (:class:`FlattenOrphan`, reason ``stop_already_crossed``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from arbengine.domain.live_rows import NOT_FOUND, LiveOrderRow, LiveTradeRow
from arbengine.trading.live_ids import MAX_REPLACEMENTS, TradeKey, client_id, parse_client_id
from arbengine.trading.live_plan import AlgoOrder, MarketOrder, Side, stop_rounding
from arbengine.trading.live_rules import SymbolRules, to_decimal

OrphanPolicy = Literal["protect", "flatten", "alert"]
ORPHAN_PREFIX = "ar"
"""Client ids of the orders reconciliation places for an orphan: never ours (``ae``),
never the exchange's (``autoclose-``…)."""
_STOP_TYPES = frozenset({"STOP_MARKET", "STOP"})


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    symbol: str
    amount: Decimal
    """Signed: short < 0."""
    entry_price: Decimal
    mark_price: Decimal


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An open order or algo order as the exchange lists it."""

    client_id: str
    symbol: str
    side: str
    type: str
    close_position: bool
    reduce_only: bool
    algo: bool


@dataclass(frozen=True, slots=True)
class ExchangeView:
    positions: tuple[ExchangePosition, ...]
    orders: tuple[ExchangeOrder, ...]


@dataclass(frozen=True, slots=True)
class RecordsView:
    trades: tuple[LiveTradeRow, ...]
    """Open or pending trades (``id`` set)."""
    orders: tuple[LiveOrderRow, ...]
    """Every order of those trades, and the open orders of no trade (an orphan's stop)."""


# -- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreStop:
    trade_id: int
    symbol: str
    order: AlgoOrder
    reason: str = "position_unprotected"
    kind: str = "reconcile.stop_restored"


@dataclass(frozen=True, slots=True)
class ProtectOrphan:
    symbol: str
    amount: Decimal
    order: AlgoOrder
    reason: str = "orphan_position"
    kind: str = "reconcile.orphan_protected"


@dataclass(frozen=True, slots=True)
class FlattenOrphan:
    symbol: str
    amount: Decimal
    order: MarketOrder
    reason: str = "orphan_position"
    kind: str = "reconcile.orphan_flattened"


@dataclass(frozen=True, slots=True)
class AlertOrphan:
    symbol: str
    amount: Decimal
    reason: str = "orphan_position"
    kind: str = "reconcile.orphan_found"


@dataclass(frozen=True, slots=True)
class CloseWithFills:
    trade_id: int
    symbol: str
    reason: str = "position_closed_on_exchange"
    kind: str = "reconcile.trade_closed"


@dataclass(frozen=True, slots=True)
class OpenPending:
    trade_id: int
    symbol: str
    reason: str = "pending_trade_with_position"
    kind: str = "reconcile.trade_opened"


@dataclass(frozen=True, slots=True)
class SettlePending:
    trade_id: int
    symbol: str
    reason: str = "pending_trade_without_position"
    kind: str = "reconcile.pending_settled"


@dataclass(frozen=True, slots=True)
class CancelLeftover:
    client_id: str
    symbol: str
    trade_id: int
    reason: str = "trade_closed_on_exchange"
    kind: str = "reconcile.leftover_canceled"


@dataclass(frozen=True, slots=True)
class MarkOrderGone:
    client_id: str
    symbol: str
    algo: bool
    trade_id: int | None
    reason: str = "not_open_on_exchange"
    kind: str = "reconcile.order_gone"


Decision = (
    RestoreStop
    | ProtectOrphan
    | FlattenOrphan
    | AlertOrphan
    | CloseWithFills
    | OpenPending
    | SettlePending
    | CancelLeftover
    | MarkOrderGone
)


def reconcile(
    exchange: ExchangeView,
    records: RecordsView,
    *,
    orphan_policy: OrphanPolicy,
    risk_per_trade_usd: Decimal,
    rules: Mapping[str, SymbolRules],
    now_ms: int,
    driven: Collection[int] = (),
) -> list[Decision]:
    """The actions that bring the exchange and the records into agreement (see module)."""
    decisions: list[Decision] = []
    positions = {p.symbol: p for p in exchange.positions if p.amount != 0}
    open_ids = {o.client_id for o in exchange.orders}
    trades_by_symbol = {t.symbol: t for t in records.trades}
    driven_ids = set(driven)

    for symbol, position in sorted(positions.items()):
        trade = trades_by_symbol.get(symbol)
        stopped = has_stop(exchange.orders, symbol, position.amount)
        if trade is not None:
            # A pending trade with a position: its entry filled and the process ended
            # before the fill was written (killed between entry and protection).
            if trade.id in driven_ids or trade.status not in ("open", "pending"):
                continue
            assert trade.id is not None
            if stopped:
                if trade.status == "pending":
                    decisions.append(OpenPending(trade.id, symbol))
                continue
            decisions.append(
                RestoreStop(
                    trade.id, symbol, _trade_stop(trade, position.amount, records.orders, rules)
                )
            )
            continue
        if stopped and orphan_policy != "flatten":
            continue
        decisions.append(_orphan(position, orphan_policy, risk_per_trade_usd, rules, now_ms))

    for trade in records.trades:
        if trade.id in driven_ids or trade.symbol in positions:
            continue
        assert trade.id is not None
        if trade.status == "pending":
            decisions.append(SettlePending(trade.id, trade.symbol))
        elif trade.status == "open":
            decisions.append(CloseWithFills(trade.id, trade.symbol))
        else:
            continue
        decisions += [
            CancelLeftover(o.client_order_id, o.symbol, trade.id)
            for o in records.orders
            if o.trade_id == trade.id and o.kind == "algo" and o.client_order_id in open_ids
        ]

    for order in records.orders:
        if order.trade_id is not None and order.trade_id in driven_ids:
            continue
        if not order.is_open or order.client_order_id in open_ids:
            continue
        decisions.append(
            MarkOrderGone(order.client_order_id, order.symbol, order.kind == "algo", order.trade_id)
        )
    return decisions


def has_stop(orders: Iterable[ExchangeOrder], symbol: str, amount: Decimal) -> bool:
    """An open stop on the position's exit side, whoever placed it."""
    exit_side = "SELL" if amount > 0 else "BUY"
    return any(
        o.symbol == symbol
        and o.side == exit_side
        and o.type in _STOP_TYPES
        and (o.close_position or o.reduce_only)
        for o in orders
    )


def _trade_stop(
    trade: LiveTradeRow,
    amount: Decimal,
    orders: Iterable[LiveOrderRow],
    rules: Mapping[str, SymbolRules],
) -> AlgoOrder:
    """The trade's stop again, under the next id of its role not used yet (a fresh id:
    the old one's order is over, and an id is never reused for another order).

    Before TP1 it is the first stop (``closePosition``) at the recorded stop price; once
    a breakeven stop was placed (TP1 filled), the breakeven stop at its price for what
    is left, reduce-only, as the executor places it: never the wider first stop again.
    """
    key = TradeKey(trade.strategy, trade.symbol, trade.signal_tick)
    ours = [
        (parsed, o)
        for o in orders
        if (parsed := parse_client_id(o.client_order_id)) is not None and parsed.belongs_to(key)
    ]
    breakevens = [
        (p.replacement, o)
        for p, o in ours
        if p.role == "breakeven_sl" and o.status not in ("REJECTED", NOT_FOUND) and o.trigger_price
    ]
    side: Side = "SELL" if trade.direction == 1 else "BUY"
    if breakevens:
        last, row = max(breakevens, key=lambda pair: pair[0])
        assert row.trigger_price is not None
        return AlgoOrder(
            symbol=trade.symbol,
            side=side,
            type="STOP_MARKET",
            trigger_price=to_decimal(row.trigger_price),
            quantity=abs(amount),
            close_position=False,
            client_algo_id=client_id(key, "breakeven_sl", min(last + 1, MAX_REPLACEMENTS)),
            role="breakeven_sl",
        )
    used = [p.replacement for p, _ in ours if p.role == "sl"]
    stop = to_decimal(trade.stop_price)
    symbol_rules = rules.get(trade.symbol)
    if symbol_rules is not None:
        stop = symbol_rules.price(stop, stop_rounding(trade.direction))
    return AlgoOrder(
        symbol=trade.symbol,
        side=side,
        type="STOP_MARKET",
        trigger_price=stop,
        quantity=None,
        close_position=True,
        client_algo_id=client_id(key, "sl", min(max(used, default=0) + 1, MAX_REPLACEMENTS)),
        role="sl",
    )


def orphan_stop(position: ExchangePosition, risk_usd: Decimal) -> Decimal:
    """The orphan's stop before tick rounding: ``risk_usd`` of loss from its entry."""
    distance = risk_usd / abs(position.amount)
    return (
        position.entry_price - distance if position.amount > 0 else position.entry_price + distance
    )


def _orphan(
    position: ExchangePosition,
    policy: OrphanPolicy,
    risk_usd: Decimal,
    rules: Mapping[str, SymbolRules],
    now_ms: int,
) -> Decision:
    side: Side = "SELL" if position.amount > 0 else "BUY"
    direction = 1 if position.amount > 0 else -1
    if policy == "alert":
        return AlertOrphan(position.symbol, position.amount)
    if policy == "protect":
        stop = orphan_stop(position, risk_usd)
        symbol_rules = rules.get(position.symbol)
        if symbol_rules is not None:
            stop = symbol_rules.price(stop, stop_rounding(direction))
        crossed = position.mark_price > 0 and (
            position.mark_price <= stop if direction == 1 else position.mark_price >= stop
        )
        if not crossed and stop > 0:
            return ProtectOrphan(
                position.symbol,
                position.amount,
                AlgoOrder(
                    symbol=position.symbol,
                    side=side,
                    type="STOP_MARKET",
                    trigger_price=stop,
                    quantity=None,
                    close_position=True,
                    client_algo_id=_orphan_id("s", position.symbol, now_ms),
                    role="sl",
                ),
            )
        reason = "stop_already_crossed"
    else:
        reason = "orphan_position"
    return FlattenOrphan(
        position.symbol,
        position.amount,
        MarketOrder(
            symbol=position.symbol,
            side=side,
            quantity=abs(position.amount),
            reduce_only=True,
            client_order_id=_orphan_id("f", position.symbol, now_ms),
            role="flatten",
        ),
        reason=reason,
    )


def _orphan_id(code: str, symbol: str, now_ms: int) -> str:
    """``ar<s|f><ms base 36>-<symbol>``: one per reconciliation round and symbol."""
    digits = []
    value = now_ms
    while value:
        value, digit = divmod(value, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return f"{ORPHAN_PREFIX}{code}{''.join(reversed(digits))}-{symbol}"[:36]


def decision_detail(decision: Decision) -> dict[str, object]:
    """What a decision says, for its ``live_events`` row, its log line and the CLI."""
    detail: dict[str, object] = {"reason": decision.reason}
    if isinstance(decision, RestoreStop | CloseWithFills | OpenPending | SettlePending):
        detail["trade_id"] = decision.trade_id
    if isinstance(decision, ProtectOrphan | FlattenOrphan | AlertOrphan):
        detail["amount"] = str(decision.amount)
    if isinstance(decision, RestoreStop | ProtectOrphan):
        detail["client_id"] = decision.order.client_algo_id
        detail["stop"] = str(decision.order.trigger_price)
    if isinstance(decision, FlattenOrphan):
        detail["client_id"] = decision.order.client_order_id
        detail["quantity"] = str(decision.order.quantity)
    if isinstance(decision, CancelLeftover):
        detail["client_id"] = decision.client_id
        detail["trade_id"] = decision.trade_id
    if isinstance(decision, MarkOrderGone):
        detail["client_id"] = decision.client_id
        detail["trade_id"] = decision.trade_id
    return detail
