"""A reply of an unexpected shape, over a real socket: a retryable InvalidResponse, not a crash.

The exchange here is a few canned answers on a loopback HTTP server (the transport is
the seam): the simulated exchange always answers well-formed JSON, and what is under
test is what the client and a poller do when an answer is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from arbengine.collect.indicators import PREMIUM_INDEX_ALL_WEIGHT, IndicatorPollers
from arbengine.domain.market import MarketEvent, RateSnapshot
from arbengine.exchange.exchange_errors import InvalidResponse
from arbengine.exchange.replies import PremiumIndex
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.settings import ExchangeSettings

GOOD = (
    b'{"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":"11781.80495970",'
    b'"estimatedSettlePrice":"","lastFundingRate":"0.00038246","interestRate":"0.00010000",'
    b'"nextFundingTime":1597392000000,"time":1597370495002,"newKey":{"x":1}}'
)
MISTYPED = GOOD.replace(b'"markPrice":"11793.63104562"', b'"markPrice":"n/a"')


@pytest.fixture
async def exchange() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback server answering premiumIndex with the queued bodies, the last one forever."""
    bodies: list[bytes] = []

    async def premium_index(request: web.Request) -> web.Response:
        body = bodies.pop(0) if len(bodies) > 1 else bodies[0]
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/fapi/v1/premiumIndex", premium_index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", bodies
    finally:
        await runner.cleanup()


@pytest.fixture
async def rest(exchange: tuple[str, list[bytes]]) -> AsyncIterator[BinanceRest]:
    async with aiohttp.ClientSession() as session:
        yield BinanceRest(session, exchange[0], weight_safety=ExchangeSettings().weight_safety)


async def test_the_client_returns_the_reply_typed_and_refuses_another_shape(
    exchange: tuple[str, list[bytes]], rest: BinanceRest
) -> None:
    _, bodies = exchange
    bodies[:] = [GOOD, MISTYPED]
    index = await rest.get("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, reply=PremiumIndex)
    assert (index.symbol, index.markPrice, index.estimatedSettlePrice) == (
        "BTCUSDT",
        11793.63104562,
        "",
    )
    with pytest.raises(InvalidResponse) as invalid:
        await rest.get("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, reply=PremiumIndex)
    assert str(invalid.value) == (
        "GET /fapi/v1/premiumIndex: unexpected reply: Expected `float`, got `str` - at "
        "`$.markPrice`"
    )


async def test_a_poller_retries_a_reply_of_another_shape_and_takes_the_next_good_one(
    exchange: tuple[str, list[bytes]], rest: BinanceRest
) -> None:
    _, bodies = exchange
    bodies[:] = [MISTYPED, GOOD]
    out: Channel[MarketEvent] = Channel("market", 10, OverflowPolicy.BLOCK)
    pollers = IndicatorPollers(["BTCUSDT"], rest, None, out, clock=ManualClock(1597370495000))
    with capture_logs() as logs:
        (snapshot,) = await pollers.poll_premium_index()
    assert snapshot == RateSnapshot(
        symbol="BTCUSDT",
        ts=1597370495002,
        mark_price=11793.63104562,
        index_price=11781.80495970,
        estimated_settle_price=None,
        funding_rate=0.00038246,
        interest_rate=0.0001,
        next_funding_time=1597392000000,
        known_at=1597370495002,
    )
    [retry] = [line for line in logs if line["event"] == "poller.retry"]
    assert "`$.markPrice`" in retry["error"]


async def test_the_reply_for_every_symbol_decodes_with_delivery_contracts_in_it(
    exchange: tuple[str, list[bytes]], rest: BinanceRest
) -> None:
    """Without a symbol, premiumIndex lists delivery contracts too, their funding keys empty."""
    _, bodies = exchange
    symbols = [f"S{i}USDT" for i in range(PREMIUM_INDEX_ALL_WEIGHT)]  # one call for all
    quarterly = (
        b'{"symbol":"BTCUSDT_260327","markPrice":"11800.1","indexPrice":"11781.8",'
        b'"estimatedSettlePrice":"11781.2","lastFundingRate":"","interestRate":"",'
        b'"nextFundingTime":0,"time":1597370495002}'
    )
    bodies[:] = [
        b"["
        + b",".join([quarterly, *(GOOD.replace(b"BTCUSDT", s.encode()) for s in symbols)])
        + b"]"
    ]
    out: Channel[MarketEvent] = Channel("market", 10, OverflowPolicy.BLOCK)
    pollers = IndicatorPollers(symbols, rest, None, out, clock=ManualClock(1597370495000))
    # (A reply that did not decode would be retried for ever: the poll would never end.)
    snapshots = await asyncio.wait_for(pollers.poll_premium_index(), 10)
    assert [(s.symbol, s.funding_rate, s.next_funding_time) for s in snapshots] == [
        (s, 0.00038246, 1597392000000) for s in symbols
    ]
