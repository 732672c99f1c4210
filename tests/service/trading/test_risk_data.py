"""The risk guard's data limits on the simulated exchange over real sockets: a symbol whose
market stream falls silent gets no entry while the others still do (the collector's
events reach the guard through its tap); a user data stream that falls silent while the
account moves puts trading in REDUCING until it is in step again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from arbengine.collect.market_stream import CollectorPolicy, MarketStreamCollector
from arbengine.domain.market import MarketEvent
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.streams import StreamPolicy
from arbengine.exchange.user_events import Resync, UserEvent
from arbengine.exchange.user_stream import UserStream
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.settings import DatabaseSettings
from arbengine.sim import SimServer
from arbengine.store.database import open_database
from arbengine.store.live_records import LiveRecords
from arbengine.store.market_writer import MarketWriter, WriterPolicy
from arbengine.store.partitions import maintain_partitions
from arbengine.store.risk_records import RiskRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_service import StreamedOrder, stream_reports
from arbengine.trading.live_trade import PositionChanged
from arbengine.trading.risk_inputs import MarketFreshness, MarketTap
from arbengine.trading.risk_service import RiskService, TradedStrategy
from tests.service.sim.simclient import control, get, last_id
from tests.service.trading.conftest import a_signal, advance, positions
from tests.service.trading.test_risk_guard import guard, opened, refused_entry, risk_records
from tests.support.waiting import eventually

__all__ = ["risk_records"]  # the fixture, shared

TAPE_ONLY = (TradedStrategy("v52", frozenset({"BTCUSDT", "ETHUSDT"}), frozenset({"tape"}), 0),)
FAST = StreamPolicy(
    silence_s=None, heartbeat_s=30.0, reconnect=RetryPolicy(initial_s=0.05, max_s=0.2)
)


async def injected(http: aiohttp.ClientSession, sim: SimServer) -> dict[str, Any]:
    _, state, _ = await get(http, f"{sim.control_url}/state")
    counts: dict[str, Any] = state["faults"]["injected"]
    return counts


@pytest.fixture
async def freshness(
    sim: SimServer, rest: BinanceRest, market_time: ManualClock
) -> AsyncIterator[MarketFreshness]:
    """A market stream collector of both symbols, its events tapped by the guard's board."""
    board = MarketFreshness(market_time.time_ms)
    out: Channel[MarketEvent] = Channel("market", 100_000, OverflowPolicy.DROP_OLDEST)
    collector = MarketStreamCollector(
        ["BTCUSDT", "ETHUSDT"], rest, sim.market_ws_url, MarketTap(out, board)
    )
    task = asyncio.create_task(collector.run())
    yield board
    collector.request_stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


async def tape_arrived(
    sim: SimServer, market_time: ManualClock, board: MarketFreshness, symbol: str
) -> int:
    """Advance the market a second at a time until ``symbol``'s trades arrive; when."""
    before = board.inputs_at.get((symbol, "tape"))
    async with asyncio.timeout(20):
        while board.inputs_at.get((symbol, "tape")) == before:
            await advance(sim, market_time, 1_000)
            await asyncio.sleep(0.05)
    return board.inputs_at[(symbol, "tape")]


async def test_a_silent_symbol_gets_no_entry_and_the_others_still_do(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
    freshness: MarketFreshness,
) -> None:
    risk = guard(
        rest, executor, records, risk_records, market_time, strategies=TAPE_ONLY,
        freshness=freshness, max_tape_age_ms=30_000,
    )  # fmt: skip
    await risk.load()
    await tape_arrived(sim, market_time, freshness, "BTCUSDT")
    await risk.check_once()
    assert await risk.admit(await a_signal(http, sim))

    await control(http, sim, "faults", {"silence": {"which": "market", "symbol": "BTCUSDT",
                                                    "seconds": 600}})  # fmt: skip
    btc_last = freshness.inputs_at[("BTCUSDT", "tape")]
    for _ in range(3):  # 36 s of market: ETHUSDT's trades keep coming
        await advance(sim, market_time, 12_000)
        await tape_arrived(sim, market_time, freshness, "ETHUSDT")
    assert (await injected(http, sim))["silenced"] > 0  # the fault fired
    assert freshness.inputs_at[("BTCUSDT", "tape")] == btc_last
    await risk.check_once()

    refusal = await refused_entry(risk, records, await a_signal(http, sim), "stale_tape")
    values = refusal.detail["values"]
    assert values["symbol"] == "BTCUSDT"
    assert values["input"] == "tape"
    assert values["age_ms"] > values["limit_ms"] == 30_000
    assert await risk.admit(await a_signal(http, sim, symbol="ETHUSDT"))
    assert risk.state.state == "ACTIVE"  # one symbol's data, not the account's


class Feed:
    """The user stream's consumer as the daemon wires it: the executor, then the guard."""

    def __init__(self, executor: LiveExecutor, risk: RiskService) -> None:
        self.executor = executor
        self.risk = risk
        self.resynced = asyncio.Event()
        self.events: list[UserEvent] = []

    async def __call__(self, event: UserEvent) -> None:
        for report in stream_reports(event):
            if isinstance(report, StreamedOrder):
                await self.executor.on_order_report(report.report, algo=report.algo)
            else:
                await self.executor.on_exchange_event(
                    PositionChanged(report.amount), report.symbol, reported_at=report.reported_at
                )
        await self.risk.on_event(event)
        self.events.append(event)
        if isinstance(event, Resync):
            self.resynced.set()


