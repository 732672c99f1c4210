"""A simulated exchange in the test process and a collecting daemon pointed at it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest

from arbengine.sim.server import SimConfig, SimServer
from tests.support.daemon import BTC_STRATEGIES, DaemonProcess
from tests.support.waiting import eventually

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    start = int(time.time() * 1000) // 1000 * 1000
    config = SimConfig(
        port=0,
        manual=True,
        seed=11,
        symbols=SYMBOLS,
        trade_rate=40.0,
        start_ms=start,
        history_days=2,
    )
    async with SimServer(config) as server:
        yield server


def collect_env(sim: SimServer, base: dict[str, str], database_url: str) -> dict[str, str]:
    return {
        **base,
        "ARB_DATABASE_URL": database_url,
        "ARB_COLLECT_ENABLED": "true",
        "ARB_COLLECT_SYMBOLS": ",".join(SYMBOLS),
        "ARB_ENGINE_STRATEGIES_DIR": str(BTC_STRATEGIES),
        "ARB_EXCHANGE_REST_URL": sim.rest_url,
        "ARB_EXCHANGE_WS_URL": sim.market_ws_url,
        "ARB_EXCHANGE_COINBASE_URL": sim.coinbase_url,
        "ARB_COLLECT_REPAIR_GRACE": "200ms",
        "ARB_COLLECT_RECONNECT_INITIAL": "100ms",
        "ARB_COLLECT_RECONNECT_MAX": "500ms",
        "ARB_COLLECT_HISTORY_BACKFILL": "1d",
        "ARB_COLLECT_PREMIUM_INDEX_INTERVAL": "500ms",
        "ARB_COLLECT_OPEN_INTEREST_INTERVAL": "1s",
        "ARB_COLLECT_RATIOS_INTERVAL": "2s",
        "ARB_COLLECT_COINBASE_INTERVAL": "1s",
    }


async def fault(sim: SimServer, body: dict) -> dict:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.control_url}/faults", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def stored_tape(url: str, symbol: str) -> list[tuple]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT agg_id, ts, price, qty, first_trade_id, last_trade_id, is_buyer_maker "
            "FROM agg_trades WHERE symbol = $1 ORDER BY agg_id",
            symbol,
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


def sim_tape(sim: SimServer, symbol: str, from_id: int | None = None) -> list[tuple]:
    tape = sim.tape(symbol)
    lo = 0 if from_id is None else tape.index_of_id(from_id)
    return [
        (r["a"], r["T"], float(r["p"]), float(r["q"]), r["f"], r["l"], r["m"])
        for r in tape.rows(lo, tape.released)
    ]


async def last_stored_id(url: str, symbol: str) -> int | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT max(agg_id) FROM agg_trades WHERE symbol = $1", symbol)
    finally:
        await conn.close()


async def caught_up(sim: SimServer, url: str, timeout: float = 60.0) -> None:
    """Wait until every symbol's stored tape reaches the sim's last released id."""
    for symbol in SYMBOLS:
        target = sim.tape(symbol).last_id

        async def reached(symbol: str = symbol, target: int | None = target) -> bool:
            return await last_stored_id(url, symbol) == target

        await eventually(reached, timeout, what=f"{symbol} stored up to id {target}")


async def meta(url: str, symbol: str) -> asyncpg.Record:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow("SELECT * FROM agg_trades_meta WHERE symbol = $1", symbol)
    finally:
        await conn.close()


@dataclass
class Run:
    sim: SimServer
    url: str
    daemon: DaemonProcess
    spawn: Callable[..., Awaitable[DaemonProcess]]
    env: dict[str, str]

    async def advance(self, seconds: float, step_ms: int = 250) -> None:
        """Move simulated time forward in small steps, as a live market would."""
        end = self.sim.sim_time_ms + int(seconds * 1000)
        while self.sim.sim_time_ms < end:
            await self.sim.advance_to(min(end, self.sim.sim_time_ms + step_ms))


@pytest.fixture
async def run(
    request: pytest.FixtureRequest,
    sim: SimServer,
    database_url: str,
    daemon_env: dict,
    spawn_daemon,
) -> Run:
    """A collecting daemon; ``@pytest.mark.settings({...})`` adds or overrides variables."""
    env = collect_env(sim, daemon_env, database_url)
    marker = request.node.get_closest_marker("settings")
    if marker is not None:
        env.update(marker.args[0])
    daemon = await spawn_daemon(env)
    await daemon.started()
    for symbol in SYMBOLS:
        await daemon.wait_for(
            lambda line, s=symbol: (
                line.get("event") == "collector.tape_start" and line.get("symbol") == s
            )
        )
    await daemon.wait_for("stream.connected")
    return Run(sim, database_url, daemon, spawn_daemon, env)
