"""A hundred symbols starting with a large backfill: the live premiumIndex polls keep their pace.

The daemon starts after ten minutes away: 12 busy symbols (50 trades/s) and 88 quiet ones have
their tapes to catch up over REST (about 9,000 weight at 20 per call, several minutes of the
weight budget), and 30 days of the five ratio series and funding to fetch for every symbol
(9,000 calls to /futures/data, paced by its own count of 1000 per 5 minutes). Throughout, the
premiumIndex poll (every second here) must go out on time, as the exchange sees it; and the
exchange must never have had to refuse a call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg

from arbengine.sim.market_model import HIST_KINDS
from arbengine.sim.server import SimConfig, SimServer
from arbengine.store.market_sql import TRADE_COLUMNS
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from tests.e2e.collect.test_outages import bearer, get_json
from tests.support.waiting import eventually

MAJORS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
SYMBOLS = MAJORS + tuple(f"ALT{i:03d}USDT" for i in range(96))
BUSY = SYMBOLS[:12]
AWAY_MS = 600_000
INTERVAL_S = 1.0
WINDOW_S = 20.0
PREMIUM = "/fapi/v1/premiumIndex"
AGG_TRADES = "/fapi/v1/aggTrades"


async def requests(sim: SimServer, path: str, since: float) -> list[float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{sim.control_url}/requests", params={"path": path, "since": str(since)}
        ) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return [float(t) for t in body["times"]]


async def store_first_trades(sim: SimServer, url: str) -> None:
    """Each symbol's first trade, as if stored before the daemon went away."""
    rows = []
    for symbol in SYMBOLS:
        [r] = sim.tape(symbol).rows(0, 1)
        rows.append((symbol, r["a"], r["T"], float(r["p"]), float(r["q"]), r["f"], r["l"], r["m"]))
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
        await ensure_partitions_covering(conn, min(r[2] for r in rows), sim.sim_time_ms + 3_600_000)
        await conn.copy_records_to_table("agg_trades", records=rows, columns=TRADE_COLUMNS)
    finally:
        await conn.close()


async def test_premium_index_keeps_its_pace_while_a_large_backfill_runs(
    daemon_env: dict, spawn_daemon, database_url: str
) -> None:
    now = int(time.time() * 1000) // 1000 * 1000
    config = SimConfig(
        port=0,
        seed=12,
        symbols=SYMBOLS,
        trade_rate=0.2,
        trade_rates=dict.fromkeys(BUSY, 50.0),
        start_ms=now - AWAY_MS,
        history_days=30,
    )
    async with SimServer(config) as sim:
        # Ten minutes of market at once, then on in real time: the exchange's clock (its
        # /fapi/v1/time) is the wall clock, as its weight windows are, like Binance's.
        sim.clock.pause()
        await sim.advance_to(now)
        await store_first_trades(sim, database_url)
        await sim.advance_to(int(time.time() * 1000))
        sim.clock.resume()
        env = {
            **daemon_env,
            "ARB_DATABASE_URL": database_url,
            "ARB_COLLECT_ENABLED": "true",
            "ARB_ENGINE_ENABLED": "false",
            "ARB_COLLECT_SYMBOLS": ",".join(SYMBOLS),
            "ARB_EXCHANGE_REST_URL": sim.rest_url,
            "ARB_EXCHANGE_WS_URL": sim.market_ws_url,
            "ARB_EXCHANGE_COINBASE_URL": sim.coinbase_url,
            "ARB_COLLECT_PREMIUM_INDEX_INTERVAL": f"{INTERVAL_S:g}s",
            "ARB_COLLECT_OPEN_INTEREST_INTERVAL": "60s",
            "ARB_COLLECT_HISTORY_BACKFILL": "30d",
        }
        daemon = await spawn_daemon(env)
        api = await daemon.started()

        async def backfill_under_way() -> bool:
            return all([await requests(sim, AGG_TRADES, 0), await requests(sim, PREMIUM, 0)])

        await eventually(backfill_under_way, 60, what="catch-up and premiumIndex polls begun")
        started = time.time()
        await asyncio.sleep(WINDOW_S)  # observe a stretch of the backfill
        ended = time.time()

        # The exchange's view: premiumIndex on time all through the window ...
        polls = [t for t in await requests(sim, PREMIUM, started) if t <= ended]
        expected = WINDOW_S / INTERVAL_S
        assert len(polls) >= 0.9 * expected, f"{len(polls)} premiumIndex polls in {WINDOW_S}s"
        gaps = [b - a for a, b in zip([started, *polls], [*polls, ended], strict=True)]
        assert max(gaps) <= 2 * INTERVAL_S, f"premiumIndex paused {max(gaps):.1f}s"
        # ... while the tape's catch-up was being fetched in the same window, paced ...
        catch_up = [t for t in await requests(sim, AGG_TRADES, started) if t <= ended]
        assert len(catch_up) >= 5, f"{len(catch_up)} aggTrades calls in the window"
        # ... and the ratio history too, within its own count (800 of 1000 per 5 minutes).
        history = [
            t
            for kind in HIST_KINDS
            for t in await requests(sim, f"/futures/data/{kind}", started)
            if t <= ended
        ]
        assert len(history) >= 10, f"{len(history)} /futures/data calls in the window"
        # ... and no call was ever refused (weight, /futures/data and funding counts alike).
        counts = sim.state()["requests"]
        refused = {
            path: n
            for path, c in counts.items()
            for status, n in c["statuses"].items()
            if status in ("429", "418")
        }
        assert refused == {}

        # Both backfills still running, and the daemon says how far they are.
        token = await bearer(daemon, database_url)
        status, server = await get_json(f"{api}/api/server", token)
        assert status == 200
        progress = {s["series"]: s for s in server["backfill"]}
        assert set(progress) == {
            "agg_trades",
            "funding_rate",
            "open_interest_hist",
            "ls_global",
            "ls_top_position",
            "ls_top_account",
            "taker_ratio",
        }
        for series in ("agg_trades", "ls_global"):
            assert progress[series]["total"] == len(SYMBOLS)
            assert progress[series]["done"] < len(SYMBOLS), progress[series]
            assert progress[series]["finished_at"] is None
        assert progress["funding_rate"]["done"] == len(SYMBOLS)  # one call each: done at once
        rest = server["rest"]
        # Declared: premiumIndex for all symbols at weight 10 a second, 100 open interests
        # a minute: 700 a minute, kept with a quarter more and 20.
        assert rest["live_demand"] == 700.0
        assert rest["live_reserve"] == 895
        assert rest["lower_share"] == rest["budget"] - 895
        [futures_data] = [g for g in rest["groups"] if g["name"] == "futures_data"]
        assert futures_data["allowed"] == 800
        assert 0 < futures_data["used"] <= 800
        lines = [
            line for line in daemon.events("backfill.progress") if line["series"] == "ls_global"
        ]
        assert lines[0]["done"] == 0
        assert lines[0]["total"] == len(SYMBOLS)