async def test_a_user_stream_silent_while_the_account_moves_reduces_trading(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    risk = guard(rest, executor, records, risk_records, market_time, max_user_stream_age_ms=30_000)
    feed = Feed(executor, risk)
    stream = UserStream(rest, sim.private_ws_url, feed, session=http, policy=FAST)
    task = asyncio.create_task(stream.run())
    try:
        await asyncio.wait_for(feed.resynced.wait(), 10)
        risk.stream_connected = lambda: stream.connected
        await risk.load()
        await risk.check_once()
        assert risk.state.state == "ACTIVE"

        await control(http, sim, "faults", {"silence": {"which": "private", "seconds": 600}})
        await opened(executor, http, sim)  # the stream says nothing of it
        assert await positions(http, sim)
        await risk.check_once()
        assert risk.state.state == "ACTIVE"  # behind, not yet for long
        await advance(sim, market_time, 31_000)
        transition = await risk.check_once()
        assert transition is not None
        assert (risk.state.state, risk.state.rule) == ("REDUCING", "stale_user_stream")
        assert risk.state.values["age_ms"] > 30_000
        assert (await injected(http, sim))["silenced"] > 0  # the fault fired
        refusal = await refused_entry(
            risk, records, await a_signal(http, sim, symbol="ETHUSDT"), "reducing"
        )
        assert refusal.detail["values"]["rule"] == "stale_user_stream"

        # Heard again: the next account change it reports brings it level with REST.
        await control(http, sim, "faults", {"clear": True})
        await executor.flatten(next(iter(executor.trade_ids)))
        async with asyncio.timeout(10):
            while risk.state.state != "ACTIVE":
                await executor.poll_once()
                await risk.check_once()
                await asyncio.sleep(0.05)
        assert await positions(http, sim) == {}
    finally:
        stream.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def test_a_tape_hole_within_the_window_refuses_that_symbols_entries(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
    database_url: str,
) -> None:
    """The collector records the hole REST cannot fill; the writer stores it; the guard
    reads it within the strategy's longest window."""
    hour = 3_600_000
    strategies = (TradedStrategy("v52", frozenset({"BTCUSDT", "ETHUSDT"}), frozenset(), hour),)
    risk = guard(rest, executor, records, risk_records, market_time, strategies=strategies)
    await risk.load()
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        async with db.acquire() as conn:
            await maintain_partitions(conn, sim.sim_time_ms)
        market: Channel[MarketEvent] = Channel("market", 100_000, OverflowPolicy.BLOCK)
        collector = MarketStreamCollector(
            ["BTCUSDT", "ETHUSDT"],
            rest,
            sim.market_ws_url,
            market,
            policy=CollectorPolicy(repair_grace_s=0.05),
        )
        writer = MarketWriter(db.pool, market, WriterPolicy(flush_interval_s=0.05))
        tasks = [asyncio.create_task(collector.run()), asyncio.create_task(writer.run())]
        try:
            await asyncio.wait_for(collector.caught_up.wait(), 30)
            await risk.check_once()
            assert risk.view.holes == {}
            assert await risk.admit(await a_signal(http, sim))

            first = last_id(sim, "BTCUSDT") + 1
            lo, hi = first + 10, first + 29
            spec = {"symbol": "BTCUSDT", "from_id": lo, "to_id": hi, "rest": False}
            await control(http, sim, "faults", {"withhold": spec})
            await advance(sim, market_time, 6_000)

            async def hole_stored() -> list[Any]:
                async with db.acquire() as conn:
                    return list(
                        await conn.fetch(
                            "SELECT from_id, to_id FROM agg_trades_gaps WHERE outcome = 'hole'"
                        )
                    )

            holes = await eventually(hole_stored, 30, what="the hole stored")
            assert [(r["from_id"], r["to_id"]) for r in holes] == [(lo, hi)]  # the fault fired
        finally:
            collector.request_stop()
            await asyncio.wait_for(tasks[0], 30)
            market.close()
            await asyncio.wait_for(tasks[1], 30)
        await risk.check_once()
        assert risk.view.holes == {"BTCUSDT": 1}
        refusal = await refused_entry(risk, records, await a_signal(http, sim), "tape_hole")
        assert refusal.detail["values"] == {"symbol": "BTCUSDT", "holes": 1}
        assert await risk.admit(await a_signal(http, sim, symbol="ETHUSDT"))

        # Older than the window: it no longer refuses.
        await advance(sim, market_time, hour + 60_000)
        async with db.acquire() as conn:  # the tape goes on (stored without the collector)
            await conn.execute(
                "INSERT INTO agg_trades (symbol, agg_id, ts, price, qty, first_trade_id, "
                "last_trade_id, is_buyer_maker) SELECT symbol, agg_id + 1000000, $1, price, "
                "qty, first_trade_id, last_trade_id, is_buyer_maker FROM agg_trades "
                "WHERE symbol = 'BTCUSDT' ORDER BY agg_id DESC LIMIT 1",
                market_time.time_ms(),
            )
        await risk.check_once()
        assert risk.view.holes == {}
