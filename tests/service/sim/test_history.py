"""Bounded trade history: REST serves the window and answers about older data as Binance does
about data past its history, so a collector records a hole instead of waiting for it."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from arbengine.collect.market_stream import CollectorPolicy, MarketStreamCollector
from arbengine.domain.market import MarketEvent, TapeGap, TradeBatch
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, ChannelClosed, OverflowPolicy
from arbengine.settings import ExchangeSettings
from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import control, first_id, get, history, last_id

WEIGHT_SAFETY = ExchangeSettings().weight_safety
"""The daemon's share of each REST limit (a test of the budget states its own)."""

MINUTE = 60_000


async def test_rest_serves_the_window_and_nothing_older(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_history_ms=10 * MINUTE)
    await sim.advance_to(START + 30 * MINUTE)
    url = f"{sim.rest_url}/fapi/v1/aggTrades"
    now = sim.sim_time_ms
    tape = sim.tape("BTCUSDT")
    oldest = first_id(sim, "BTCUSDT")
    first_ever = oldest - tape.forgotten  # ids are contiguous from the first trade

    kept = await history(http, sim, "BTCUSDT")
    assert [r["a"] for r in kept] == list(range(oldest, last_id(sim, "BTCUSDT") + 1))
    assert now - 10 * MINUTE <= kept[0]["T"] < now - 10 * MINUTE + 1000

    # fromId before the window: the answer starts at the oldest trade kept, which tells the
    # caller the ids in between are gone (Binance past its history does the same).
    for from_id in (first_ever, oldest - 1):
        status, rows, _ = await get(http, url, {"symbol": "BTCUSDT", "fromId": from_id,
                                                "limit": 3})  # fmt: skip
        assert status == 200
        assert rows == kept[:3]
    # A time range wholly before the window is empty; one reaching into it starts there.
    status, rows, _ = await get(http, url, {"symbol": "BTCUSDT", "startTime": START,
                                            "endTime": START + 10 * MINUTE})  # fmt: skip
    assert (status, rows) == (200, [])
    _, rows, _ = await get(http, url, {"symbol": "BTCUSDT", "startTime": now - 15 * MINUTE,
                                       "endTime": now - 5 * MINUTE, "limit": 2})  # fmt: skip
    assert rows == kept[:2]

    status, state, _ = await get(http, f"{sim.control_url}/state")
    btc = state["symbols"]["BTCUSDT"]
    assert (btc["first_id"], btc["trades"], btc["trades_forgotten"]) == (
        oldest,
        len(kept),
        oldest - first_ever,
    )
    assert btc["history_bytes"] > 49 * len(kept)


async def test_a_gap_older_than_the_window_becomes_a_recorded_hole(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_history_ms=MINUTE, symbols=("BTCUSDT",))
    await sim.advance_to(START + 2 * MINUTE)
    out: Channel[MarketEvent] = Channel("test-market", 100_000, OverflowPolicy.BLOCK)
    holes: list[TapeGap] = []
    hole_seen = asyncio.Event()
    trades_seen = asyncio.Event()

    async def consume() -> None:
        with contextlib.suppress(ChannelClosed):
            while True:
                for event in await out.get_many(1000):
                    if isinstance(event, TradeBatch) and len(event):
                        trades_seen.set()
                    if isinstance(event, TapeGap) and event.outcome == "hole":
                        holes.append(event)
                        hole_seen.set()

    async with aiohttp.ClientSession() as session:
        rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
        collector = MarketStreamCollector(
            ["BTCUSDT"], rest, sim.market_ws_url, out,
            policy=CollectorPolicy(repair_grace_s=0.1),
        )  # fmt: skip
        tasks = [asyncio.create_task(collector.run()), asyncio.create_task(consume())]
        try:
            await asyncio.wait_for(collector.caught_up.wait(), 30)
            while not trades_seen.is_set():  # the collector's tape starts at its first trade
                await sim.advance_by(1_000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(trades_seen.wait(), 1)
            # The next trades never reach the stream, and REST is slow to answer: by the time
            # it does, two minutes have passed and the missing trades are out of the window.
            missing = last_id(sim, "BTCUSDT") + 1
            await control(http, sim, "faults", {"latency": {"rest_ms": 2_000}})
            await control(http, sim, "faults", {"withhold": {"symbol": "BTCUSDT",
                          "from_id": missing, "to_id": missing + 4}})  # fmt: skip
            await sim.advance_by(2 * MINUTE)
            assert first_id(sim, "BTCUSDT") > missing + 4
            await asyncio.wait_for(hole_seen.wait(), 30)
        finally:
            collector.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(tasks[0], 30)
            out.close()
            await tasks[1]
    assert holes[0].from_id == missing
    assert holes[0].to_id >= missing + 4
