"""Take-profits the exchange refuses because the price is already past them (-2021,
"Order would immediately trigger"): the live plan keeps the paper plan's levels (from the
signal's price), and a level already crossed when its order is placed is taken at market,
as the paper takes it on the first trade past it, under the same exit reason, the
difference recorded on the trade."""

from __future__ import annotations

import aiohttp
import msgspec

from arbengine.runtime.clock import ManualClock
from arbengine.sim import SimServer
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_trade import TradeState
from tests.service.trading.conftest import a_signal, open_algos, positions
from tests.service.trading.test_live_exits import assert_closed, move


async def test_tp1_already_crossed_is_taken_at_market_then_the_breakeven_stop_stands(
    sim: SimServer,
    http: aiohttp.ClientSession,
    market_time: ManualClock,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    # A long signalled 1 % under the market: TP1 (+0.75 % of the signal) is under the price,
    # TP2 (+1.5 %) above it, the stop (−0.75 %) well under it.
    signal = await a_signal(http, sim)
    low = msgspec.structs.replace(signal, price=round(signal.price * 0.99, 1))
    trade_id = await executor.on_signal(low)
    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.plan is not None

    assert trade.state == TradeState.BREAKEVEN
    orders = await records.orders_of_trade(trade_id)
    [refused] = [o for o in orders if o.role == "tp1" and o.kind == "algo"]
    assert refused.status == "REJECTED"
    assert "-2021" in (refused.status_history[-1].note or "")
    [market] = [o for o in orders if o.role == "tp1" and o.kind == "order"]
    assert (market.type, market.status, market.reduce_only) == ("MARKET", "FILLED", True)
    assert trade.plan.tp1_quantity is not None
    assert market.filled_quantity == float(trade.plan.tp1_quantity)
    # What is left is protected by the breakeven stop and TP2, at the paper's levels.
    left = {trade.orders[a["clientAlgoId"]].role: a for a in await open_algos(http, sim)}
    assert sorted(left) == ["breakeven_sl", "tp2"]
    assert float(left["tp2"]["triggerPrice"]) == float(trade.plan.take_profit_2 or 0)
    remaining = (await positions(http, sim))["BTCUSDT"]
    assert remaining == trade.plan.quantity - trade.plan.tp1_quantity
    stored = await records.trade(trade_id)
    assert stored is not None
    [forced] = [d for d in stored.plan_differences if d.what == "tp1_at_market"]
    assert forced.paper == float(trade.plan.take_profit_1 or 0)
    assert forced.live is None
    assert "-2021" in forced.why

    await move(sim, http, market_time, -250)  # back through the breakeven stop
    await executor.poll_once()
    await assert_closed(executor, records, http, sim, trade_id, "breakeven")
    stored = await records.trade(trade_id)
    assert stored is not None
    assert [f.reason for f in stored.exit_fills] == ["tp1", "breakeven_sl"]


async def test_tp1_and_tp2_already_crossed_close_the_trade_as_tp1_then_tp2(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    # A long signalled 2 % under the market: both take-profits are under the price.
    signal = await a_signal(http, sim)
    low = msgspec.structs.replace(signal, price=round(signal.price * 0.98, 1))
    trade_id = await executor.on_signal(low)
    assert trade_id is not None

    await assert_closed(executor, records, http, sim, trade_id, "tp2")
    stored = await records.trade(trade_id)
    assert stored is not None
    assert [f.reason for f in stored.exit_fills] == ["tp1", "tp2"]
    assert {"tp1_at_market", "tp2_at_market"} <= {d.what for d in stored.plan_differences}
    assert stored.realised_r is not None
    # In at the market and out at once at the market: the fees, against the live entry
    # (the paper's R is against its own entry, 2 % lower: the entry slippage says so).
    assert -0.5 < stored.realised_r < 0
