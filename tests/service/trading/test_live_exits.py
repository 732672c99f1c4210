"""Each way a live position ends, learned by polling the simulated exchange: the position
is gone, nothing of ours is left open there, and the trade is closed with its reason."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import msgspec
import pytest

from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.clock import ManualClock, SystemClock
from arbengine.sim import SimServer
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_trade import PositionChanged, TradeState
from arbengine.trading.live_wire import OrderReport
from tests.service.sim.simclient import control
from tests.service.trading.conftest import (
    a_signal,
    advance,
    make_executor,
    open_algos,
    positions,
)
from tests.support.live_examples import V52_EXIT
from tests.support.waiting import eventually


async def opened(executor: LiveExecutor, http: aiohttp.ClientSession, sim: SimServer) -> int:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.PROTECTED
    return trade_id


async def move(
    sim: SimServer, http: aiohttp.ClientSession, market_time: ManualClock, bps: int
) -> None:
    """Jump BTCUSDT's price by ``bps`` and let trades run through it (the jump starts at
    the first one-second block the sim has not generated yet: the one after next)."""
    await control(http, sim, "market", {"symbol": "BTCUSDT", "shock_bps": bps})
    await advance(sim, market_time, 2_000)


async def assert_closed(
    executor: LiveExecutor,
    records: LiveRecords,
    http: aiohttp.ClientSession,
    sim: SimServer,
    trade_id: int,
    reason: str,
) -> None:
    assert executor.trade(trade_id) is None
    assert await positions(http, sim) == {}
    assert await open_algos(http, sim) == []
    stored = await records.trade(trade_id)
    assert stored is not None
    assert (stored.status, stored.exit_reason) == ("closed", reason)
    assert stored.realised_r is not None
    assert all(o.status != "NEW" for o in await records.orders_of_trade(trade_id))
    assert stored.entry_fills  # the exchange's fills, with their commission
    assert stored.fees == pytest.approx(sum(f.fee for f in stored.entry_fills + stored.exit_fills))
    assert stored.fees > 0
    now = datetime.now(UTC)
    events = await records.events_between(now - timedelta(hours=1), now + timedelta(hours=1))
    assert [e.kind for e in events if e.kind == "order.cancel_unknown"] == []  # all answered


async def test_the_stop_loss(
    sim: SimServer,
    http: aiohttp.ClientSession,
    market_time: ManualClock,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    await move(sim, http, market_time, -300)
    await executor.poll_once()

    await assert_closed(executor, records, http, sim, trade_id, "sl")
    stored = await records.trade(trade_id)
    assert stored is not None
    assert stored.entry_price is not None
    assert [f.reason for f in stored.exit_fills] == ["sl"]
    gross = sum((f.price - stored.entry_price) * f.quantity for f in stored.exit_fills)
    assert stored.realised_usd == pytest.approx(gross - stored.fees)
    assert stored.realised_r == pytest.approx(
        stored.realised_usd / (stored.r_distance * stored.quantity)
    )
    assert stored.realised_r < -0.9


async def test_tp1_then_the_breakeven_stop(
    sim: SimServer,
    http: aiohttp.ClientSession,
    market_time: ManualClock,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    await move(sim, http, market_time, 100)  # past TP1 (0.75 %), short of TP2 (1.5 %)
    await executor.poll_once()

    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.BREAKEVEN
    algos = {a["clientAlgoId"]: a for a in await open_algos(http, sim)}
    roles = sorted(trade.orders[cid].role for cid in algos)
    assert roles == ["breakeven_sl", "tp2"]  # the first stop went once the new one stood
    assert trade.plan is not None
    assert trade.plan.breakeven_stop is not None

    await move(sim, http, market_time, -150)
    await executor.poll_once()
    await assert_closed(executor, records, http, sim, trade_id, "breakeven")


async def test_the_time_exit(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
) -> None:
    rule = dataclasses.replace(V52_EXIT, max_hold_ms=60_000)
    executor = make_executor(rest, records, rule, clock=market_time)
    trade_id = await opened(executor, http, sim)
    await advance(sim, market_time, 59_000)
    await executor.poll_once()
    assert executor.trade(trade_id) is not None  # not yet

    await advance(sim, market_time, 2_000)
    await executor.poll_once()
    await assert_closed(executor, records, http, sim, trade_id, "max_hold")


async def test_a_flatten(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    await executor.flatten(trade_id)

    await assert_closed(executor, records, http, sim, trade_id, "flatten")


async def test_a_liquidation_closes_the_trade_as_the_exchange_did(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    await control(http, sim, "account", {"liquidate": "BTCUSDT"})
    await executor.poll_once()

    await assert_closed(executor, records, http, sim, trade_id, "exchange")


async def test_a_reported_flat_position_closes_the_trade_through_the_one_event_method(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    """What the user data stream will do: report the position gone (ACCOUNT_UPDATE)."""
    trade_id = await opened(executor, http, sim)
    await control(http, sim, "account", {"liquidate": "BTCUSDT"})
    await executor.on_exchange_event(PositionChanged(Decimal(0)), symbol="ETHUSDT")
    assert executor.trade(trade_id) is not None  # another symbol's report: not this trade

    await executor.on_exchange_event(PositionChanged(Decimal(0)), symbol="BTCUSDT")
    await assert_closed(executor, records, http, sim, trade_id, "exchange")


async def test_the_poll_loop_outlasts_exchange_errors_and_sees_the_stop(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
) -> None:
    no_time_exit = dataclasses.replace(V52_EXIT, max_hold_ms=None)
    executor = make_executor(rest, records, no_time_exit, clock=SystemClock(), poll_s=0.05)
    trade_id = await opened(executor, http, sim)
    await control(
        http,
        sim,
        "faults",
        {"http_5xx": {"count": 3, "status": 503, "path": "/fapi/v3/positionRisk"}},
    )
    stop = asyncio.Event()
    polling = asyncio.create_task(executor.run(stop))
    try:

        async def errors_served() -> bool:
            return bool(sim.state()["faults"]["http_5xx"] == 0)

        await eventually(errors_served, what="three 503s answered to the poll loop")
        assert not polling.done()
        await move(sim, http, market_time, -300)

        async def closed() -> bool:
            row = await records.trade(trade_id)
            return row is not None and row.status == "closed"

        await eventually(closed, what="the stop seen by the poll loop")
    finally:
        stop.set()
        await polling
    await assert_closed(executor, records, http, sim, trade_id, "sl")


async def test_a_stop_already_crossed_when_placed_is_taken_at_market_as_the_paper_stop(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    # A long signalled 2 % above the market: its stop (0.75 % under the signal) is above
    # the price already, so the exchange refuses it (-2021, would immediately trigger).
    # The paper is out at its stop on the first trade: so is the live trade, at market.
    signal = await a_signal(http, sim)
    high = msgspec.structs.replace(signal, price=round(signal.price * 1.02, 1))
    trade_id = await executor.on_signal(high)

    assert trade_id is not None
    await assert_closed(executor, records, http, sim, trade_id, "sl")
    orders = await records.orders_of_trade(trade_id)
    [refused] = [o for o in orders if o.role == "sl" and o.kind == "algo"]
    assert refused.status == "REJECTED"
    assert "-2021" in (refused.status_history[-1].note or "")
    [market] = [o for o in orders if o.role == "sl" and o.kind == "order"]
    assert (market.type, market.status, market.reduce_only) == ("MARKET", "FILLED", True)
    stored = await records.trade(trade_id)
    assert stored is not None
    assert [f.reason for f in stored.exit_fills] == ["sl"]
    assert "sl_at_market" in [d.what for d in stored.plan_differences]


async def test_a_streamed_flat_position_from_before_the_trade_opened_is_not_its_end(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    stored = await records.trade(trade_id)
    assert stored is not None
    assert stored.opened_at is not None
    await control(http, sim, "account", {"liquidate": "BTCUSDT"})
    # An ACCOUNT_UPDATE of the symbol made before the entry filled (a former position's end).
    before = stored.opened_at - 1
    await executor.on_exchange_event(PositionChanged(Decimal(0)), "BTCUSDT", reported_at=before)
    assert executor.trade(trade_id) is not None

    after = stored.opened_at + 1
    await executor.on_exchange_event(PositionChanged(Decimal(0)), "BTCUSDT", reported_at=after)
    await assert_closed(executor, records, http, sim, trade_id, "exchange")


async def test_a_streamed_order_report_is_stored_and_fed_and_a_stale_one_only_fed(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.stop_id is not None
    stop_id = trade.stop_id
    now = sim.sim_time_ms + 60_000
    await executor.on_order_report(OrderReport(stop_id, "TRIGGERED", time_ms=now), algo=True)

    assert trade.orders[stop_id].status == "triggered"
    [stop] = [o for o in await records.orders_of_trade(trade_id) if o.client_order_id == stop_id]
    assert [c.status for c in stop.status_history] == ["PENDING", "NEW", "TRIGGERED"]
    # A report older than the row (the stream's NEW, late): the row keeps TRIGGERED.
    await executor.on_order_report(OrderReport(stop_id, "NEW", time_ms=1), algo=True)
    [stop] = [o for o in await records.orders_of_trade(trade_id) if o.client_order_id == stop_id]
    assert stop.status == "TRIGGERED"
