"""The live exit plan: the paper's R levels on the tick grid, on the safe side, with
every difference the exchange forces recorded.

Worked example (BTCUSDT, tick 0.1, v52's exit): price 60 000.03, ATR 123.45, 1 bp slippage.
Long: e = 60 006.030003, R = 185.175, SL = 59 820.855003, TP1 = 60 191.205003,
TP2 = 60 376.380003. Short: e = 59 994.029997, SL = 60 179.204997, TP1 = 59 808.854997,
TP2 = 59 623.679997.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from arbengine.domain.engine_rows import ExitRule
from arbengine.trading.live_ids import client_id, parse_client_id
from arbengine.trading.live_plan import Difference, LivePlan, entry_order, plan_exits, trade_key
from arbengine.trading.live_rules import to_decimal
from arbengine.trading.live_sizing import Sized, size_entry
from arbengine.trading.paper import open_position
from tests.support.live_examples import RISK, T0, V52_EXIT, rules_for, signal

BTC = rules_for("BTCUSDT")
PLENTY = Decimal(10) ** 9


def sized_for(direction: int, price: float = 60_000.03, atr: float = 123.45) -> Sized:
    result = size_entry(
        signal(direction, price=price, atr=atr),
        V52_EXIT,
        BTC,
        risk_usd=RISK,
        leverage=10,
        available_margin=PLENTY,
    )
    assert isinstance(result, Sized)
    return result


def plan_for(direction: int, filled: str, fill_price: str, rule: ExitRule = V52_EXIT) -> LivePlan:
    return plan_exits(
        signal(direction, price=60_000.03, atr=123.45),
        rule,
        BTC,
        sized=sized_for(direction),
        filled_qty=Decimal(filled),
        fill_price=Decimal(fill_price),
    )


def test_long_levels_round_so_each_fires_no_later_than_the_papers() -> None:
    plan = plan_for(1, "0.540", "60010.5")
    assert plan.stop_loss == Decimal("59820.9")  # up: nearer the entry, loss ≤ R
    assert plan.take_profit_1 == Decimal("60191.2")  # down: reached whenever paper's is
    assert plan.take_profit_2 == Decimal("60376.3")
    assert plan.breakeven_stop == Decimal("60006.1")  # up, like every stop of a long
    assert plan.tp1_quantity == Decimal("0.270")
    assert plan.time_exit_at == T0 + 70 * 60_000


def test_short_levels_round_the_other_way() -> None:
    plan = plan_for(-1, "0.540", "59990.0")
    assert plan.stop_loss == Decimal("60179.2")
    assert plan.take_profit_1 == Decimal("59808.9")
    assert plan.take_profit_2 == Decimal("59623.7")
    assert plan.breakeven_stop == Decimal("59994.0")


def test_every_forced_difference_is_recorded_with_both_values() -> None:
    plan = plan_for(1, "0.540", "60010.5")
    assert plan.differences == (
        Difference("entry_price", Decimal("60006.030003"), Decimal("60010.5")),
        Difference("quantity", Decimal(100) / Decimal("185.175"), Decimal("0.540")),
        Difference("stop_loss", Decimal("59820.855003"), Decimal("59820.9")),
        Difference("take_profit_1", Decimal("60191.205003"), Decimal("60191.2")),
        Difference("take_profit_2", Decimal("60376.380003"), Decimal("60376.3")),
        Difference("breakeven_stop", Decimal("60006.030003"), Decimal("60006.1")),
    )


def test_levels_on_the_grid_and_an_exact_fill_record_no_level_difference() -> None:
    # 60 000 and ATR 200: e = 60 006, every level a whole number of ticks. 100 / 300 BTC
    # and half of 0.333 are not whole numbers of steps: those are the differences left.
    plan = plan_exits(
        signal(1),
        V52_EXIT,
        BTC,
        sized=sized_for(1, price=60_000.0, atr=200.0),
        filled_qty=Decimal("0.333"),
        fill_price=Decimal("60006.0"),
    )
    assert [d.what for d in plan.differences] == ["quantity", "tp1_quantity"]


def test_a_partial_fill_is_planned_for_what_filled_and_tp1_floored() -> None:
    plan = plan_for(1, "0.271", "60010.5")
    assert plan.quantity == Decimal("0.271")
    assert plan.tp1_quantity == Decimal("0.135")  # half of 0.271 = 0.1355, floored
    assert Difference("tp1_quantity", Decimal("0.1355"), Decimal("0.135")) in plan.differences
    assert Difference("quantity", Decimal(100) / Decimal("185.175"), Decimal("0.271")) in (
        plan.differences
    )


def test_a_tp1_too_small_to_place_is_left_out_and_recorded() -> None:
    plan = plan_for(1, "0.001", "60010.5")
    assert plan.take_profit_1 is None
    assert plan.tp1_quantity is None
    assert plan.breakeven_stop is None  # no TP1, so nothing moves the stop
    assert Difference("tp1_quantity", Decimal("0.0005"), None) in plan.differences
    assert [o.role for o in plan.protection()] == ["sl", "tp2"]


def test_protection_orders_have_the_algo_endpoints_shape() -> None:
    plan = plan_for(1, "0.540", "60010.5")
    key = trade_key(signal(1, price=60_000.03, atr=123.45))
    sl, tp1, tp2 = plan.protection()
    assert sl.params() == {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_MARKET",
        "triggerPrice": "59820.9",
        "workingType": "CONTRACT_PRICE",
        "clientAlgoId": client_id(key, "sl"),
        "closePosition": "true",
    }
    assert tp1.params() == {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "TAKE_PROFIT_MARKET",
        "triggerPrice": "60191.2",
        "workingType": "CONTRACT_PRICE",
        "clientAlgoId": client_id(key, "tp1"),
        "quantity": "0.27",
        "reduceOnly": "true",
    }
    assert (tp2.type, tp2.close_position, tp2.params()["triggerPrice"]) == (
        "TAKE_PROFIT_MARKET",
        True,
        "60376.3",
    )
    assert "quantity" not in tp2.params()
    assert "reduceOnly" not in tp2.params()


def test_the_breakeven_stop_is_a_reduce_only_quantity_and_the_closes_are_market() -> None:
    plan = plan_for(-1, "0.540", "59990.0")
    be = plan.breakeven(Decimal("0.270"))
    assert be is not None
    assert (be.side, be.type, be.quantity, be.close_position) == (
        "BUY",
        "STOP_MARKET",
        Decimal("0.270"),
        False,
    )
    parsed = parse_client_id(be.client_algo_id)
    assert parsed is not None
    assert parsed.role == "breakeven_sl"
    exit_order = plan.close("time_exit", Decimal("0.270"))
    assert exit_order.params() == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.27",
        "newClientOrderId": client_id(plan.key, "time_exit"),
        "newOrderRespType": "RESULT",
        "reduceOnly": "true",
    }


def test_the_entry_is_a_market_order_with_the_signals_id() -> None:
    s = signal(1, price=60_000.03, atr=123.45)
    order = entry_order(s, sized_for(1))
    assert order.params() == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.54",
        "newClientOrderId": client_id(trade_key(s), "entry"),
        "newOrderRespType": "RESULT",
    }


def test_tp1_of_the_whole_position_closes_it_and_needs_no_tp2_or_breakeven() -> None:
    rule = ExitRule(
        sl_atr=1.5, tp1_atr=1.5, tp1_fraction=1.0, tp2_atr=3.0, breakeven_after_tp1=True
    )
    plan = plan_for(1, "0.540", "60010.5", rule)
    assert [(o.role, o.close_position) for o in plan.protection()] == [
        ("sl", True),
        ("tp1", True),
    ]
    assert plan.breakeven_stop is None


def test_no_fill_no_plan() -> None:
    with pytest.raises(ValueError, match="filled quantity"):
        plan_for(1, "0", "60000")


@settings(max_examples=400, deadline=None)
@given(
    direction=st.sampled_from([1, -1]),
    price=st.floats(min_value=1_000, max_value=400_000),
    atr_fraction=st.floats(min_value=1e-4, max_value=0.02),
    sl_atr=st.floats(min_value=0.2, max_value=4),
    tp1_atr=st.floats(min_value=0.2, max_value=4),
    tp2_extra=st.floats(min_value=0, max_value=4),
    slippage=st.floats(min_value=0, max_value=10),
)
def test_live_triggers_are_the_paper_levels_within_one_tick_on_the_safe_side(
    direction: int,
    price: float,
    atr_fraction: float,
    sl_atr: float,
    tp1_atr: float,
    tp2_extra: float,
    slippage: float,
) -> None:
    rule = ExitRule(
        sl_atr=sl_atr,
        tp1_atr=tp1_atr,
        tp1_fraction=0.5,
        tp2_atr=tp1_atr + tp2_extra,
        breakeven_after_tp1=True,
        slippage_bps=slippage,
    )
    s = signal(direction, price=price, atr=price * atr_fraction)
    sized = size_entry(s, rule, BTC, risk_usd=Decimal(1000), leverage=1, available_margin=PLENTY)
    assume(isinstance(sized, Sized))
    assert isinstance(sized, Sized)
    plan = plan_exits(s, rule, BTC, sized=sized, filled_qty=sized.qty, fill_price=sized.entry)
    paper = open_position(
        strategy=s.strategy,
        strategy_hash=s.strategy_hash,
        symbol=s.symbol,
        direction=direction,
        tick=s.tick_ms,
        price=s.price,
        atr=s.atr,
        rule=rule,
    )
    tick = BTC.tick
    d = direction

    def on_grid(value: Decimal) -> bool:
        return (value - BTC.min_price) % tick == 0

    # Stops: towards the position's direction (no more loss than the paper's).
    for live, level in (
        (plan.stop_loss, paper.stop_loss),
        (plan.breakeven_stop, paper.entry_price),
    ):
        assert live is not None
        assert on_grid(live)
        assert 0 <= d * (live - to_decimal(level)) < tick
    # Take-profits: against it (reached whenever the paper's level is).
    for live_tp, level_tp in (
        (plan.take_profit_1, paper.take_profit_1),
        (plan.take_profit_2, paper.take_profit_2),
    ):
        if live_tp is None:
            continue  # TP1 too small to place: recorded as a difference instead
        assert level_tp is not None
        assert on_grid(live_tp)
        assert 0 <= -d * (live_tp - to_decimal(level_tp)) < tick
    # Every order of the plan is a whole number of steps and never more than the position.
    for order in plan.protection():
        if order.quantity is not None:
            assert order.quantity % BTC.market_lot.step == 0
            assert 0 < order.quantity <= plan.quantity
