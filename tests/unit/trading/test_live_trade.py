"""One live trade's state machine: each exit path, unknown outcomes, refusals, and the
property that no sequence of events (faults, duplicates, late answers) ever yields a
second entry for a signal."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.domain.control_rows import FlattenReason
from arbengine.trading.live_ids import client_id, parse_client_id
from arbengine.trading.live_plan import AlgoOrder, MarketOrder, trade_key
from arbengine.trading.live_sizing import Sized, size_entry
from arbengine.trading.live_trade import (
    Acked,
    Cancel,
    Ended,
    Filled,
    FlattenRequested,
    HoldExpired,
    LiveTrade,
    NotFound,
    OutcomeUnknown,
    Place,
    PositionChanged,
    Query,
    Rejected,
    TradeAction,
    TradeEvent,
    TradeState,
    Triggered,
)
from tests.support.live_examples import RISK, V52_EXIT, rules_for, signal

BTC = rules_for("BTCUSDT")
SIGNAL = signal(1, price=60_000.03, atr=123.45)
KEY = trade_key(SIGNAL)
ENTRY = client_id(KEY, "entry")
SL = client_id(KEY, "sl")
TP1 = client_id(KEY, "tp1")
TP2 = client_id(KEY, "tp2")
BE = client_id(KEY, "breakeven_sl")
FILL = Decimal("60010.5")
QTY = Decimal("0.540")


def new_trade() -> LiveTrade:
    sized = size_entry(
        SIGNAL, V52_EXIT, BTC, risk_usd=RISK, leverage=10, available_margin=Decimal(10**6)
    )
    assert isinstance(sized, Sized)
    assert sized.qty == QTY
    return LiveTrade(SIGNAL, V52_EXIT, BTC, sized)


def ids(actions: list[TradeAction]) -> list[tuple[str, str]]:
    """(kind, role) of each action, readable in assertions."""
    out = []
    for a in actions:
        if isinstance(a, Place):
            cid = (
                a.order.client_algo_id
                if isinstance(a.order, AlgoOrder)
                else a.order.client_order_id
            )
            kind = "place"
        else:
            cid, kind = a.client_id, type(a).__name__.lower()
        parsed = parse_client_id(cid)
        assert parsed is not None
        out.append(
            (
                kind,
                parsed.role if parsed.replacement == 0 else f"{parsed.role}#{parsed.replacement}",
            )
        )
    return out


def protected_trade() -> LiveTrade:
    trade = new_trade()
    trade.start()
    trade.on(Acked(ENTRY))
    trade.on(Filled(ENTRY, QTY, FILL))
    for cid in (SL, TP1, TP2):
        trade.on(Acked(cid))
    assert trade.state == TradeState.PROTECTED
    return trade


def test_a_fill_is_protected_by_sl_tp1_tp2_and_the_stop_ack_protects() -> None:
    trade = new_trade()
    assert ids(trade.start()) == [("place", "entry")]
    assert trade.start() == []  # never a second entry
    assert trade.on(Acked(ENTRY)) == []
    assert trade.state == TradeState.PENDING_ENTRY
    actions = trade.on(Filled(ENTRY, QTY, FILL))
    assert ids(actions) == [("place", "sl"), ("place", "tp1"), ("place", "tp2")]
    assert trade.state == TradeState.OPEN_UNPROTECTED
    assert trade.plan is not None
    assert trade.plan.entry_price == FILL
    assert trade.on(Acked(TP1)) == []
    assert trade.state == TradeState.OPEN_UNPROTECTED  # a take-profit is no protection
    trade.on(Acked(SL))
    assert trade.state == TradeState.PROTECTED
    assert trade.on(Filled(ENTRY, QTY, FILL)) == []  # the user stream repeats it: nothing new


def test_stop_loss_exit_cancels_the_take_profits_then_closes() -> None:
    trade = protected_trade()
    trade.on(Triggered(SL))
    assert ids(trade.on(Filled(SL, QTY, Decimal("59815")))) == [
        ("cancel", "tp1"),
        ("cancel", "tp2"),
    ]
    assert (trade.state, trade.exit_reason, trade.position) == (TradeState.CLOSING, "sl", 0)
    assert trade.on(Rejected(TP1, -2011, "Unknown order sent.")) == []  # already gone
    trade.on(Ended(TP2))
    assert trade.state == TradeState.CLOSED


def test_tp1_then_breakeven_stop_placed_before_the_first_is_cancelled_then_tp2() -> None:
    trade = protected_trade()
    actions = trade.on(Filled(TP1, Decimal("0.270"), Decimal("60191.2")))
    assert ids(actions) == [("place", "breakeven_sl")]
    (place,) = actions
    assert isinstance(place, Place)
    assert isinstance(place.order, AlgoOrder)
    assert (place.order.trigger_price, place.order.quantity) == (
        Decimal("60006.1"),
        Decimal("0.270"),
    )
    assert trade.state == TradeState.BREAKEVEN
    # The first stop stays until the new one is acknowledged: never a moment without one.
    assert ids(trade.on(Acked(BE))) == [("cancel", "sl")]
    assert trade.stop_id == BE
    assert trade.on(Ended(SL)) == []  # our own cancel: not replaced
    assert ids(trade.on(Filled(TP2, Decimal("0.270"), Decimal("60376.3")))) == [
        ("cancel", "breakeven_sl")
    ]
    assert trade.exit_reason == "tp2"
    trade.on(Ended(BE))
    assert trade.state == TradeState.CLOSED


def test_tp1_then_the_breakeven_stop_ends_it() -> None:
    trade = protected_trade()
    trade.on(Filled(TP1, Decimal("0.270"), Decimal("60191.2")))
    trade.on(Acked(BE))
    trade.on(Ended(SL))
    assert ids(trade.on(Filled(BE, Decimal("0.270"), Decimal("60006.1")))) == [("cancel", "tp2")]
    trade.on(Ended(TP2))
    assert (trade.state, trade.exit_reason) == (TradeState.CLOSED, "breakeven")


def test_time_exit_closes_what_is_left_at_market_keeping_the_stop_until_flat() -> None:
    trade = protected_trade()
    trade.on(Filled(TP1, Decimal("0.270"), Decimal("60191.2")))
    actions = trade.on(HoldExpired())
    assert ids(actions) == [("place", "time_exit")]
    (place,) = actions
    assert isinstance(place, Place)
    assert isinstance(place.order, MarketOrder)
    assert (place.order.quantity, place.order.reduce_only, place.order.side) == (
        Decimal("0.270"),
        True,
        "SELL",
    )
    assert trade.state == TradeState.CLOSING
    assert trade.on(HoldExpired()) == []  # one exit order in flight at a time
    exit_id = client_id(KEY, "time_exit")
    # The breakeven stop is not acknowledged yet: the first stop still stands and goes.
    assert ids(trade.on(Filled(exit_id, Decimal("0.270"), Decimal("60100")))) == [
        ("cancel", "sl"),
        ("cancel", "tp2"),
    ]
    assert (trade.exit_reason, trade.state) == ("max_hold", TradeState.CLOSING)
    # Its acknowledgement comes after the position is flat: it is cancelled at once.
    assert trade.on(Acked(BE)) == [Cancel(BE)]
    for cid in (SL, TP2, BE):
        trade.on(Ended(cid))
    assert trade.state == TradeState.CLOSED


def test_a_refused_stop_flattens_the_position() -> None:
    trade = new_trade()
    trade.start()
    trade.on(Filled(ENTRY, QTY, FILL))
    actions = trade.on(Rejected(SL, -1111, "Precision is over the maximum defined for this asset."))
    assert ids(actions) == [("place", "flatten")]
    flatten = client_id(KEY, "flatten")
    assert ids(trade.on(Acked(TP1))) == []
    assert ids(trade.on(Filled(flatten, QTY, Decimal("60000")))) == [("cancel", "tp1")]
    assert trade.exit_reason == "flatten"


@pytest.mark.parametrize("reason", ["manual_flatten", "risk_halt"])
def test_a_requested_flatten_ends_with_the_requesters_reason_the_first_one_standing(
    reason: FlattenReason,
) -> None:
    trade = protected_trade()
    assert ids(trade.on(FlattenRequested(reason))) == [("place", "flatten")]
    assert (
        trade.on(FlattenRequested("risk_halt" if reason == "manual_flatten" else "flatten")) == []
    )
    trade.on(Filled(client_id(KEY, "flatten"), QTY, Decimal("60000")))
    assert trade.exit_reason == reason


def test_a_take_profit_already_crossed_is_taken_at_market_another_refusal_keeps_the_stop() -> None:
    trade = new_trade()
    trade.start()
    trade.on(Filled(ENTRY, QTY, FILL))
    assert trade.on(Rejected(TP2, -4131, "PERCENT_PRICE")) == []
    [place] = trade.on(Rejected(TP1, -2021, "Order would immediately trigger."))
    assert ids([place]) == [("place", "tp1#1")]
    assert isinstance(place, Place)
    assert isinstance(place.order, MarketOrder)
    assert trade.plan is not None
    assert (place.order.quantity, place.order.reduce_only) == (trade.plan.tp1_quantity, True)
    assert [d.what for d in trade.forced] == ["tp1_at_market"]
    # Filled: TP1 as the paper's, and the breakeven stop follows.
    assert trade.plan.tp1_quantity is not None
    actions = trade.on(Filled(place.order.client_order_id, trade.plan.tp1_quantity, FILL))
    assert ids(actions) == [("place", "breakeven_sl")]
    assert trade.state == TradeState.BREAKEVEN


def test_a_flat_position_after_our_stop_fired_waits_for_the_stops_fill() -> None:
    trade = protected_trade()
    trade.on(Triggered(SL))
    # The position's change comes before the stop's execution: ask for the stop (and the
    # take-profits, which might have fired as well).
    queries = trade.on(PositionChanged(Decimal(0)))
    assert [q.client_id for q in queries if isinstance(q, Query)] == [SL, TP1, TP2]
    assert trade.exit_reason is None
    assert sorted(ids(trade.on(Filled(SL, QTY, Decimal("59800"))))) == [
        ("cancel", "tp1"),
        ("cancel", "tp2"),
    ]
    assert trade.exit_reason == "sl"


def test_a_flat_position_after_a_take_profit_a_poll_saw_open_waits_for_its_fill() -> None:
    # The poll asked TP2 (open), then the price ran through it, then the poll read the
    # position: flat, TP2 never reported as triggered. Its fill decides the reason.
    trade = protected_trade()
    trade.on(Filled(TP1, Decimal("0.270"), Decimal("60200")))
    assert trade.state == TradeState.BREAKEVEN
    queries = trade.on(PositionChanged(Decimal(0)))
    assert TP2 in [q.client_id for q in queries if isinstance(q, Query)]
    trade.on(Filled(TP2, Decimal("0.270"), Decimal("60400")))
    assert trade.exit_reason == "tp2"


def test_a_flat_position_whose_fired_stop_never_reports_is_the_exchanges_in_the_end() -> None:
    trade = protected_trade()
    trade.on(Triggered(SL))
    for cid in (TP1, TP2):
        trade.on(Ended(cid))
    for n in (1, 2, 3):
        assert trade.on(PositionChanged(Decimal(0))) == [Query(SL, algo=True, query=n)]
    trade.on(PositionChanged(Decimal(0)))
    assert trade.exit_reason == "exchange"


def test_unknown_entry_is_queried_and_resent_with_the_same_id_only_when_not_found() -> None:
    trade = new_trade()
    (first,) = trade.start()
    assert trade.on(OutcomeUnknown(ENTRY)) == [Query(ENTRY, algo=False, query=1)]
    assert trade.state == TradeState.ENTRY_UNKNOWN
    assert trade.on(OutcomeUnknown(ENTRY)) == []  # the same news twice: one query
    assert trade.on(NotFound(ENTRY, query=1)) == [first]  # the very same order, same id
    assert trade.state == TradeState.PENDING_ENTRY
    assert trade.on(OutcomeUnknown(ENTRY)) == [Query(ENTRY, algo=False, query=2)]
    assert trade.on(NotFound(ENTRY, query=1)) == []  # an old answer proves nothing now
    assert trade.on(NotFound(ENTRY, query=2)) == [first]
    trade.on(OutcomeUnknown(ENTRY))
    assert trade.on(NotFound(ENTRY, query=3)) == []  # third attempt was the last
    assert (trade.state, trade.exit_reason) == (TradeState.CLOSED, "entry_failed")


def test_unknown_entry_found_filled_is_protected_and_not_resent() -> None:
    trade = new_trade()
    trade.start()
    trade.on(OutcomeUnknown(ENTRY))
    assert ids(trade.on(Filled(ENTRY, QTY, FILL))) == [
        ("place", "sl"),
        ("place", "tp1"),
        ("place", "tp2"),
    ]
    assert trade.on(NotFound(ENTRY, query=1)) == []


def test_a_duplicate_id_refusal_means_it_exists_so_it_is_queried() -> None:
    trade = new_trade()
    trade.start()
    assert trade.on(Rejected(ENTRY, -4116, "ClientOrderId is duplicated.")) == [
        Query(ENTRY, algo=False, query=1)
    ]
    assert trade.state == TradeState.ENTRY_UNKNOWN


def test_a_refused_entry_ends_the_trade_without_a_position() -> None:
    trade = new_trade()
    trade.start()
    assert trade.on(Rejected(ENTRY, -2019, "Margin is insufficient.")) == []
    assert (trade.state, trade.exit_reason, trade.position) == (
        TradeState.CLOSED,
        "entry_rejected",
        0,
    )
    assert trade.on(OutcomeUnknown(ENTRY)) == []
    assert trade.start() == []


def test_unknown_protection_is_queried_then_resent_when_not_found() -> None:
    trade = new_trade()
    trade.start()
    trade.on(Filled(ENTRY, QTY, FILL))
    assert trade.on(OutcomeUnknown(SL)) == [Query(SL, algo=True, query=1)]
    (again,) = trade.on(NotFound(SL, query=1))
    assert isinstance(again, Place)
    assert isinstance(again.order, AlgoOrder)
    assert again.order.client_algo_id == SL
    trade.on(Acked(SL))
    assert trade.state == TradeState.PROTECTED


def test_an_unknown_cancel_is_queried_and_repeated_only_while_the_order_is_open() -> None:
    trade = protected_trade()
    trade.on(Filled(SL, QTY, Decimal("59815")))
    assert trade.on(OutcomeUnknown(TP1)) == [Query(TP1, algo=True, query=1)]
    assert trade.on(Acked(TP1)) == [Cancel(TP1)]  # still open: cancel again
    assert trade.on(OutcomeUnknown(TP1)) == [Query(TP1, algo=True, query=2)]
    assert trade.on(NotFound(TP1, query=2)) == []  # gone: nothing more to cancel
    trade.on(Ended(TP2))
    assert trade.state == TradeState.CLOSED


def test_a_stop_the_exchange_ends_while_the_position_is_open_is_placed_again() -> None:
    trade = protected_trade()
    actions = trade.on(Ended(SL))
    assert ids(actions) == [("place", "sl#1")]
    assert trade.state == TradeState.OPEN_UNPROTECTED
    trade.on(Acked(client_id(KEY, "sl", 1)))
    assert trade.state == TradeState.PROTECTED


def test_flatten_before_the_fill_waits_for_it_then_closes() -> None:
    trade = new_trade()
    trade.start()
    assert trade.on(FlattenRequested()) == []  # nothing to reduce yet
    assert ids(trade.on(Filled(ENTRY, QTY, FILL))) == [
        ("place", "sl"),
        ("place", "tp1"),
        ("place", "tp2"),
        ("place", "flatten"),
    ]


def test_a_partial_fill_the_exchange_ends_is_protected_for_what_filled() -> None:
    trade = new_trade()
    trade.start()
    assert trade.on(Filled(ENTRY, Decimal("0.2"), FILL, complete=False)) == []
    actions = trade.on(Ended(ENTRY))
    assert [a.order.role for a in actions if isinstance(a, Place)] == ["sl", "tp1", "tp2"]
    assert trade.plan is not None
    assert trade.plan.quantity == Decimal("0.2")
    assert trade.plan.tp1_quantity == Decimal("0.100")


def test_an_entry_that_expires_unfilled_ends_the_trade() -> None:
    trade = new_trade()
    trade.start()
    trade.on(Acked(ENTRY))
    assert trade.on(Ended(ENTRY)) == []
    assert (trade.state, trade.exit_reason) == (TradeState.CLOSED, "entry_expired")


def test_position_gone_behind_our_back_cancels_the_leftovers() -> None:
    trade = protected_trade()
    assert trade.on(PositionChanged(Decimal("0.540"))) == []
    # Did one of ours fire? Each is asked for; all still open: the exchange ended it.
    assert trade.on(PositionChanged(Decimal(0))) == [
        Query(SL, algo=True, query=1),
        Query(TP1, algo=True, query=2),
        Query(TP2, algo=True, query=3),
    ]
    for cid in (SL, TP1):
        assert trade.on(Acked(cid)) == []
    assert trade.exit_reason is None
    # The last answer settles it: the exchange ended the position.
    assert sorted(ids(trade.on(Acked(TP2)))) == [
        ("cancel", "sl"),
        ("cancel", "tp1"),
        ("cancel", "tp2"),
    ]
    assert trade.exit_reason == "exchange"
    for cid in (SL, TP1, TP2):
        trade.on(Ended(cid))
    assert (trade.state, trade.position) == (TradeState.CLOSED, 0)


def test_a_time_exit_with_nothing_left_to_reduce_means_flat() -> None:
    trade = protected_trade()
    trade.on(HoldExpired())
    exit_id = client_id(KEY, "time_exit")
    assert ids(trade.on(Rejected(exit_id, -2022, "ReduceOnly Order is rejected."))) == [
        ("cancel", "sl"),
        ("cancel", "tp1"),
        ("cancel", "tp2"),
    ]
    # Something else (a liquidation, a hand on the account) closed it first.
    assert (trade.state, trade.exit_reason, trade.position) == (TradeState.CLOSING, "exchange", 0)
    for cid in (SL, TP1, TP2):
        trade.on(Ended(cid))
    assert trade.state == TradeState.CLOSED


def test_a_refused_flatten_is_tried_again_then_left_to_a_person() -> None:
    trade = new_trade()
    trade.start()
    trade.on(Filled(ENTRY, QTY, FILL))
    assert ids(trade.on(Rejected(SL, -1111))) == [("place", "flatten")]
    for attempt in (1, 2):
        flatten = client_id(KEY, "flatten", attempt - 1)
        assert ids(trade.on(Rejected(flatten, -1111))) == [("place", f"flatten#{attempt}")]
    assert trade.on(Rejected(client_id(KEY, "flatten", 2), -1111)) == []
    assert trade.needs_attention
    assert trade.position == QTY


def test_events_about_other_orders_are_ignored() -> None:
    trade = protected_trade()
    assert trade.on(Filled("autoclose-1700000000000", QTY, FILL)) == []
    assert trade.on(Acked("web_123")) == []


# -- the property: one signal, at most one entry --------------------------------------------


class Exchange:
    """A worst-case exchange for the property: every accepted entry opens a position (no
    deduplication by client id after the fill), answers can be lost, and queries tell the
    truth."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.entries_executed = 0


