"""Pollers against the simulated exchange: one symbol's failure never stops another's polls,
and each symbol's first round of each series is reported delivered on its own."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from arbengine.collect.indicators import IndicatorPollers, PollerPolicy
from arbengine.collect.listing import SymbolListing
from arbengine.domain.market import Indicator, MarketEvent
from arbengine.exchange.exchange_errors import UnexpectedStatus
from arbengine.exchange.replies import ExchangeInfo
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.backoff import EXCHANGE_REST_RETRY, RetryPolicy
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.delivered_inputs import Readiness
from arbengine.runtime.health import HealthBoard
from arbengine.settings import ExchangeSettings
from arbengine.sim.server import SimConfig, SimServer

WEIGHT_SAFETY = ExchangeSettings().weight_safety
"""The daemon's share of each REST limit (a test of the budget states its own)."""

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    start = int(time.time() * 1000) // 1000 * 1000
    config = SimConfig(port=0, manual=True, seed=4, symbols=SYMBOLS, start_ms=start)
    async with SimServer(config) as server:
        await server.advance_by(2_000)
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def control(session: aiohttp.ClientSession, sim: SimServer, path: str, body: dict) -> None:
    async with session.post(f"{sim.control_url}/{path}", json=body) as response:
        assert response.status == 200, await response.text()


class Polled:
    def __init__(
        self,
        sim: SimServer,
        session: aiohttp.ClientSession,
        policy: PollerPolicy | None = None,
        retry: RetryPolicy = EXCHANGE_REST_RETRY,
    ) -> None:
        self.out: Channel[MarketEvent] = Channel("market", 10_000, OverflowPolicy.BLOCK)
        self.board = HealthBoard()
        self.rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
        self.listing = SymbolListing(SYMBOLS, health=self.board)
        self.stopped: list[str] = []
        self.listing.on_stop(self.stopped.append)
        self.readiness = Readiness(SYMBOLS)
        self.pollers = IndicatorPollers(
            SYMBOLS,
            self.rest,
            None,
            self.out,
            listing=self.listing,
            health=self.board,
            readiness=self.readiness,
            policy=policy or PollerPolicy(),
            retry=retry,
            rng=random.Random(5),
        )

    async def start(self) -> None:
        self.listing.apply(await self.rest.get("/fapi/v1/exchangeInfo", reply=ExchangeInfo))

    async def open_interest(self) -> list[str]:
        """One round of the open-interest poller: the symbols it published."""
        await self.pollers.poll_open_interest()
        events = self.out.get_nowait_many(100)
        return [e.symbol for e in events if isinstance(e, Indicator)]


async def test_a_rejection_for_one_symbol_is_that_symbols_alone(sim, session) -> None:
    polled = Polled(sim, session)
    await polled.start()
    rejected = {"count": 1, "status": 451, "path": "/fapi/v1/openInterest", "symbol": "ETHUSDT"}
    await control(session, sim, "faults", {"http_5xx": rejected})
    assert await polled.open_interest() == ["BTCUSDT"]
    failing = polled.board.get("pollers", subject="open_interest:ETHUSDT")
    assert failing is not None
    assert failing.reason.startswith(
        "open_interest failed: UnexpectedStatus: GET /fapi/v1/openInterest: HTTP 451"
    )
    # Tried again next round; once it answers, the report is taken back.
    assert await polled.open_interest() == ["BTCUSDT", "ETHUSDT"]
    assert not polled.board
    assert polled.stopped == []


async def test_the_same_rejection_for_every_symbol_is_the_pollers_own(sim, session) -> None:
    polled = Polled(sim, session)
    await polled.start()
    rejected = {"count": 2, "status": 404, "path": "/fapi/v1/openInterest"}
    await control(session, sim, "faults", {"http_5xx": rejected})
    with pytest.raises(UnexpectedStatus, match="HTTP 404"):
        await polled.open_interest()


async def test_a_symbol_the_exchange_no_longer_knows_stops_everywhere(sim, session) -> None:
    polled = Polled(sim, session)
    await polled.start()
    await control(session, sim, "market", {"symbol": "ETHUSDT", "delist": True})
    assert await polled.open_interest() == ["BTCUSDT"]
    assert polled.stopped == ["ETHUSDT"]  # every collector listening is told
    [skipped] = polled.listing.skipped()
    assert skipped.symbol == "ETHUSDT"
    assert skipped.reason.startswith("the exchange answered GET /fapi/v1/openInterest: HTTP 400")
    entry = polled.board.get("collect", subject="ETHUSDT")
    assert entry is not None
    assert entry.reason.startswith("stopped: the exchange answered")
    assert await polled.open_interest() == ["BTCUSDT"]  # not asked for any more
    assert polled.stopped == ["ETHUSDT"]


