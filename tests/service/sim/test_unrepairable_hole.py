"""``withhold`` with ``"rest": false``: ids the stream never sends and REST answers as if they
never existed, so a collector on the sim records a hole for exactly those ids (the risk
guard's tape-completeness tests)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from arbengine.collect.market_stream import CollectorPolicy, MarketStreamCollector
from arbengine.domain.market import MarketEvent, TapeGap, TradeBatch
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, ChannelClosed, OverflowPolicy
from arbengine.settings import ExchangeSettings
from arbengine.sim import SimServer
from tests.service.sim.conftest import START
from tests.service.sim.simclient import control, get, history, last_id

SYMBOL = "ETHUSDT"


async def test_rest_answers_as_if_withheld_ids_never_existed_until_a_clear(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await sim.advance_to(START + 5_000)
    first = last_id(sim, SYMBOL) + 1
    lo, hi = first + 5, first + 24
    spec = {"symbol": SYMBOL, "from_id": lo, "to_id": hi, "rest": False}
    state = await control(http, sim, "faults", {"withhold": spec})
    assert state["missing_from_rest"] == {SYMBOL: [[lo, hi]]}
    await sim.advance_to(START + 10_000)
    url = f"{sim.rest_url}/fapi/v1/aggTrades"

    _, page, _ = await get(http, url, {"symbol": SYMBOL, "fromId": lo, "limit": 10})
    assert [r["a"] for r in page] == list(range(hi + 1, hi + 11))  # a full page, after them
    _, page, _ = await get(http, url, {"symbol": SYMBOL, "fromId": first, "limit": 10})
    assert [r["a"] for r in page] == [*range(first, lo), *range(hi + 1, hi + 6)]
    t_lo = sim.tape(SYMBOL).cols(0, sim.tape(SYMBOL).released).t[0]
    _, page, _ = await get(
        http, url, {"symbol": SYMBOL, "startTime": int(t_lo), "endTime": START + 10_000}
    )
    assert not {r["a"] for r in page} & set(range(lo, hi + 1))
    assert [r["a"] for r in page] == sorted(r["a"] for r in page)
    ids = {r["a"] for r in await history(http, sim, SYMBOL)}
    assert ids == set(range(min(ids), last_id(sim, SYMBOL) + 1)) - set(range(lo, hi + 1))

    assert (await control(http, sim, "faults", {"clear": True}))["missing_from_rest"] == {}
    _, page, _ = await get(http, url, {"symbol": SYMBOL, "fromId": lo, "limit": 3})
    assert [r["a"] for r in page] == [lo, lo + 1, lo + 2]


async def test_a_collector_on_the_sim_records_a_hole_for_exactly_the_withheld_ids(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await sim.advance_to(START + 2_000)
    out: Channel[MarketEvent] = Channel("market", 100_000, OverflowPolicy.BLOCK)
    stored: list[int] = []
    gaps: list[TapeGap] = []
    hole_seen = asyncio.Event()
    delivered = asyncio.Event()

    async def consume() -> None:
        with contextlib.suppress(ChannelClosed):
            while True:
                event = await out.get()
                if isinstance(event, TradeBatch) and event.symbol == SYMBOL:
                    stored.extend(event.agg_id)
                    delivered.set()
                elif isinstance(event, TapeGap) and event.symbol == SYMBOL:
                    gaps.append(event)
                    if event.outcome == "hole":
                        hole_seen.set()

    rest = BinanceRest(http, sim.rest_url, weight_safety=ExchangeSettings().weight_safety)
    collector = MarketStreamCollector(
        [SYMBOL], rest, sim.market_ws_url, out, policy=CollectorPolicy(repair_grace_s=0.05)
    )
    tasks = [asyncio.create_task(collector.run()), asyncio.create_task(consume())]
    try:
        await asyncio.wait_for(collector.caught_up.wait(), 30)
        start = last_id(sim, SYMBOL) + 1
        lo, hi = start + 10, start + 29
        spec = {"symbol": SYMBOL, "from_id": lo, "to_id": hi, "rest": False}
        await control(http, sim, "faults", {"withhold": spec})
        await sim.advance_to(START + 6_000)
        await asyncio.wait_for(hole_seen.wait(), 30)
        end = last_id(sim, SYMBOL)
        while not stored or stored[-1] < end:  # the trades after the hole reach the channel
            delivered.clear()
            await asyncio.wait_for(delivered.wait(), 30)
    finally:
        collector.request_stop()
        await asyncio.wait_for(tasks[0], 30)
        out.close()
        await tasks[1]
    assert [(g.from_id, g.to_id) for g in gaps if g.outcome == "hole"] == [(lo, hi)]
    assert [(g.from_id, g.to_id, g.outcome) for g in gaps] == [(lo, hi, "seen"), (lo, hi, "hole")]
    after_start = [a for a in stored if a >= start]
    assert after_start == [a for a in range(start, end + 1) if not lo <= a <= hi]