PLACE_FATES = st.sampled_from(["ok", "lost_after_accept", "lost_before_accept", "refused"])
CANCEL_FATES = st.sampled_from(["ok", "lost", "unknown_order"])
NOISE = st.sampled_from(["none", "none", "duplicate", "duplicate", "hold", "flatten", "zero"])


@settings(max_examples=2500, deadline=None)
@given(data=st.data())
def test_no_sequence_of_events_yields_a_second_entry(data: st.DataObject) -> None:
    trade = new_trade()
    exchange = Exchange()
    queue: deque[TradeAction] = deque(trade.start())
    seen: list[TradeEvent] = []
    entry_ids: set[str] = set()
    for _ in range(80):
        if not queue:
            break
        action = queue.popleft()
        events: list[TradeEvent] = []
        if isinstance(action, Place):
            order = action.order
            cid = order.client_algo_id if isinstance(order, AlgoOrder) else order.client_order_id
            is_entry = order.role == "entry"
            if is_entry:
                entry_ids.add(cid)
            fate = data.draw(PLACE_FATES)
            if fate in ("ok", "lost_after_accept"):
                exchange.known.add(cid)
                if is_entry:
                    exchange.entries_executed += 1
            if fate == "ok":
                events.append(
                    Filled(cid, QTY, FILL) if not isinstance(order, AlgoOrder) else Acked(cid)
                )
            elif fate == "refused":
                events.append(
                    Rejected(cid, data.draw(st.sampled_from([-2019, -2021, -1111, -2022])))
                )
            else:
                events.append(OutcomeUnknown(cid))
        elif isinstance(action, Query):
            if action.client_id in exchange.known:
                events.append(
                    Acked(action.client_id) if action.algo else Filled(action.client_id, QTY, FILL)
                )
            else:
                events.append(NotFound(action.client_id, action.query))
        else:
            fate = data.draw(CANCEL_FATES)
            if fate == "ok":
                events.append(Ended(action.client_id))
            elif fate == "lost":
                events.append(OutcomeUnknown(action.client_id))
            else:
                events.append(Rejected(action.client_id, -2011))
        noise = data.draw(NOISE)
        if noise == "duplicate" and seen:
            # A recent event again (the user stream and a REST answer both report it, or
            # an answer arrives late): recent ones are the dangerous ones.
            events.append(data.draw(st.sampled_from(seen[-3:])))
        elif noise == "hold":
            events.append(HoldExpired())
        elif noise == "flatten":
            events.append(FlattenRequested())
        elif noise == "zero":
            events.append(PositionChanged(Decimal(0)))
        for event in events:
            seen.append(event)
            queue.extend(trade.on(event))
        assert exchange.entries_executed <= 1
    assert entry_ids <= {ENTRY}
    assert trade.entry_attempts <= trade.max_entry_attempts
    if not queue and trade.position > 0:
        # Whatever happened, an open position has a stop on its way or in place, or an
        # exit on its way, or the machine says it needs a person.
        live = {"sending", "unknown", "open", "triggered", "cancel_unknown"}
        stop = any(
            o.role in ("sl", "breakeven_sl") and o.status in live for o in trade.orders.values()
        )
        closing = any(
            o.role in ("time_exit", "flatten") and o.status in live for o in trade.orders.values()
        )
        assert stop or closing or trade.needs_attention, trade.orders


