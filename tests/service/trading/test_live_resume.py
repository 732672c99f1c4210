"""A restart on the simulated exchange: executor A opens a trade and is dropped (nothing
cleaned up on the exchange, as after a SIGKILL or a deploy); the market moves while no
one runs; executor B resumes the trade from the records and drives it on. Never a second
entry, and one position or none."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import aiohttp

from arbengine.domain.live_rows import LiveEventRow
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.clock import ManualClock
from arbengine.sim import SimServer
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_reconcile import CloseWithFills
from arbengine.trading.live_reconciler import LiveReconciler, ReconcileSettings
from arbengine.trading.live_trade import TradeState
from tests.service.trading.conftest import (
    RISK_USD,
    advance,
    entry_orders,
    make_executor,
    open_algos,
    positions,
)
from tests.service.trading.test_live_exits import assert_closed, move, opened
from tests.support.live_examples import V52_EXIT


async def events(records: LiveRecords, kind: str) -> list[LiveEventRow]:
    now = datetime.now(UTC)
    rows = await records.events_between(now - timedelta(hours=1), now + timedelta(hours=1))
    return [e for e in rows if e.kind == kind]


async def test_tp1_hit_while_down_moves_the_resumed_trade_to_breakeven(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    first = executor.trade(trade_id)
    assert first is not None
    await move(sim, http, market_time, 100)  # past TP1 (0.75 %), short of TP2: no one runs
    half = await positions(http, sim)
    assert 0 < half["BTCUSDT"] < first.position  # TP1 filled on the exchange

    later = make_executor(rest, records, clock=market_time)
    assert await later.resume() == [trade_id]
    [resumed] = await events(records, "trade.resumed")
    assert resumed.detail["trade_id"] == trade_id
    assert resumed.detail["state"] == "protected"
    orders = resumed.detail["orders"]
    assert isinstance(orders, dict)
    assert sorted(orders.values()) == ["filled", "open", "open", "open"]

    await later.poll_once()
    trade = later.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.BREAKEVEN
    roles = sorted(trade.orders[a["clientAlgoId"]].role for a in await open_algos(http, sim))
    assert roles == ["breakeven_sl", "tp2"]  # the first stop cancelled once the new one stood
    assert await positions(http, sim) == half
    assert len(await entry_orders(http, sim)) == 1

    await move(sim, http, market_time, -150)
    await later.poll_once()
    await assert_closed(later, records, http, sim, trade_id, "breakeven")
    stored = await records.trade(trade_id)
    assert stored is not None
    assert [f.reason for f in stored.exit_fills] == ["tp1", "breakeven_sl"]


async def test_a_trade_past_its_max_hold_while_down_is_closed_at_once(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
) -> None:
    rule = dataclasses.replace(V52_EXIT, max_hold_ms=60_000)
    earlier = make_executor(rest, records, rule, clock=market_time)
    trade_id = await opened(earlier, http, sim)
    signal = earlier.open_trades[0].signal
    await advance(sim, market_time, 30_000)

    later = make_executor(rest, records, rule, clock=market_time)
    assert await later.resume() == [trade_id]
    trade = later.trade(trade_id)
    assert trade is not None
    assert trade.plan is not None
    # From the trade's signal, not from the restart.
    assert trade.plan.time_exit_at == signal.tick_ms + 60_000
    await later.poll_once()
    assert later.trade(trade_id) is not None  # not yet

    await advance(sim, market_time, 31_000)
    await later.poll_once()
    await assert_closed(later, records, http, sim, trade_id, "max_hold")
    assert len(await entry_orders(http, sim)) == 1


async def test_a_position_stopped_out_while_down_is_closed_with_its_fills(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    await move(sim, http, market_time, -300)  # the stop fires: no one runs
    assert await positions(http, sim) == {}
    # TP1 (reduce-only) is left; TP2 (closePosition) went with the position.
    assert len(await open_algos(http, sim)) == 1

    later = make_executor(rest, records, clock=market_time)
    assert await later.resume() == [trade_id]
    # Reconciliation leaves the resumed trade to the executor (it would close it else).
    settings = ReconcileSettings("protect", RISK_USD)
    alone = LiveReconciler(rest, records, settings)
    decided = await alone.reconcile_once(dry_run=True)
    assert CloseWithFills(trade_id, "BTCUSDT") in decided
    beside = LiveReconciler(rest, records, settings, driven=lambda: later.trade_ids)
    assert await beside.reconcile_once(dry_run=True) == []

    await later.poll_once()
    await assert_closed(later, records, http, sim, trade_id, "sl")
    stored = await records.trade(trade_id)
    assert stored is not None
    assert [f.reason for f in stored.exit_fills] == ["sl"]
    assert stored.realised_r is not None
    assert stored.realised_r < -0.9
    assert len(await entry_orders(http, sim)) == 1


async def test_a_trade_of_a_strategy_no_longer_loaded_is_left_to_reconciliation(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    later = LiveExecutor(rest, records, executor.settings, {}, clock=market_time)

    assert await later.resume() == []
    assert later.trade_ids == frozenset()
    [event] = await events(records, "trade.not_resumed")
    assert event.level == "error"
    assert event.detail == {
        "trade_id": trade_id,
        "reason": "strategy v52 is not loaded: its exit rule is unknown",
    }
    # Nothing was sent: the trade's orders stand as they were.
    assert len(await open_algos(http, sim)) == 3