async def test_each_symbols_first_round_of_each_series_is_reported_once_published(
    sim, session
) -> None:
    polled = Polled(sim, session, PollerPolicy(history_backfill_ms=3_600_000))
    await polled.start()
    board = polled.readiness
    # ETH's global long/short history does not come (the exchange holds the call).
    hang = {
        "seconds": 600,
        "path": "/futures/data/globalLongShortAccountRatio",
        "symbol": "ETHUSDT",
    }
    await control(session, sim, "faults", {"hang": hang})
    loops = [
        asyncio.create_task(loop())
        for loop in (
            polled.pollers.ratios_loop,
            polled.pollers.premium_index_loop,
            polled.pollers.coinbase_loop,
        )
    ]
    ratio_kinds = {"open_interest_hist", "ls_global", "ls_top_position", "ls_top_account",
                   "taker_ratio"}  # fmt: skip
    try:
        await asyncio.wait_for(board.wait_delivered("BTCUSDT", ratio_kinds), 20)
        published = {(e.symbol, e.kind) for e in polled.out.get_nowait_many(100_000)
                     if isinstance(e, Indicator)}  # fmt: skip
        assert {("BTCUSDT", k) for k in ratio_kinds} <= published  # published before reported
        await asyncio.wait_for(board.wait_delivered("ETHUSDT", ["premium_index"]), 20)
        # No Coinbase client: nothing will come, so nothing is waited for.
        assert board.delivered("BTCUSDT") == {*ratio_kinds, "premium_index", "coinbase_price"}
        assert board.delivered("ETHUSDT") == {"open_interest_hist", "premium_index",
                                              "coinbase_price"}  # fmt: skip
    finally:
        await control(session, sim, "faults", {"clear": True})
    await asyncio.wait_for(board.wait_delivered("ETHUSDT", ratio_kinds), 20)
    polled.pollers.request_stop()
    await asyncio.wait_for(asyncio.gather(*loops), 10)


async def test_a_poller_asked_to_stop_does_not_wait_for_its_call(sim, session) -> None:
    # At shutdown a poll may be held by the exchange (or by the weight budget until the next
    # minute): the stop must not wait for it.
    polled = Polled(sim, session)
    await polled.start()
    await control(session, sim, "faults", {"hang": {"seconds": 30, "scope": "rest"}})
    polling = asyncio.create_task(polled.pollers.premium_index_loop())
    # Let the call reach the sim, which holds it (nothing shows it arrived; the outcome does
    # not hang on it: a poller that sends it after the stop request waits all the same).
    await asyncio.sleep(0.2)
    assert not polling.done()
    polled.pollers.request_stop()
    done, _ = await asyncio.wait({polling}, timeout=2.0)
    assert done, "the poller waits for a call although asked to stop"
    assert polling.result() is None


async def test_a_poller_backs_off_on_5xx_and_429_as_its_policy_says_and_resumes(
    sim, session
) -> None:
    retry = RetryPolicy(initial_s=0.01, max_s=0.04)
    polled = Polled(sim, session, retry=retry)
    await polled.start()
    expected = random.Random(5)
    failing = {"count": 3, "status": 503, "path": "/fapi/v1/premiumIndex", "symbol": "BTCUSDT"}
    await control(session, sim, "faults", {"http_5xx": failing})
    with capture_logs() as logs:
        snapshots = await polled.pollers.poll_premium_index()
    assert sorted(s.symbol for s in snapshots) == sorted(SYMBOLS)
    retries = [e for e in logs if e["event"] == "poller.retry"]
    assert [e["retry_in_s"] for e in retries] == [retry.delay(a, expected) for a in (1, 2, 3)]
    assert all("HTTP 503" in e["error"] for e in retries), retries
    assert not polled.board

    # A 429: the client pauses for its Retry-After, the poller tries again and resumes.
    await control(session, sim, "faults", {"rest_429": {"count": 1, "retry_after": 1}})
    with capture_logs() as logs:
        snapshots = await polled.pollers.poll_premium_index()
    assert sorted(s.symbol for s in snapshots) == sorted(SYMBOLS)
    retries = [e for e in logs if e["event"] == "poller.retry"]
    assert [e["retry_in_s"] for e in retries] == [retry.delay(1, expected)]
    assert "429" in retries[0]["error"], retries
    assert not polled.board