def test_a_first_stop_acknowledged_after_the_breakeven_stop_is_the_one_cancelled() -> None:
    trade = new_trade()
    trade.start()
    trade.on(Filled(ENTRY, QTY, FILL))
    trade.on(Filled(TP1, Decimal("0.270"), Decimal("60191.2")))  # before the stop's ack
    assert trade.state == TradeState.BREAKEVEN
    assert not trade.is_protected
    assert trade.on(Acked(BE)) == []  # the first stop is not open yet: nothing to cancel
    assert trade.is_protected
    assert trade.stop_id == BE
    assert trade.on(Acked(SL)) == [Cancel(SL)]
    assert trade.stop_id == BE


def test_a_breakeven_stop_the_exchange_ends_is_replaced_at_the_same_level() -> None:
    trade = protected_trade()
    trade.on(Filled(TP1, Decimal("0.270"), Decimal("60191.2")))
    trade.on(Acked(BE))
    trade.on(Ended(SL))
    (again,) = trade.on(Ended(BE))
    assert isinstance(again, Place)
    assert isinstance(again.order, AlgoOrder)
    assert again.order.client_algo_id == client_id(KEY, "breakeven_sl", 1)
    assert (again.order.trigger_price, again.order.quantity) == (
        Decimal("60006.1"),
        Decimal("0.270"),
    )
    assert trade.state == TradeState.BREAKEVEN
    assert not trade.is_protected
