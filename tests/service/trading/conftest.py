"""The live executor against the simulated exchange (real sockets, manual clock) and the
real embedded PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from arbengine.domain.engine_rows import ExitRule
from arbengine.domain.events import Signal
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.clock import Clock, ManualClock
from arbengine.settings import DatabaseSettings
from arbengine.sim import SimServer
from arbengine.store.database import open_database
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import ExecutorSettings, LiveExecutor
from tests.service.sim.conftest import BASE, START
from tests.service.sim.simclient import signed
from tests.support.live_examples import V52_EXIT

RISK_USD = Decimal(10)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(replace(BASE, check_timestamps=False))
    await server.start()
    await server.advance_to(START + 10_000)
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def records(database_url: str) -> AsyncIterator[LiveRecords]:
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        yield LiveRecords(db)


@pytest.fixture
async def rest(sim: SimServer, http: aiohttp.ClientSession) -> BinanceRest:
    rest = BinanceRest(
        http,
        sim.rest_url,
        api_key=sim.config.api_key,
        api_secret=sim.config.api_secret,
        weight_safety=0.8,
    )
    await rest.sync_time()
    return rest


def make_executor(
    rest: BinanceRest,
    records: LiveRecords,
    rule: ExitRule = V52_EXIT,
    clock: Clock | None = None,
    max_positions: int = 2,
    poll_s: float = 1.0,
) -> LiveExecutor:
    settings = ExecutorSettings(
        strategies=frozenset({"v52"}),
        risk_per_trade_usd=RISK_USD,
        max_positions=max_positions,
        leverage=1,
        poll_interval_s=poll_s,
    )
    return LiveExecutor(rest, records, settings, {"v52": rule}, clock=clock)


@pytest.fixture
def market_time(sim: SimServer) -> ManualClock:
    """The exchange's market time as the executor sees it (the sim's clock is manual):
    a test moves it with the sim (``advance``)."""
    return ManualClock(sim.sim_time_ms)


@pytest.fixture
def executor(rest: BinanceRest, records: LiveRecords, market_time: ManualClock) -> LiveExecutor:
    return make_executor(rest, records, clock=market_time)


async def advance(sim: SimServer, market_time: ManualClock, ms: int) -> None:
    market_time.set_ms(await sim.advance_to(sim.sim_time_ms + ms))


async def last_price(http: aiohttp.ClientSession, sim: SimServer, symbol: str) -> float:
    async with http.get(f"{sim.rest_url}/fapi/v1/ticker/price", params={"symbol": symbol}) as r:
        return float((await r.json())["price"])


async def a_signal(
    http: aiohttp.ClientSession, sim: SimServer, *, direction: int = 1, symbol: str = "BTCUSDT"
) -> Signal:
    """A v52 signal at the sim's last price, its stop and targets 0.75 % and more away."""
    price = await last_price(http, sim, symbol)
    return Signal(
        tick_ms=sim.sim_time_ms,
        symbol=symbol,
        strategy="v52",
        strategy_hash="h" * 64,
        direction=1 if direction == 1 else -1,
        score=80.0,
        coverage=100.0,
        price=price,
        atr=round(price * 0.005, 2),
        features={},
        contributions={},
    )


async def positions(http: aiohttp.ClientSession, sim: SimServer) -> dict[str, Decimal]:
    _, rows, _ = await signed(http, sim, "GET", "/fapi/v3/positionRisk")
    return {r["symbol"]: Decimal(r["positionAmt"]) for r in rows if Decimal(r["positionAmt"])}


async def open_algos(http: aiohttp.ClientSession, sim: SimServer) -> list[dict[str, Any]]:
    _, rows, _ = await signed(http, sim, "GET", "/fapi/v1/openAlgoOrders")
    assert isinstance(rows, list)
    return rows


async def entry_orders(http: aiohttp.ClientSession, sim: SimServer) -> list[dict[str, Any]]:
    """Every order the sim has for BTCUSDT that opened rather than reduced."""
    _, rows, _ = await signed(http, sim, "GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT"})
    return [r for r in rows if not r["reduceOnly"] and not r["closePosition"]]
