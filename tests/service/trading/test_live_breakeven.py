"""TP1 moves the stop to breakeven on the simulated exchange, and the move is measured: one
``trade.breakeven_moved`` event with the replace's duration and the time the position had
no stop (none: the new stop stood before the first one was cancelled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from arbengine.runtime.clock import ManualClock
from arbengine.sim import SimServer
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_trade import TradeState
from tests.service.trading.conftest import open_algos
from tests.service.trading.test_live_exits import move, opened


async def test_the_move_to_breakeven_is_recorded_with_its_duration_and_no_gap(
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
    roles = sorted(trade.orders[a["clientAlgoId"]].role for a in await open_algos(http, sim))
    assert roles == ["breakeven_sl", "tp2"]
    await executor.poll_once()  # polled again: the move is reported once

    now = datetime.now(UTC)
    events = await records.events_between(now - timedelta(hours=1), now + timedelta(hours=1))
    moved = [e for e in events if e.kind == "trade.breakeven_moved"]
    assert len(moved) == 1, [e.kind for e in events]
    (event,) = moved
    assert (event.symbol, event.strategy, event.who) == ("BTCUSDT", "v52", "executor")
    detail = event.detail
    assert detail["trade_id"] == trade_id
    assert detail["unprotected_ms"] == 0
    replace_ms, tp1_to_stop_ms = detail["replace_ms"], detail["tp1_to_stop_ms"]
    assert isinstance(replace_ms, float)
    assert isinstance(tp1_to_stop_ms, float)
    # Two exchange calls (the new stop, the first one's cancel) with their record writes.
    assert 0 < replace_ms < 10_000
    assert 0 < tp1_to_stop_ms < 10_000
    kinds = [e.kind for e in events]
    # Reported once both calls were answered: after the first stop's cancel.
    assert kinds.index("trade.breakeven_moved") > kinds.index("order.canceled")
