"""One live trade's orders and position as a state machine: events in, actions out.

The executor (an async service) owns the I/O: it performs the actions this core asks
for (place, query, cancel, each naming its client id) and feeds back what the exchange
said, as events. The core holds every rule about *what* to do next, so the rules are
tested without a network and a restart can rebuild a trade by replaying its events.

States and their usual way on:

- ``pending_entry``: the entry is sent; an acknowledgement keeps it here, a fill moves
  to ``open_unprotected``, an unknown outcome to ``entry_unknown``;
- ``entry_unknown``: the entry is queried; "not found" sends it again (back to
  ``pending_entry``), any sign of it (ack, fill) goes on as if it had been answered;
- ``open_unprotected``: filled, the stop (and take-profits) sent; the stop's
  acknowledgement moves to ``protected``;
- ``protected`` → ``breakeven`` when TP1 fills (the breakeven stop replaces the first);
- ``closing``: a time exit or flatten is on its way, or the position is zero and the
  orders left are being cancelled; ``closed`` when none is left. A rejected, expired or
  given-up entry goes straight to ``closed`` with no position.

The rule the whole design rests on: an outcome that is *unknown* (a timeout, a 5xx, a
503 "unknown", a connection dropped after sending) is never taken as a failure. It
leads to a query by client id; the order is sent again, with the *same* client id,
only when the answer to that very query (``NotFound.query`` echoes ``Query.query``, so
a late or duplicated answer to an older query is ignored) is that the exchange has no
such order. The same for cancels: an unknown cancel is queried and repeated only while
the order is still open. An entry is placed at most ``max_entry_attempts`` times, each
time only after such an answer, and never again once the exchange has acknowledged,
filled or refused it as a duplicate (``-4116``, which means it exists): one signal, at
most one entry.

Protection: the stop is placed first, with the take-profits, as soon as the entry has
filled (a partial fill that the exchange ends is protected for what filled). A refused
stop flattens the position at market: a position is never left without a stop. A stop
or take-profit refused because the price is already past it (``-2021``) is carried out
at market under its own role instead, as the paper exits at that level (``forced``
records it). A position reported flat is the exchange's doing only once none of our
stops and take-profits has fired (each is asked for: its fill may come later). A stop
the exchange ends while the position is open is placed again (next replacement id).
After TP1 the breakeven stop is placed and the first stop cancelled only once the new
one is acknowledged. When the position reaches zero by any path, every order left is
cancelled; the trade is closed when none is left.

Feeding it (the executor's side). Perform one trade's actions in order, one at a time
(a query must not overtake the placement it asks about). Translate what the exchange
says into events by client id, from the REST answers and the user data stream alike
(the machine ignores what it has already heard):

- an order's ``status`` NEW → ``Acked``; PARTIALLY_FILLED → ``Filled(complete=False)``;
  FILLED → ``Filled``; CANCELED or EXPIRED → ``Ended``; an error reply → ``Rejected``;
- an algo order's ``algoStatus`` NEW → ``Acked``; TRIGGERING/TRIGGERED → ``Triggered``;
  FINISHED → ``Filled`` with its order's execution; CANCELED, EXPIRED or REJECTED →
  ``Ended``; a cancel's success → ``Ended``, its ``-2011`` → ``Rejected``;
- a timeout, 5xx, 503 or a connection lost after sending → ``OutcomeUnknown``; a query's
  ``-2013`` → ``NotFound`` with the query's number;
- ``PositionChanged`` only from a report newer than the entry's fill; ``HoldExpired``
  when the clock reaches ``plan.time_exit_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from arbengine.domain.control_rows import FlattenReason
from arbengine.domain.engine_rows import ExitRule
from arbengine.domain.events import Signal
from arbengine.trading.live_ids import MAX_REPLACEMENTS, OrderRole, client_id
from arbengine.trading.live_plan import (
    AlgoOrder,
    Difference,
    LivePlan,
    MarketOrder,
    OrderRequest,
    entry_order,
    plan_exits,
)
from arbengine.trading.live_rules import ZERO, SymbolRules
from arbengine.trading.live_sizing import Sized

DUPLICATE_CLIENT_ID = -4116
"""The exchange already has an order with this client id: it exists, query it."""
UNKNOWN_ORDER = -2011
"""A cancel of an order the exchange does not have (open)."""
WOULD_TRIGGER = -2021
"""A conditional order whose level the price has already crossed."""
MAX_CLOSE_ATTEMPTS = 3
"""Time exits or flattens placed in all while the exchange keeps refusing them."""
MAX_FLAT_ASKS = 3
"""Times a flat position is not yet taken as the exchange's doing while a stop or
take-profit of ours may have fired and has not said so."""
REDUCE_ONLY_REJECTED = -2022
"""A reduce-only order with nothing to reduce: the position is already zero."""


class TradeState(StrEnum):
    PENDING_ENTRY = "pending_entry"
    ENTRY_UNKNOWN = "entry_unknown"
    OPEN_UNPROTECTED = "open_unprotected"
    PROTECTED = "protected"
    BREAKEVEN = "breakeven"
    """TP1 filled (and, with ``breakeven_after_tp1``, the stop moving or moved to e)."""
    CLOSING = "closing"
    CLOSED = "closed"


LiveExitReason = Literal[
    "sl",
    "breakeven",
    "tp1",
    "tp2",
    "max_hold",
    "flatten",
    "manual_flatten",
    "risk_halt",
    "hold_timeout",
    "exchange",
    "entry_rejected",
    "entry_expired",
    "entry_failed",
]
"""The paper's reasons, plus ``flatten`` (a refused stop), ``manual_flatten`` (a person's
flatten), ``risk_halt`` (the risk guard's breaker), ``hold_timeout`` (the risk guard's
limit on holding), ``exchange``
(the position went to zero by something else: a liquidation, a manual close) and the
three ways an entry ends without a position."""

_EXIT_REASONS: dict[OrderRole, LiveExitReason] = {
    "sl": "sl",
    "breakeven_sl": "breakeven",
    "tp1": "tp1",
    "tp2": "tp2",
    "time_exit": "max_hold",
    "flatten": "flatten",
}

# -- events: what the exchange (or the clock) said ----------------------------------------


@dataclass(frozen=True, slots=True)
class Acked:
    """The exchange has the order and it is open (an order's or algo order's NEW)."""

    client_id: str


@dataclass(frozen=True, slots=True)
class Filled:
    """The order has executed ``executed_qty`` in all (cumulative) at ``avg_price``;
    ``complete`` when it is done (FILLED, or an algo order FINISHED)."""

    client_id: str
    executed_qty: Decimal
    avg_price: Decimal
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Rejected:
    """The exchange refused a placement or a cancel with an error code."""

    client_id: str
    code: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class OutcomeUnknown:
    """A placement or a cancel was sent and no answer says what became of it."""

    client_id: str


@dataclass(frozen=True, slots=True)
class NotFound:
    """The answer to query ``query``: the exchange has no order with this id (-2013)."""

    client_id: str
    query: int


@dataclass(frozen=True, slots=True)
class Triggered:
    """A conditional order's level was crossed; its market order is on its way."""

    client_id: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The order is over without (more) execution: CANCELED (our cancel acknowledged, or
    the exchange's), EXPIRED, or an algo order's CANCELED/EXPIRED/REJECTED after placing."""

    client_id: str


@dataclass(frozen=True, slots=True)
class PositionChanged:
    """The exchange's position amount for the symbol (signed; from the user stream or
    ``positionRisk``). Zero after the entry filled means the position is gone.
    ``settled``: every order of the trade was asked for after the amount was read (a
    poll), so a stop or take-profit that made it zero has said so already."""

    amount: Decimal
    settled: bool = False


@dataclass(frozen=True, slots=True)
class HoldExpired:
    """The wall clock passed the plan's ``time_exit_at``."""


