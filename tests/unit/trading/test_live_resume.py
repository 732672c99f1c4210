"""A live trade rebuilt from its order records (a restart): for each state, the rebuilt
machine is the one that wrote the records (the same state, orders, plan) and goes on the
same way (the same next actions and client ids); what was under way is asked about."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from arbengine.domain.live_rows import PENDING, UNKNOWN, LiveOrderRow, StatusChange
from arbengine.trading.live_ids import client_id
from arbengine.trading.live_resume import NotResumable, rebuild, unfinished
from arbengine.trading.live_trade import (
    Acked,
    Cancel,
    Ended,
    Filled,
    HoldExpired,
    LiveTrade,
    NotFound,
    OutcomeUnknown,
    Place,
    Query,
    Rejected,
    TradeAction,
    TradeEvent,
    TradeState,
)
from arbengine.trading.live_wire import OrderReport, order_row, request_client_id
from tests.support.live_examples import V52_EXIT
from tests.unit.trading.test_live_trade import (
    BE,
    BTC,
    ENTRY,
    FILL,
    KEY,
    QTY,
    SIGNAL,
    SL,
    TP1,
    TP2,
    ids,
    new_trade,
)

ZERO = Decimal(0)


@dataclass
class Recorded:
    """The machine driven as the executor drives it, its orders stored as the executor
    stores them: PENDING before a placement is sent, then each status heard."""

    trade: LiveTrade = field(default_factory=new_trade)
    rows: dict[str, LiveOrderRow] = field(default_factory=dict)
    clock: int = 1_000

    def __post_init__(self) -> None:
        self.did(self.trade.start())

    def did(self, actions: list[TradeAction]) -> list[TradeAction]:
        for action in actions:
            if isinstance(action, Place):
                self.store(request_client_id(action.order), PENDING)
        return actions

    def store(
        self, cid: str, status: str, qty: Decimal = ZERO, price: Decimal = ZERO, note: str = ""
    ) -> None:
        self.clock += 1
        order = self.trade.orders[cid].request
        row = order_row(
            order,
            status=status,
            status_time=self.clock // 100,  # ms: changes in one ms, as on a fast exchange
            trade_id=1,
            report=OrderReport(cid, status, qty, price),
        )
        before = self.rows.get(cid)
        history = [] if before is None else list(before.status_history)
        if before is None or before.status != status:
            history.append(StatusChange(status, row.status_time, note or None, self.clock))
        self.rows[cid] = msgspec.structs.replace(row, status_history=history)

    def hear(
        self,
        event: TradeEvent,
        status: str | None = None,
        qty: Decimal = ZERO,
        price: Decimal = ZERO,
        note: str = "",
    ) -> list[TradeAction]:
        cid = getattr(event, "client_id", None)
        if status is not None and isinstance(cid, str):
            self.store(cid, status, qty, price, note)
        return self.did(self.trade.on(event))

    def rebuilt(self) -> LiveTrade:
        trade = rebuild(SIGNAL, V52_EXIT, BTC, self.trade.sized, list(self.rows.values()))
        assert isinstance(trade, LiveTrade), trade
        return trade


def assert_same(rebuilt: LiveTrade, original: LiveTrade) -> None:
    def orders(t: LiveTrade) -> dict[str, tuple[str, Decimal, int | None]]:
        return {cid: (o.status, o.executed, o.query) for cid, o in t.orders.items()}

    assert rebuilt.state == original.state
    assert orders(rebuilt) == orders(original)
    assert (rebuilt.stop_id, rebuilt.exit_reason, rebuilt.entry_attempts) == (
        original.stop_id,
        original.exit_reason,
        original.entry_attempts,
    )
    assert rebuilt.plan == original.plan
    assert rebuilt.forced == original.forced
    assert rebuilt.position == original.position


def protected() -> Recorded:
    r = Recorded()
    r.hear(Filled(ENTRY, QTY, FILL), "FILLED", QTY, FILL)
    for cid in (SL, TP1, TP2):
        r.hear(Acked(cid), "NEW")
    assert r.trade.state == TradeState.PROTECTED
    return r


def test_a_pending_trade_whose_entry_is_unknown_asks_again_then_resends_the_same_id() -> None:
    r = Recorded()
    r.hear(OutcomeUnknown(ENTRY), "UNKNOWN")
    r.hear(NotFound(ENTRY, 1), "NOT_FOUND")  # sent again: the second attempt
    r.did([Place(r.trade.orders[ENTRY].request)])
    r.hear(OutcomeUnknown(ENTRY), UNKNOWN)
    assert (r.trade.state, r.trade.entry_attempts) == (TradeState.ENTRY_UNKNOWN, 2)

    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert unfinished(trade) == [Query(ENTRY, False, 2)]  # the query nobody answered
    # Not found again: the third and last attempt, under the same id, on both.
    assert trade.on(NotFound(ENTRY, 2)) == r.trade.on(NotFound(ENTRY, 2))
    assert ids(trade.on(NotFound(ENTRY, 2))) == []
    assert_same(trade, r.trade)
    assert trade.entry_attempts == 3


def test_an_open_protected_trade_with_a_replaced_stop_replaces_it_under_the_next_id() -> None:
    r = protected()
    r.hear(Ended(SL), "CANCELED")  # the exchange ended the stop: placed again
    sl1 = client_id(KEY, "sl", 1)
    r.hear(Acked(sl1), "NEW")
    assert r.trade.stop_id == sl1

    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert trade.state == TradeState.PROTECTED
    assert unfinished(trade) == []
    actions = trade.on(Ended(sl1))
    assert actions == r.trade.on(Ended(sl1))
    assert ids(actions) == [("place", "sl#2")]


def test_a_trade_moved_to_breakeven_takes_its_time_exit_under_the_first_id() -> None:
    r = protected()
    tp1_qty = Decimal("0.270")
    r.hear(Filled(TP1, tp1_qty, Decimal("60500")), "FINISHED", tp1_qty, Decimal("60500"))
    cancel = r.hear(Acked(BE), "NEW")
    assert ids(cancel) == [("cancel", "sl")]
    r.hear(Ended(SL), "CANCELED")
    assert (r.trade.state, r.trade.stop_id) == (TradeState.BREAKEVEN, BE)

    trade = r.rebuilt()
    assert_same(trade, r.trade)
    actions = trade.on(HoldExpired())
    assert actions == r.trade.on(HoldExpired())
    assert ids(actions) == [("place", "time_exit")]


def test_a_breakeven_stop_acked_while_down_has_the_first_stop_cancelled_on_resume() -> None:
    r = protected()
    r.hear(Filled(TP1, Decimal("0.270"), Decimal("60500")), "FINISHED", Decimal("0.270"))
    r.hear(Acked(BE), "NEW")  # the first stop's cancel asked for: the process dies

    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert trade.orders[SL].status == "cancelling"
    # Never heard of: asked about, and cancelled again while it is still open.
    assert unfinished(trade) == [Query(SL, True, 1)]
    assert ids(trade.on(Acked(SL))) == [("cancel", "sl")]


def test_a_closing_trade_whose_time_exit_was_refused_retries_under_the_next_id() -> None:
    r = protected()
    r.hear(Filled(TP1, Decimal("0.270"), Decimal("60500")), "FINISHED", Decimal("0.270"))
    r.hear(Acked(BE), "NEW")
    r.hear(Ended(SL), "CANCELED")
    r.hear(HoldExpired())
    te0, te1 = client_id(KEY, "time_exit", 0), client_id(KEY, "time_exit", 1)
    note = "POST /fapi/v1/order: HTTP 400 code -1008: Server is currently overloaded"
    r.hear(Rejected(te0, -1008, note), "REJECTED", note=note)
    r.hear(OutcomeUnknown(te1), UNKNOWN)
    assert r.trade.state == TradeState.CLOSING

    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert unfinished(trade) == [Query(te1, False, 1)]
    actions = trade.on(Rejected(te1, -1008, note))
    assert actions == r.trade.on(Rejected(te1, -1008, note))
    assert ids(actions) == [("place", "time_exit#2")]


def test_a_closed_position_with_cancels_unanswered_is_closed_after_asking() -> None:
    r = protected()
    sl_fill = Decimal("59815")
    cancels = r.hear(Filled(SL, QTY, sl_fill), "FINISHED", QTY, sl_fill)
    assert ids(cancels) == [("cancel", "tp1"), ("cancel", "tp2")]

    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert (trade.state, trade.exit_reason) == (TradeState.CLOSING, "sl")
    queries = unfinished(trade)
    assert queries == [Query(TP1, True, 1), Query(TP2, True, 2)]
    trade.on(Ended(TP1))
    trade.on(NotFound(TP2, 2))
    assert trade.state == TradeState.CLOSED


def test_an_order_the_trade_would_not_have_placed_is_not_resumed() -> None:
    r = protected()
    rows = list(r.rows.values())
    be = msgspec.structs.replace(
        rows[1], client_order_id=BE, role="breakeven_sl", status_history=rows[1].status_history
    )
    result = rebuild(SIGNAL, V52_EXIT, BTC, r.trade.sized, [*rows, be])
    assert isinstance(result, NotResumable)
    assert BE in result.reason
    assert "not one the trade would have placed" in result.reason


def test_a_cancel_is_left_alone_until_asked() -> None:
    """A cancel the machine asks for while replaying is not sent: it was (its answer is
    in the records) or it is asked about first (``unfinished``)."""
    r = protected()
    r.hear(Filled(SL, QTY, FILL), "FINISHED", QTY, FILL)
    r.hear(Ended(TP1), "CANCELED")
    r.hear(Ended(TP2), "CANCELED")
    assert r.trade.state == TradeState.CLOSED
    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert not any(isinstance(a, Cancel) for a in unfinished(trade))


def test_an_entry_sent_without_an_answer_is_asked_for_not_sent_again() -> None:
    r = Recorded()  # PENDING written, then the process ended
    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert trade.entry_attempts == 1
    assert unfinished(trade) == [Query(ENTRY, False, 1)]
    assert trade.state == TradeState.ENTRY_UNKNOWN


def test_a_take_profit_refused_as_crossed_was_taken_at_market_under_its_next_id() -> None:
    r = Recorded()
    r.hear(Filled(ENTRY, QTY, FILL), "FILLED", QTY, FILL)
    r.hear(Acked(SL), "NEW")
    note = "POST /fapi/v1/algoOrder: HTTP 400 code -2021: Order would immediately trigger."
    at_market = r.hear(Rejected(TP1, -2021, note), "REJECTED", note=note)
    assert ids(at_market) == [("place", "tp1#1")]
    tp1_1 = client_id(KEY, "tp1", 1)
    r.hear(Filled(tp1_1, Decimal("0.270"), FILL), "FILLED", Decimal("0.270"), FILL)
    r.hear(Acked(TP2), "NEW")

    trade = r.rebuilt()
    assert_same(trade, r.trade)
    assert [d.what for d in trade.forced] == ["tp1_at_market"]
    assert trade.state == TradeState.BREAKEVEN
    assert unfinished(trade) == unfinished(r.trade)
