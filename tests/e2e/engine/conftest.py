"""A daemon running the engine on a simulated exchange with 100 minutes of history."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import pytest

from arbengine.sim.limits import LimitConfig
from arbengine.sim.server import SimConfig, SimServer
from tests.conftest import REPO
from tests.e2e.collect.conftest import collect_env
from tests.support.daemon import DaemonProcess

SYMBOLS = ("BTCUSDT", "ETHUSDT")
HISTORY_MS = 100 * 60_000
WEIGHT_LIMIT = 24_000
"""The sim's REQUEST_WEIGHT per minute: ten times Binance's. At Binance's 2400 the REST budget
paces the start-up's catch-up of the tape (about 60 aggTrades calls of weight 20 for the
history below) over half a minute or more, and a restart within the same wall-clock minute
waits for the next one; the engine's tests are about what it decides, not the budget's pace
(tests/e2e/collect/test_rest_budget.py holds that at Binance's limit)."""

PROBE = {
    "name": "probe",
    "symbols": list(SYMBOLS),
    "tick": "15s",
    "windows": {"fast": "5m", "mid": "20m", "day": "1h"},
    "atr_percentile_min_values": 12,
    "direction": {"feature": "flow_fast", "min": 0.0},
    "factors": [
        {"feature": "flow_fast", "weight": 3, "full": 0.0001},
        {"feature": "vwap_dev_fast", "weight": 1, "full": 0.01},
        {"feature": "funding_rate", "weight": 1, "full": 0.001, "contrarian": True},
    ],
    "entry": {"threshold": 40, "cooldown": "1m"},
    "exit": {"sl_atr": 0.5, "tp1_atr": 0.5, "tp1_fraction": 0.5, "tp2_atr": 1.0,
             "max_hold": "5m"},
    "costs": {"fee_bps": 4, "slippage_bps": 1},
}  # fmt: skip


def write_strategy(directory: Path, doc: dict, name: str = "probe.json") -> None:
    (directory / name).write_text(json.dumps(doc, indent=2))


@dataclass
class EngineRun:
    sim: SimServer
    daemon: DaemonProcess
    url: str
    strategies: Path

    async def advance(self, seconds: float, step_ms: int = 500) -> None:
        end = self.sim.sim_time_ms + int(seconds * 1000)
        while self.sim.sim_time_ms < end:
            await self.sim.advance_to(min(end, self.sim.sim_time_ms + step_ms))

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()


def engine_sim_config(history_ms: int = HISTORY_MS, **overrides: object) -> SimConfig:
    """A manual sim ``history_ms`` of market before now."""
    now = int(time.time() * 1000) // 1000 * 1000
    config = SimConfig(port=0, manual=True, seed=5, symbols=SYMBOLS, trade_rate=4.0,
                       start_ms=now - history_ms, history_days=1,
                       limits=LimitConfig(weight_per_minute=WEIGHT_LIMIT))  # fmt: skip
    return replace(config, **overrides)


@pytest.fixture
def engine_sim_overrides() -> dict[str, object]:
    """SimConfig fields (and ``history_ms``) a test module changes (override this fixture)."""
    return {}


@pytest.fixture
def engine_strategies() -> list[dict]:
    """The strategy files the daemon runs (override this fixture)."""
    return [PROBE]


BeforeStart = Callable[[SimServer, str], Awaitable[None]]


@pytest.fixture
def engine_before_start() -> BeforeStart | None:
    """Run with the sim and the database URL before the daemon starts (override this fixture)."""
    return None


@pytest.fixture
def engine_env() -> dict[str, str]:
    """Daemon settings a test module adds (override this fixture)."""
    return {}


@pytest.fixture
async def engine_sim(engine_sim_overrides: dict[str, object]) -> AsyncIterator[SimServer]:
    config = engine_sim_config(**engine_sim_overrides)
    now = int(time.time() * 1000) // 1000 * 1000
    async with SimServer(config) as sim:
        # 100 minutes of market before the daemon starts, and a little ahead of the wall
        # clock: the daemon must follow the exchange's clock (its event times), not its own.
        await sim.advance_to(now + 120_000)
        yield sim


@pytest.fixture
async def engine_run(
    engine_sim: SimServer,
    engine_strategies: list[dict],
    engine_before_start: BeforeStart | None,
    engine_env: dict[str, str],
    database_url: str,
    daemon_env: dict,
    spawn_daemon,
    tmp_path: Path,
) -> EngineRun:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    for doc in engine_strategies:
        write_strategy(strategies, doc, f"{doc['name']}.json")
    if engine_before_start is not None:
        await engine_before_start(engine_sim, database_url)
    env = {
        **collect_env(engine_sim, daemon_env, database_url),
        "ARB_ENGINE_STRATEGIES_DIR": str(strategies),
        "ARB_COLLECT_INITIAL_BACKFILL": "3h",
        **engine_env,
    }
    daemon = await spawn_daemon(env)
    await daemon.started()
    await daemon.wait_for("engine.warm_start")
    return EngineRun(engine_sim, daemon, database_url, strategies)


@dataclass(frozen=True)
class StoreBacktest:
    """A backtest of what a live run stored, and the evaluations of both to compare."""

    out: Path
    """The backtest's output directory (evaluations, signals and trades CSV)."""
    last_common: int
    """The last tick every symbol reached live: both sides are compared up to it."""
    live: dict[tuple[str, str, int], asyncpg.Record]
    """Stored evaluations by (strategy, symbol, tick)."""
    replayed: dict[tuple[str, str, int], dict[str, str]]
    """The backtest's evaluations by (strategy, symbol, tick)."""


async def backtest_the_store(run: EngineRun, strategies: list[str], out: Path) -> StoreBacktest:
    """Backtest the stored data with the run's strategy files ``strategies`` (names), from the
    first tick evaluated live to the last stored trade, as a user would (``arbengine backtest``
    in a process of its own)."""
    ticks = await run.fetch(
        "SELECT symbol, min(tick) AS first, max(tick) AS last FROM signal_indicators GROUP BY 1"
    )
    first = min(r["first"] for r in ticks)
    last_common = min(r["last"] for r in ticks)
    last_trade = (await run.fetch("SELECT max(ts) AS t FROM agg_trades"))[0]["t"]
    files = [
        arg for name in strategies for arg in ("--strategy", str(run.strategies / f"{name}.json"))
    ]
    backtest = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", "backtest", *files,
        "--from", str(first), "--to", str(last_trade + 1), "--out", str(out), "--evaluations",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "ARB_DATABASE_URL": run.url,
             "ARB_CONFIG": str(REPO / "config" / "arbengine.toml")},
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(backtest.communicate(), 300)
    assert backtest.returncode == 0, stderr.decode()
    live = {
        (r["strategy"], r["symbol"], r["tick"]): r
        for r in await run.fetch("SELECT * FROM signal_indicators WHERE tick <= $1", last_common)
    }
    with (out / "evaluations.csv").open() as handle:
        replayed = {
            (r["strategy"], r["symbol"], int(r["tick"])): r
            for r in csv.DictReader(handle)
            if int(r["tick"]) <= last_common
        }
    return StoreBacktest(out, last_common, live, replayed)
