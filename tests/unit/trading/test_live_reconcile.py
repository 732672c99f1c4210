"""Reconciliation's decisions: worked examples of each rule, and properties over any mix
of positions, trades and orders."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from arbengine.domain.live_rows import LiveOrderRow, LiveTradeRow
from arbengine.trading.live_ids import TradeKey, client_id, parse_client_id
from arbengine.trading.live_reconcile import (
    AlertOrphan,
    CancelLeftover,
    CloseWithFills,
    Decision,
    ExchangeOrder,
    ExchangePosition,
    ExchangeView,
    FlattenOrphan,
    MarkOrderGone,
    OpenPending,
    ProtectOrphan,
    RecordsView,
    RestoreStop,
    SettlePending,
    reconcile,
)
from tests.support.live_examples import rules_for

BTC = rules_for("BTCUSDT")
RULES = {"BTCUSDT": BTC}
RISK = Decimal(10)
NOW = 1_767_225_600_000
TICK = 1_767_225_000_000
KEY = TradeKey("v52", "BTCUSDT", TICK)


def a_trade(trade_id: int = 7, symbol: str = "BTCUSDT", status: str = "open") -> LiveTradeRow:
    return LiveTradeRow(
        id=trade_id,
        strategy="v52",
        strategy_hash="h" * 64,
        symbol=symbol,
        signal_tick=TICK,
        direction=1,
        status=status,  # type: ignore[arg-type]
        quantity=0.01,
        entry_price=60_000.0,
        stop_price=59_100.04,
        r_distance=900.0,
        risk_usd=9.0,
    )


def a_position(amount: str, symbol: str = "BTCUSDT", mark: str = "60000") -> ExchangePosition:
    return ExchangePosition(symbol, Decimal(amount), Decimal("60000"), Decimal(mark))


def a_stop(symbol: str = "BTCUSDT", side: str = "SELL", cid: str = "x1") -> ExchangeOrder:
    return ExchangeOrder(cid, symbol, side, "STOP_MARKET", True, False, True)


def an_order_row(cid: str, status: str = "NEW", trade_id: int | None = 7) -> LiveOrderRow:
    return LiveOrderRow(
        client_order_id=cid,
        kind="algo",
        role="sl",
        symbol="BTCUSDT",
        side="SELL",
        type="STOP_MARKET",
        status=status,
        status_time=NOW,
        trade_id=trade_id,
        close_position=True,
    )


def decide(
    positions: list[ExchangePosition],
    orders: list[ExchangeOrder],
    trades: list[LiveTradeRow],
    order_rows: list[LiveOrderRow] = [],  # noqa: B006 - never mutated
    policy: str = "protect",
    driven: tuple[int, ...] = (),
) -> list[Decision]:
    return reconcile(
        ExchangeView(tuple(positions), tuple(orders)),
        RecordsView(tuple(trades), tuple(order_rows)),
        orphan_policy=policy,  # type: ignore[arg-type]
        risk_per_trade_usd=RISK,
        rules=RULES,
        now_ms=NOW,
        driven=driven,
    )


def test_a_protected_position_of_ours_needs_nothing() -> None:
    assert decide([a_position("0.010")], [a_stop()], [a_trade()]) == []


def test_an_unprotected_position_of_ours_gets_its_stop_back_under_a_new_id() -> None:
    first_stop = an_order_row(client_id(KEY, "sl"), status="EXPIRED")
    [decision] = decide([a_position("0.010")], [], [a_trade()], [first_stop])

    assert isinstance(decision, RestoreStop)
    assert decision.trade_id == 7
    order = decision.order
    assert (order.side, order.type, order.close_position) == ("SELL", "STOP_MARKET", True)
    assert order.trigger_price == Decimal("59100.1")  # the recorded stop, up onto the tick
    parsed = parse_client_id(order.client_algo_id)
    assert parsed is not None
    assert parsed.belongs_to(KEY)
    assert (parsed.role, parsed.replacement) == ("sl", 1)


def test_a_take_profit_is_not_protection() -> None:
    tp = ExchangeOrder("t", "BTCUSDT", "SELL", "TAKE_PROFIT_MARKET", True, False, True)
    [decision] = decide([a_position("0.010")], [tp], [a_trade()])
    assert isinstance(decision, RestoreStop)


def test_an_orphan_under_protect_gets_a_stop_at_the_risk_distance() -> None:
    # 10 USD over 0.005 BTC: 2 000 below the entry of 60 000.
    [decision] = decide([a_position("0.005")], [], [])

    assert isinstance(decision, ProtectOrphan)
    assert decision.order.trigger_price == Decimal("58000.0")
    assert decision.order.side == "SELL"
    assert decision.order.close_position
    assert decision.order.client_algo_id.startswith("ar")
    assert parse_client_id(decision.order.client_algo_id) is None


def test_a_short_orphan_gets_its_stop_above_rounded_down_to_the_tick() -> None:
    # 10 / 0.003 = 3 333.33…: 63 333.33… rounded down (nearer the entry) to 63 333.3.
    [decision] = decide([a_position("-0.003")], [], [])
    assert isinstance(decision, ProtectOrphan)
    assert decision.order.trigger_price == Decimal("63333.3")
    assert decision.order.side == "BUY"


def test_an_orphan_past_its_stop_already_is_flattened() -> None:
    [decision] = decide([a_position("0.005", mark="57000")], [], [])
    assert isinstance(decision, FlattenOrphan)
    assert decision.reason == "stop_already_crossed"


def test_an_orphan_under_flatten_gets_a_reduce_only_market_order() -> None:
    [decision] = decide([a_position("-0.004")], [], [], policy="flatten")
    assert isinstance(decision, FlattenOrphan)
    order = decision.order
    assert (order.side, order.quantity, order.reduce_only) == ("BUY", Decimal("0.004"), True)


def test_an_orphan_under_alert_is_only_reported() -> None:
    assert decide([a_position("0.005")], [], [], policy="alert") == [
        AlertOrphan("BTCUSDT", Decimal("0.005"))
    ]


def test_an_orphan_with_a_stop_already_is_left_alone_unless_flattening() -> None:
    assert decide([a_position("0.005")], [a_stop()], []) == []
    [decision] = decide([a_position("0.005")], [a_stop()], [], policy="flatten")
    assert isinstance(decision, FlattenOrphan)


def test_a_trade_whose_position_is_gone_is_closed_and_its_orders_marked() -> None:
    stop = an_order_row(client_id(KEY, "sl"))
    decisions = decide([], [], [a_trade()], [stop])
    assert decisions == [
        CloseWithFills(7, "BTCUSDT"),
        MarkOrderGone(stop.client_order_id, "BTCUSDT", True, 7),
    ]


def test_a_pending_trade_without_a_position_is_settled_by_its_entry() -> None:
    # Killed before the entry got there, or opened and ended while nobody drove it.
    tp = an_order_row(client_id(KEY, "tp1"))
    open_tp = ExchangeOrder(tp.client_order_id, "BTCUSDT", "SELL", "TAKE_PROFIT_MARKET", False,
                            True, True)  # fmt: skip
    assert decide([], [open_tp], [a_trade(status="pending")], [tp]) == [
        SettlePending(7, "BTCUSDT"),
        CancelLeftover(tp.client_order_id, "BTCUSDT", 7),
    ]


def test_a_pending_trade_whose_stop_stands_is_opened_and_left_protected() -> None:
    stop = a_stop("BTCUSDT", "SELL", client_id(KEY, "sl"))
    assert decide([a_position("0.010")], [stop], [a_trade(status="pending")]) == [
        OpenPending(7, "BTCUSDT")
    ]


def test_a_pending_trade_with_a_position_gets_its_stop() -> None:
    # The entry filled, and the process was killed before it wrote the fill or the stop.
    [decision] = decide([a_position("0.010")], [], [a_trade(status="pending")])
    assert isinstance(decision, RestoreStop)
    assert decision.order.client_algo_id == client_id(KEY, "sl", 1)


def test_a_trade_the_executor_drives_is_its_own() -> None:
    stop = an_order_row(client_id(KEY, "sl"), status="PENDING")
    assert decide([a_position("0.010")], [], [a_trade()], [stop], driven=(7,)) == []
    assert decide([], [], [a_trade()], [stop], driven=(7,)) == []


SYMBOLS = st.sampled_from(["BTCUSDT", "ETHUSDT"])


@given(
    positions=st.dictionaries(SYMBOLS, st.sampled_from(["0.010", "-0.010", "0.004"])),
    stopped=st.sets(SYMBOLS),
    traded=st.sets(SYMBOLS),
    driven=st.booleans(),
    policy=st.sampled_from(["protect", "flatten", "alert"]),
)
def test_every_position_ends_protected_or_acted_on_once_and_driven_trades_are_untouched(
    positions: dict[str, str],
    stopped: set[str],
    traded: set[str],
    driven: bool,
    policy: str,
) -> None:
    trades = [a_trade(i, s) for i, s in enumerate(sorted(traded), start=1)]
    driven_ids = tuple(t.id for t in trades if t.id is not None) if driven else ()
    pos = [a_position(a, s) for s, a in positions.items()]
    orders = [
        a_stop(s, "SELL" if Decimal(positions.get(s, "1")) > 0 else "BUY", f"x{s}") for s in stopped
    ]
    decisions = decide(pos, orders, trades, policy=policy, driven=driven_ids)

    symbols = [d.symbol for d in decisions]
    assert len(symbols) == len(set(symbols))  # one decision per symbol at most
    for d in decisions:
        if isinstance(d, RestoreStop | CloseWithFills):
            assert d.trade_id not in driven_ids
    for symbol in positions:
        acted = symbol in symbols
        if symbol in traded:
            # Ours: a stop is restored exactly when none stands and nobody drives it.
            assert acted == (symbol not in stopped and not driven)
        else:
            # An orphan: stopped ones are left alone except to flatten them.
            assert acted == (symbol not in stopped or policy == "flatten")
    for symbol in traded - set(positions):
        assert (CloseWithFills in {type(d) for d in decisions if d.symbol == symbol}) != driven


def test_the_algo_orders_left_of_a_trade_closed_on_the_exchange_are_cancelled() -> None:
    tp = an_order_row(client_id(KEY, "tp1"))
    stop = an_order_row(client_id(KEY, "sl"))
    open_tp = ExchangeOrder(tp.client_order_id, "BTCUSDT", "SELL", "TAKE_PROFIT_MARKET", False,
                            True, True)  # fmt: skip
    decisions = decide([], [open_tp], [a_trade()], [tp, stop])
    assert decisions == [
        CloseWithFills(7, "BTCUSDT"),
        CancelLeftover(tp.client_order_id, "BTCUSDT", 7),
        MarkOrderGone(stop.client_order_id, "BTCUSDT", True, 7),
    ]


def test_after_tp1_the_breakeven_stop_is_restored_not_the_wider_first_one() -> None:
    first = an_order_row(client_id(KEY, "sl"), status="CANCELED")
    breakeven = msgspec.structs.replace(
        an_order_row(client_id(KEY, "breakeven_sl"), status="CANCELED"),
        role="breakeven_sl",
        trigger_price=60_006.1,
        close_position=False,
        reduce_only=True,
    )
    [decision] = decide([a_position("0.005")], [], [a_trade()], [first, breakeven])

    assert isinstance(decision, RestoreStop)
    order = decision.order
    assert order.trigger_price == Decimal("60006.1")
    assert (order.quantity, order.close_position) == (Decimal("0.005"), False)
    assert order.client_algo_id == client_id(KEY, "breakeven_sl", 1)


def test_a_refused_breakeven_stop_leaves_the_first_stop_to_restore() -> None:
    breakeven = msgspec.structs.replace(
        an_order_row(client_id(KEY, "breakeven_sl"), status="REJECTED"), trigger_price=60_006.1
    )
    [decision] = decide([a_position("0.005")], [], [a_trade()], [breakeven])
    assert isinstance(decision, RestoreStop)
    assert decision.order.client_algo_id == client_id(KEY, "sl", 1)