@dataclass(frozen=True, slots=True)
class FlattenRequested:
    """Close the position at market now (an admin, the risk guard, shutdown policy)."""

    reason: FlattenReason = "flatten"
    """The trade's exit reason once the close has filled."""


TradeEvent = (
    Acked
    | Filled
    | Rejected
    | OutcomeUnknown
    | NotFound
    | Triggered
    | Ended
    | PositionChanged
    | HoldExpired
    | FlattenRequested
)

# -- actions: what the executor must do ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    order: OrderRequest


@dataclass(frozen=True, slots=True)
class Query:
    """Ask the exchange for the order by client id (``GET /fapi/v1/order`` or
    ``/fapi/v1/algoOrder``); answer with ``Acked``/``Filled``/``Ended``/``Rejected`` as
    its status says, or ``NotFound(client_id, query)`` on -2013."""

    client_id: str
    algo: bool
    query: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """``DELETE /fapi/v1/algoOrder`` by ``clientAlgoId``."""

    client_id: str


TradeAction = Place | Query | Cancel

OrderStatus = Literal[
    "sending", "unknown", "open", "triggered", "filled", "ended", "cancelling", "cancel_unknown"
]
_LIVE_ALGO: frozenset[OrderStatus] = frozenset(
    {"sending", "unknown", "open", "cancelling", "cancel_unknown"}
)


