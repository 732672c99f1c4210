"""aggTrades over REST against the sim: a stop is not held up by a read in flight."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from arbengine.collect.rest_trades import fetch_agg_trades
from arbengine.exchange.budget import Priority
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.backoff import Stopped
from arbengine.settings import ExchangeSettings
from arbengine.sim.server import SimConfig, SimServer
from tests.service.sim.simclient import control
from tests.support.waiting import eventually


@pytest.fixture
async def sim():
    start = int(time.time() * 1000) // 1000 * 1000 - 600_000
    config = SimConfig(port=0, manual=True, seed=3, symbols=("BTCUSDT",), trade_rate=10.0,
                       start_ms=start)  # fmt: skip
    async with SimServer(config) as server:
        await server.advance_to(start + 300_000)
        yield server


async def test_a_stop_while_the_read_is_held_ends_it_at_once(sim: SimServer) -> None:
    async with aiohttp.ClientSession() as http:
        rest = BinanceRest(http, sim.rest_url, weight_safety=ExchangeSettings().weight_safety)
        # Held by the exchange as long as a wait for the next minute's weight could be.
        hang = {"seconds": 600, "scope": "rest", "path": "/fapi/v1/aggTrades"}
        await control(http, sim, "faults", {"hang": hang})
        stop = asyncio.Event()
        read = asyncio.create_task(
            fetch_agg_trades(rest, "BTCUSDT", {"symbol": "BTCUSDT"}, Priority.REPAIR, stop)
        )

        async def in_flight() -> bool:
            return rest.budget.inflight > 0

        try:
            await eventually(in_flight, what="the read on its way")
            stop.set()
            with pytest.raises(Stopped, match="aggTrades for BTCUSDT"):
                await asyncio.wait_for(read, timeout=10)
            assert rest.budget.inflight == 0  # its weight given back
        finally:
            read.cancel()
            await control(http, sim, "faults", {"clear": True})
