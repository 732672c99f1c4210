"""Ratio rounds against the /futures/data request count: a warning when they cannot fit."""

from __future__ import annotations

import aiohttp
from structlog.testing import capture_logs

from arbengine.collect.indicators import IndicatorPollers, PollerPolicy
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.settings import ExchangeSettings

WEIGHT_SAFETY = ExchangeSettings().weight_safety
"""The daemon's share of each REST limit (a test of the budget states its own)."""


async def warnings_for(symbols: int, ratios_interval_s: float) -> list[dict]:
    async with aiohttp.ClientSession() as session:  # never used: nothing is sent
        rest = BinanceRest(session, "http://127.0.0.1:9", weight_safety=WEIGHT_SAFETY)
        with capture_logs() as logs:
            IndicatorPollers(
                [f"S{i:03d}USDT" for i in range(symbols)],
                rest,
                None,
                Channel("market", 10, OverflowPolicy.BLOCK),
                policy=PollerPolicy(ratios_interval_s=ratios_interval_s),
            )
    return [e for e in logs if e["event"] == "pollers.ratios_interval_short"]


async def test_three_hundred_symbols_polled_every_five_minutes_are_told_to_poll_less_often() -> (
    None
):
    # 5 series x 300 symbols = 1500 calls a round; 800 allowed per 5 minutes: 562 s a round.
    [warning] = await warnings_for(300, 300.0)
    assert warning["log_level"] == "warning"
    assert (warning["calls_per_round"], warning["allowed"], warning["round_takes_s"]) == (
        1500,
        800,
        562,
    )
    assert warning["hint"].startswith("set collect.ratios_interval to 10m or more")


async def test_rounds_that_fit_the_count_say_nothing() -> None:
    assert await warnings_for(300, 600.0) == []
    assert await warnings_for(100, 300.0) == []
