"""The client says once when the live polls declare more than the budget can keep for them."""

from __future__ import annotations

import aiohttp
from structlog.testing import capture_logs

from arbengine.exchange.rest import BinanceRest


async def test_a_live_demand_beyond_the_budget_is_told_once_per_episode() -> None:
    async with aiohttp.ClientSession() as session:  # never used: nothing is sent
        rest = BinanceRest(session, "http://127.0.0.1:9", weight_limit=2400, weight_safety=0.8)
        with capture_logs() as logs:
            rest.declare_live("premium_index", 300)
            rest.declare_live("open_interest", 600)  # 300 symbols every 30 s: fits
            rest.declare_live("open_interest", 9000)  # 300 symbols every 2 s: does not
            rest.declare_live("open_interest", 9000)  # the same again: no second line
            rest.declare_live("open_interest", 600)
            rest.declare_live("open_interest", 6000)  # a new episode
    warnings = [e for e in logs if e["event"] == "rest.live_demand_high"]
    assert [(w["live_demand"], w["budget"], w["live_reserve"]) for w in warnings] == [
        (9300.0, 1920, 1728),
        (6300.0, 1920, 1728),
    ]
    assert "poll less often" in warnings[0]["hint"]
