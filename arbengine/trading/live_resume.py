"""A live trade an earlier process drove, rebuilt from what that process recorded.

A restart (a deploy's SIGTERM, a crash) must not leave open trades to the reconciliation
alone: the move to breakeven after TP1, the time exit, a replaced stop's bookkeeping are
the trade machine's. So the machine is rebuilt by *replaying* it: a new ``LiveTrade``
from the signal as traded, its entry started, then fed, in the order they were written
(``StatusChange.written_us``), the events each stored status of each of its orders
stands for. The machine creates every order itself on the way (the protection when the
entry's fill is replayed, the breakeven stop after TP1's, a replacement stop, a retry),
with the same deterministic client ids and replacement counts as the first time; the
actions it asks for while replaying were carried out then and are dropped. Only the time
exit and a flatten came from outside the machine (the clock, an admin): the first record
of such an order replays ``HoldExpired`` or ``FlattenRequested``.

What the earlier process left under way is then settled by the machine's own rule for an
outcome nobody heard (``unfinished``): a placement or a cancel sent without an answer is
an unknown outcome, so it is queried by client id, never sent again blindly; a query
without an answer is asked again. The executor's next poll asks the exchange about every
order still open and the position, and the machine carries on from there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from arbengine.domain.engine_rows import ExitRule
from arbengine.domain.events import Signal
from arbengine.domain.live_rows import NOT_FOUND, PENDING, UNKNOWN, LiveOrderRow, StatusChange
from arbengine.trading.live_rules import SymbolRules, to_decimal
from arbengine.trading.live_sizing import Sized
from arbengine.trading.live_trade import (
    FlattenRequested,
    HoldExpired,
    LiveTrade,
    NotFound,
    OutcomeUnknown,
    Query,
    Rejected,
    TrackedOrder,
    TradeAction,
    TradeEvent,
)
from arbengine.trading.live_wire import OrderReport, algo_events, order_events

_ERROR_CODE = re.compile(r"\bcode (-?\d+)\b")
"""The exchange's error code in a refusal's note (``POST …: HTTP 400 code -2021: …``)."""


@dataclass(frozen=True, slots=True)
class NotResumable:
    """The records do not replay into the trade: left to the reconciliation, because."""

    reason: str


def rebuild(
    signal: Signal,
    rule: ExitRule,
    rules: SymbolRules,
    sized: Sized,
    orders: Sequence[LiveOrderRow],
    *,
    max_entry_attempts: int = 3,
) -> LiveTrade | NotResumable:
    """The trade as the machine that wrote ``orders`` (the trade's ``live_orders`` rows,
    oldest first) left it."""
    trade = LiveTrade(signal, rule, rules, sized, max_entry_attempts=max_entry_attempts)
    trade.start()
    changes = sorted(
        (
            (_written(change), row_index, index, row, change)
            for row_index, row in enumerate(orders)
            for index, change in enumerate(row.status_history)
        ),
        key=lambda c: c[:3],
    )
    for _, _, index, row, change in changes:
        cid = row.client_order_id
        if cid not in trade.orders and index == 0:
            if row.role == "time_exit":
                trade.on(HoldExpired())
            elif row.role == "flatten":
                trade.on(FlattenRequested())
        order = trade.orders.get(cid)
        if order is None:
            return NotResumable(
                f"order {cid} ({row.role}, {change.status}) is not one the trade would have placed"
            )
        for event in _events(row, change, order):
            trade.on(event)
    return trade


def unfinished(trade: LiveTrade) -> list[TradeAction]:
    """What a rebuilt trade has under way that no answer settled: each placement or cancel
    sent (or about to be) becomes an unknown outcome, queried by its id; each query is
    asked again."""
    actions: list[TradeAction] = []
    for order in list(trade.orders.values()):
        if order.status in ("sending", "cancelling"):
            actions += trade.on(OutcomeUnknown(order.client_id))
        elif order.status in ("unknown", "cancel_unknown") and order.query is not None:
            actions.append(Query(order.client_id, order.is_algo, order.query))
    return actions


def _written(change: StatusChange) -> int:
    # Rows written before the database's clock was kept: the status time, in µs.
    return change.written_us if change.written_us is not None else change.time * 1000


def _events(row: LiveOrderRow, change: StatusChange, order: TrackedOrder) -> list[TradeEvent]:
    """What the machine heard when ``change`` was written (the executor stores a status
    just before it feeds the events it stands for)."""
    cid = row.client_order_id
    status = change.status
    if status == PENDING:
        return []  # the placement the machine asked for: it made the order already
    if status == UNKNOWN:
        return [OutcomeUnknown(cid)]
    if status == NOT_FOUND:
        # The answer to the machine's query, when it had one out (a poll's is not fed).
        return [] if order.query is None else [NotFound(cid, order.query)]
    code = _ERROR_CODE.search(change.note or "") if status == "REJECTED" else None
    if code is not None:
        return [Rejected(cid, int(code.group(1)), change.note or "")]
    report = OrderReport(
        client_id=cid,
        status=status,
        executed_qty=to_decimal(row.filled_quantity),
        avg_price=to_decimal(row.average_price or 0.0),
    )
    return algo_events(report) if row.kind == "algo" else order_events(report)