@dataclass(slots=True)
class TrackedOrder:
    """One order of the trade as far as we know."""

    request: OrderRequest
    status: OrderStatus = "sending"
    executed: Decimal = ZERO
    avg_price: Decimal = ZERO
    query: int | None = None
    """The outstanding query's number, when one was asked."""
    reject_code: int | None = None

    @property
    def role(self) -> OrderRole:
        return self.request.role

    @property
    def is_algo(self) -> bool:
        return isinstance(self.request, AlgoOrder)

    @property
    def client_id(self) -> str:
        r = self.request
        return r.client_algo_id if isinstance(r, AlgoOrder) else r.client_order_id


@dataclass
class LiveTrade:
    """The orders and position of the live trade opened by one signal."""

    signal: Signal
    rule: ExitRule
    rules: SymbolRules
    sized: Sized
    max_entry_attempts: int = 3
    state: TradeState = TradeState.PENDING_ENTRY
    plan: LivePlan | None = None
    exit_reason: LiveExitReason | None = None
    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    entry_attempts: int = 0
    stop_id: str | None = None
    """The client id of the stop that protects the position now."""
    needs_attention: bool = False
    """The machine has done all it may and the position is still open: the executor
    raises an alert and the reconciliation takes over."""
    flat_on_exchange: bool = False
    """The exchange reported the position zero (it is, whatever fills we have seen)."""
    _queries: int = 0
    _replacements: dict[OrderRole, int] = field(default_factory=dict)
    forced: list[Difference] = field(default_factory=list)
    """Differences from the paper plan the exchange forced after planning (a level
    already crossed when its order was placed, taken at market)."""
    _close_asked: Literal["time_exit", "flatten"] | None = None
    _flatten_reason: FlattenReason = "flatten"
    """Why the trade's flatten orders were sent (the first request's reason stands)."""
    _flat_asks: int = 0
    _still_open: set[str] = field(default_factory=set)
    """Algo orders the exchange said were still open after the position went flat."""

    @property
    def entry_id(self) -> str:
        return entry_order(self.signal, self.sized).client_order_id

    @property
    def is_protected(self) -> bool:
        """A stop of ours is acknowledged and open on the exchange now."""
        stop = self.orders.get(self.stop_id) if self.stop_id else None
        return stop is not None and stop.status in ("open", "cancel_unknown", "triggered")

    @property
    def position(self) -> Decimal:
        """The open quantity: the entry's execution less every exit's (zero once the
        exchange has said so)."""
        entry = self.orders.get(self.entry_id)
        if entry is None or self.flat_on_exchange:
            return ZERO
        exits = sum((o.executed for o in self.orders.values() if o.role != "entry"), ZERO)
        return max(ZERO, entry.executed - exits)

    def start(self) -> list[TradeAction]:
        """The entry order (once: a second call asks for nothing)."""
        if self.entry_attempts or self.entry_id in self.orders:
            return []
        order = entry_order(self.signal, self.sized)
        self.orders[order.client_order_id] = TrackedOrder(order)
        self.entry_attempts = 1
        return [Place(order)]

    def on(self, event: TradeEvent) -> list[TradeAction]:
        """Apply what the exchange (or the clock) said; the actions it calls for."""
        if isinstance(event, PositionChanged):
            return self._on_position(event.amount, ask=not event.settled)
        if isinstance(event, HoldExpired):
            return self._close("time_exit")
        if isinstance(event, FlattenRequested):
            if self._flatten_reason == "flatten":
                self._flatten_reason = event.reason
            return self._close("flatten")
        order = self.orders.get(event.client_id)
        if order is None:
            return []
        if isinstance(event, OutcomeUnknown):
            return self._on_unknown(order)
        if isinstance(event, NotFound):
            return self._on_not_found(order, event.query)
        if isinstance(event, Rejected):
            return self._on_rejected(order, event.code)
        if isinstance(event, Acked):
            return self._on_acked(order)
        if isinstance(event, Filled):
            return self._on_filled(order, event)
        if isinstance(event, Triggered):
            if order.status in ("open", "sending", "unknown"):
                order.status = "triggered"
            return []
        return self._on_ended(order)

    # -- unknown outcomes -----------------------------------------------------------------

    def _ask(self, order: TrackedOrder) -> list[TradeAction]:
        self._queries += 1
        order.query = self._queries
        return [Query(order.client_id, order.is_algo, self._queries)]

    def _on_unknown(self, order: TrackedOrder) -> list[TradeAction]:
        if order.status == "sending":
            order.status = "unknown"
            if order.role == "entry":
                self.state = TradeState.ENTRY_UNKNOWN
            return self._ask(order)
        if order.status == "cancelling":
            order.status = "cancel_unknown"
            return self._ask(order)
        return []

    def _on_not_found(self, order: TrackedOrder, query: int) -> list[TradeAction]:
        if order.query is None or order.query != query:
            return []  # an answer to an older query, or a duplicate: it proves nothing now
        order.query = None
        if order.status == "cancel_unknown":
            order.status = "ended"
            return self._finish_if_done()
        if order.status != "unknown":
            return []
        if order.role == "entry":
            if self.entry_attempts >= self.max_entry_attempts:
                order.status = "ended"
                self._end_without_position("entry_failed")
                return []
            self.entry_attempts += 1
            order.status = "sending"
            self.state = TradeState.PENDING_ENTRY
            return [Place(order.request)]
        if self.state in (TradeState.CLOSING, TradeState.CLOSED) and order.is_algo:
            order.status = "ended"
            return self._finish_if_done()
        order.status = "sending"
        return [Place(order.request)]

    # -- the exchange's answers -----------------------------------------------------------

    def _on_rejected(self, order: TrackedOrder, code: int) -> list[TradeAction]:
        if order.status in ("cancelling", "cancel_unknown"):
            if code == UNKNOWN_ORDER:
                order.status = "ended"
                return self._finish_if_done()
            order.status = "open"  # the cancel failed; the order stands
            return []
        if order.status not in ("sending", "unknown"):
            return []
        if code == DUPLICATE_CLIENT_ID:
            order.status = "unknown"  # it exists: find out in what state
            if order.role == "entry":
                self.state = TradeState.ENTRY_UNKNOWN
            return self._ask(order)
        order.status = "ended"
        order.reject_code = code
        if order.role == "entry":
            self._end_without_position("entry_rejected")
            return []
        if order.role in ("sl", "breakeven_sl"):
            if order.role == "breakeven_sl":
                return []  # the first stop still stands (it is cancelled only after this acks)
            if code == WOULD_TRIGGER and order.is_algo:
                return self._at_market(order)
            return self._close("flatten")
        if order.role in ("tp1", "tp2"):
            if not order.is_algo:
                return self._close("flatten")  # a take-profit at market refused: out all the same
            return self._at_market(order) if code == WOULD_TRIGGER else []
        if code == REDUCE_ONLY_REJECTED:
            return self._on_position(ZERO, ask=False)
        # A refused time exit or flatten: the position is still there. Try again under a
        # new id a few times; past that it is left (with its stop, if any) to the
        # reconciliation and a person: ``needs_attention``.
        assert order.role in ("time_exit", "flatten")
        if self._replacements.get(order.role, 0) < MAX_CLOSE_ATTEMPTS:
            return self._close("time_exit" if order.role == "time_exit" else "flatten")
        self.needs_attention = True
        return []

    def _on_acked(self, order: TrackedOrder) -> list[TradeAction]:
        if order.status == "cancel_unknown":
            order.status = "cancelling"  # still open after an unknown cancel: cancel again
            order.query = None
            return [Cancel(order.client_id)]
        if order.status == "open" and self.flat_on_exchange and order.query is not None:
            order.query = None  # asked after the position went flat: it did not fire
            self._still_open.add(order.client_id)
            return self._settle_flat()
        if order.status not in ("sending", "unknown"):
            return []
        order.status = "open"
        order.query = None
        if order.role == "entry":
            if self.state == TradeState.ENTRY_UNKNOWN:
                self.state = TradeState.PENDING_ENTRY
            return []
        if self.state in (TradeState.CLOSING, TradeState.CLOSED) and self.position <= 0:
            order.status = "cancelling"
            return [Cancel(order.client_id)]
        if order.role == "sl" and any(
            o.role == "breakeven_sl" and o.status == "open" for o in self.orders.values()
        ):
            # A first stop acknowledged after the breakeven stop that supersedes it.
            order.status = "cancelling"
            return [Cancel(order.client_id)]
        if order.role in ("sl", "breakeven_sl"):
            self.stop_id = order.client_id
            if self.state == TradeState.OPEN_UNPROTECTED:
                self.state = TradeState.PROTECTED
            if order.role == "breakeven_sl":
                # Only now, with the new stop in place, does the first one go.
                actions: list[TradeAction] = []
                for old in self.orders.values():
                    if old.role == "sl" and old.status == "open":
                        old.status = "cancelling"
                        actions.append(Cancel(old.client_id))
                return actions
        return []

    def _on_filled(self, order: TrackedOrder, event: Filled) -> list[TradeAction]:
        if event.executed_qty > order.executed:
            order.executed = event.executed_qty
            order.avg_price = event.avg_price
        if order.role == "entry":
            if order.status == "filled":
                return []
            if not event.complete:
                order.status = "open"
                order.query = None
                if self.state == TradeState.ENTRY_UNKNOWN:
                    self.state = TradeState.PENDING_ENTRY
                return []
            order.status = "filled"
            order.query = None
            return self._protect()
        if not event.complete or order.status == "filled":
            return []
        order.status = "filled"
        order.query = None
        if self.position > 0:
            if order.role == "tp1" and self.state in (
                TradeState.PROTECTED,
                TradeState.OPEN_UNPROTECTED,
            ):
                self.state = TradeState.BREAKEVEN
                return self._breakeven()
            return []
        return self._gone(self._reason_of(order.role))

    def _on_ended(self, order: TrackedOrder) -> list[TradeAction]:
        if order.status in ("ended", "filled"):
            return []
        was = order.status
        order.status = "ended"
        order.query = None
        if order.role == "entry":
            if order.executed > 0:
                order.status = "filled"
                return self._protect()  # a partial fill the exchange ended: protect what filled
            self._end_without_position("entry_expired")
            return []
        if (
            order.client_id == self.stop_id
            and was not in ("cancelling", "cancel_unknown")
            and self.state not in (TradeState.CLOSING, TradeState.CLOSED)
            and self.position > 0
        ):
            return self._replace_stop(order)
        return self._settle_flat() or self._finish_if_done()

    def _on_position(self, amount: Decimal, *, ask: bool = True) -> list[TradeAction]:
        if self.plan is None or amount != 0 or self.state == TradeState.CLOSED:
            return []
        self.flat_on_exchange = True
        unsettled = self._unsettled()
        if ask and unsettled and self.exit_reason is None and self._flat_asks < MAX_FLAT_ASKS:
            # A stop or take-profit of ours may have fired: the position ended by it, whose
            # execution (and so the exit's reason) can reach us after the position's change
            # (the stream reports it later; a poll saw it open just before it fired). Ask
            # for each; one still open on the exchange did not. The next flat report asks
            # again about the rest, a few times, then the exchange is taken to have ended it.
            self._flat_asks += 1
            actions: list[TradeAction] = []
            for order in unsettled:
                actions += self._ask(order)
            return actions
        return self._gone("exchange")

    def _unsettled(self) -> list[TrackedOrder]:
        """Our algo orders that may have made the position flat and have not said so."""
        return [
            o
            for o in self.orders.values()
            if o.is_algo
            and o.status in ("open", "triggered")
            and o.client_id not in self._still_open
        ]

    def _settle_flat(self) -> list[TradeAction]:
        """The position is flat and every order asked about it has answered without a fill:
        the exchange ended it (a liquidation, a manual close)."""
        if (
            self.flat_on_exchange
            and self.exit_reason is None
            and self.state not in (TradeState.CLOSING, TradeState.CLOSED)
            and not self._unsettled()
        ):
            return self._gone("exchange")
        return []

    # -- plan steps -----------------------------------------------------------------------

    def _protect(self) -> list[TradeAction]:
        """The entry is over with a fill: the exit plan and its protective orders."""
        entry = self.orders[self.entry_id]
        self.plan = plan_exits(
            self.signal,
            self.rule,
            self.rules,
            sized=self.sized,
            filled_qty=entry.executed,
            fill_price=entry.avg_price,
        )
        self.exit_reason = None  # a fill after an entry was given up: it is a position all the same
        self.state = TradeState.OPEN_UNPROTECTED
        actions: list[TradeAction] = []
        for algo in self.plan.protection():
            self.orders[algo.client_algo_id] = TrackedOrder(algo)
            actions.append(Place(algo))
        if self._close_asked is not None:
            actions += self._close(self._close_asked)
        return actions

    def _breakeven(self) -> list[TradeAction]:
        assert self.plan is not None
        order = self.plan.breakeven(self.position)
        if order is None or order.client_algo_id in self.orders:
            return []
        self.orders[order.client_algo_id] = TrackedOrder(order)
        return [Place(order)]

    def _replace_stop(self, ended: TrackedOrder) -> list[TradeAction]:
        assert self.plan is not None
        count = self._replacements.get(ended.role, 0) + 1
        if count > MAX_REPLACEMENTS:
            self.needs_attention = True
            return []
        self._replacements[ended.role] = count
        request = ended.request
        assert isinstance(request, AlgoOrder)
        replacement = replace(request, client_algo_id=client_id(self.plan.key, ended.role, count))
        self.orders[replacement.client_algo_id] = TrackedOrder(replacement)
        self.stop_id = replacement.client_algo_id
        if self.state == TradeState.PROTECTED:
            self.state = TradeState.OPEN_UNPROTECTED
        return [Place(replacement)]

    def _close(self, role: Literal["time_exit", "flatten"]) -> list[TradeAction]:
        if self.state == TradeState.CLOSED or self._closing_in_flight():
            return []
        if self.plan is None:
            # No fill yet: close as soon as there is one (never a reduce order before).
            if self.state in (TradeState.PENDING_ENTRY, TradeState.ENTRY_UNKNOWN):
                self._close_asked = role
            return []
        remaining = self.position
        if remaining <= 0:
            return self._gone(self._reason_of(role))
        count = self._replacements.get(role, 0)
        if count > MAX_REPLACEMENTS:
            self.needs_attention = True
            return []
        self._replacements[role] = count + 1
        order: MarketOrder = self.plan.close(role, remaining, count)
        self.orders[order.client_order_id] = TrackedOrder(order)
        self.state = TradeState.CLOSING
        return [Place(order)]

    def _at_market(self, refused: TrackedOrder) -> list[TradeAction]:
        """The price is already past the level of a stop or take-profit the exchange
        refused (``-2021``): the paper plan is out at that level on the first trade past
        it, so the live trade goes out now at market, for what that order was to close,
        under the same role (the same exit reason), and records the difference."""
        assert self.plan is not None
        request = refused.request
        assert isinstance(request, AlgoOrder)
        remaining = self.position
        quantity = remaining if request.quantity is None else min(request.quantity, remaining)
        if quantity <= 0:
            return []
        role = request.role
        count = self._replacements.get(role, 0) + 1
        if count > MAX_REPLACEMENTS:
            self.needs_attention = True
            return []
        self._replacements[role] = count
        self.forced.append(Difference(f"{role}_at_market", request.trigger_price, None))
        order = MarketOrder(
            symbol=request.symbol,
            side=request.side,
            quantity=quantity,
            reduce_only=True,
            client_order_id=client_id(self.plan.key, role, count),
            role=role,
        )
        self.orders[order.client_order_id] = TrackedOrder(order)
        return [Place(order)]

    def _reason_of(self, role: OrderRole) -> LiveExitReason:
        """The exit reason of a close by an order of ``role``: a flatten's says who asked."""
        return self._flatten_reason if role == "flatten" else _EXIT_REASONS[role]

    def _closing_in_flight(self) -> bool:
        return any(
            o.role in ("time_exit", "flatten") and o.status in ("sending", "unknown", "open")
            for o in self.orders.values()
        )

    def _gone(self, reason: LiveExitReason) -> list[TradeAction]:
        """The position is zero: record why, cancel every order left."""
        if self.exit_reason is None:
            self.exit_reason = reason
        self.state = TradeState.CLOSING
        actions: list[TradeAction] = []
        for order in self.orders.values():
            if order.is_algo and order.status == "open":
                order.status = "cancelling"
                actions.append(Cancel(order.client_id))
        return actions + self._finish_if_done()

    def _finish_if_done(self) -> list[TradeAction]:
        if self.state != TradeState.CLOSING or self.position > 0:
            return []
        busy = any(
            o.status in _LIVE_ALGO or (not o.is_algo and o.status in ("sending", "unknown"))
            for o in self.orders.values()
        )
        if not busy:
            self.state = TradeState.CLOSED
        return []

    def _end_without_position(self, reason: LiveExitReason) -> None:
        self.exit_reason = reason
        self.state = TradeState.CLOSED
