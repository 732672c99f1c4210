"""The exchange clock the collector keeps never passes a trade missing behind a gap.

The engine judges on that clock when events have had time to arrive: were it to pass a
received trade still waiting for the ids before it, ticks after that trade could be
evaluated without it. (Our own clock is held at zero here, so only what the streams
delivered moves the exchange clock, as with a simulated market running ahead of time.)
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from arbengine.collect.market_stream import CollectorPolicy, MarketStreamCollector
from arbengine.domain.market import MarketEvent, MarkPrice, TradeBatch
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, ChannelClosed, OverflowPolicy
from arbengine.runtime.clock import ManualClock, RemoteClock
from arbengine.settings import ExchangeSettings
from arbengine.sim.server import SimConfig, SimServer

WEIGHT_SAFETY = ExchangeSettings().weight_safety
"""The daemon's share of each REST limit (a test of the budget states its own)."""

START = 1_767_225_600_000  # 2026-01-01T00:00Z
SYMBOL = "BTCUSDT"


async def test_the_clock_waits_for_trades_held_behind_a_gap() -> None:
    config = SimConfig(port=0, manual=True, seed=4, symbols=(SYMBOL,), trade_rate=20.0,
                       start_ms=START)  # fmt: skip
    out: Channel[MarketEvent] = Channel("market", 100_000, OverflowPolicy.BLOCK)
    marks: list[int] = []
    stored: list[int] = []
    mark_seen = asyncio.Event()

    async def consume() -> None:
        with contextlib.suppress(ChannelClosed):
            while True:
                event = await out.get()
                if isinstance(event, MarkPrice):
                    marks.append(event.ts)
                    mark_seen.set()
                elif isinstance(event, TradeBatch):
                    stored.extend(event.agg_id)

    async def marks_until(t_ms: int) -> None:
        while not marks or marks[-1] < t_ms:
            mark_seen.clear()
            await asyncio.wait_for(mark_seen.wait(), 30)

    async with SimServer(config) as sim, aiohttp.ClientSession() as session:
        await sim.advance_by(2_000)
        clock = RemoteClock(ManualClock(0))
        collector = MarketStreamCollector(
            [SYMBOL], BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY),
            sim.market_ws_url, out,
            policy=CollectorPolicy(repair_grace_s=5.0), exchange_clock=clock,
        )  # fmt: skip
        tasks = [asyncio.create_task(collector.run()), asyncio.create_task(consume())]
        try:
            await asyncio.wait_for(collector.caught_up.wait(), 30)
            for _ in range(3000):  # frames published before the subscription are never seen
                if collector.streams[0].connections:
                    break
                await asyncio.sleep(0.01)
            await sim.advance_by(2_000)
            await marks_until(sim.sim_time_ms)
            assert clock.time_ms() >= sim.sim_time_ms - 1_000

            missing = sim.tape(SYMBOL).last_id + 1
            before = clock.time_ms()
            async with session.post(
                f"{sim.control_url}/faults",
                json={"withhold": {"symbol": SYMBOL, "from_id": missing, "to_id": missing + 2}},
            ) as response:
                assert response.status == 200
            await sim.advance_by(3_000)
            await marks_until(sim.sim_time_ms)  # every frame up to now was read
            assert collector.tapes[SYMBOL].held_count > 0  # the gap is open: REST waits
            # Three seconds of frames came, but the missing trades are no older than the last
            # one delivered before the gap: the clock has not moved.
            assert clock.time_ms() == before < sim.sim_time_ms - 2_000

            # Repaired: the held trades are delivered and the clock catches up.
            await sim.advance_by(1_000)
            while missing + 3 not in stored:
                await marks_until(marks[-1] + 1_000)
                await sim.advance_by(1_000)
            await marks_until(sim.sim_time_ms)
            assert clock.time_ms() >= sim.sim_time_ms - 1_000
        finally:
            collector.request_stop()
            await asyncio.wait_for(tasks[0], 30)
            out.close()
            await tasks[1]
