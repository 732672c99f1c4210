"""The Coinbase price counts from when it arrives here, not from its spot trade's time.

Coinbase's ticker ``time`` is that of the last spot trade, often seconds old; a live
engine only knows the price once polled, so the stored ``known_at`` must be the arrival
(on the exchange's clock) for a backtest to see it when the live engine did. A re-poll
with no new spot trade publishes nothing, so the known time stays the first arrival.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from arbengine.collect.indicators import IndicatorPollers
from arbengine.domain.market import Indicator, MarketEvent
from arbengine.exchange.coinbase import CoinbaseTicker
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.settings import ExchangeSettings
from arbengine.sim.market_model import coinbase_last_trade_ms
from arbengine.sim.server import SimConfig, SimServer

WEIGHT_SAFETY = ExchangeSettings().weight_safety
"""The daemon's share of each REST limit (a test of the budget states its own)."""

START = 1_767_225_600_000  # 2026-01-01T00:00Z
SYMBOL = "BTCUSDT"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    config = SimConfig(port=0, manual=True, seed=3, symbols=(SYMBOL,), start_ms=START)
    async with SimServer(config) as server:
        yield server


def stale_moment(after_ms: int) -> int:
    """A moment whose last spot trade is more than a second old."""
    t = after_ms
    while t - coinbase_last_trade_ms(SYMBOL, t) <= 1_000:
        t += 100
    return t


async def test_a_coinbase_price_is_known_from_its_arrival_and_published_once(
    sim: SimServer,
) -> None:
    out: Channel[MarketEvent] = Channel("market", 100, OverflowPolicy.BLOCK)
    clock = ManualClock(START)
    async with aiohttp.ClientSession() as session:
        pollers = IndicatorPollers(
            [SYMBOL], BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY),
            CoinbaseTicker(session, sim.coinbase_url), out, clock=clock,
        )  # fmt: skip

        async def poll_at(t_ms: int) -> list[Indicator]:
            await sim.advance_to(t_ms)
            clock.set_ms(t_ms)  # the exchange's clock when the answer arrives
            await pollers.poll_coinbase()
            return [e for e in out.get_nowait_many(100) if isinstance(e, Indicator)]

        t1 = stale_moment(START + 60_000)
        (first,) = await poll_at(t1)
        assert first.kind == "coinbase_price"
        assert first.ts == coinbase_last_trade_ms(SYMBOL, t1) < t1 - 1_000
        assert first.known_at == t1

        t2 = t1 + 1
        assert coinbase_last_trade_ms(SYMBOL, t2) == first.ts  # no spot trade since
        assert await poll_at(t2) == []

        t3 = stale_moment(t2 + 5_000)
        (third,) = await poll_at(t3)
        assert first.ts < third.ts < t3
        assert third.known_at == t3
