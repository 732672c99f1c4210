"""Parity: the backtester over the stored data reproduces what the live daemon decided.

The daemon runs against the simulated exchange with paper trading on, two strategies
between them reading every feature of SIGNALS.md (so trades, liquidations in bursts,
premiumIndex readings, open interest, the ratio series and Coinbase prices are all in
play); then ``arbengine backtest`` replays the stored period. Every evaluation (features,
factors, gates, score, why it did not fire), every signal and every paper trade is
compared field by field.
"""

from __future__ import annotations

import csv
import json
import math
import signal
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from arbengine.domain.market import Indicator
from arbengine.signals.features import FEATURE_NAMES
from arbengine.sim.server import SimServer
from arbengine.store.market_sql import insert_indicators
from arbengine.store.migrations import apply_migrations
from tests.e2e.engine.conftest import PROBE, SYMBOLS, EngineRun, backtest_the_store
from tests.support.waiting import eventually

REL = 1e-9

# Every feature as a factor, with gates and a confirmation: nothing of SIGNALS.md unread.
UNSIGNED = {"price", "vwap_fast", "vwap_mid", "vwap_day", "atr", "atr_pct", "atr_percentile",
            "large_threshold", "trades_fast", "oi_change_1h"}  # fmt: skip
CONTRARIAN = {"funding_rate", "funding_annualised", "ls_global"}
FULL = {"price": 1e6, "vwap_fast": 1e6, "vwap_mid": 1e6, "vwap_day": 1e6, "atr": 1e4,
        "atr_pct": 0.01, "atr_percentile": 100, "large_threshold": 1e6, "trades_fast": 5000,
        "oi_change_1h": 0.01, "cvd_fast": 50, "cvd_mid": 100, "cvd_day": 200,
        "flow_fast": 0.2, "flow_mid": 0.2, "vwap_dev_fast": 0.002, "vwap_dev_mid": 0.004,
        "large_imbalance_fast": 0.5, "funding_rate": 0.0005, "funding_annualised": 0.5,
        "ls_global": 0.3, "ls_top": 0.3, "taker_ratio": 0.3, "coinbase_premium_bps": 5,
        "liq_imbalance_fast": 0.5}  # fmt: skip
EVERY = {
    "name": "every",
    "symbols": list(SYMBOLS),
    "tick": "15s",
    "windows": {"fast": "5m", "mid": "20m", "day": "1h"},
    "max_staleness": "3m",
    "atr_percentile_min_values": 12,
    "direction": {"feature": "flow_fast", "min": 0.0, "confirm": ["cvd_mid"]},
    "factors": [
        {"feature": f, "weight": 1 + i % 3, "full": FULL[f], "unsigned": f in UNSIGNED,
         "contrarian": f in CONTRARIAN}
        for i, f in enumerate(FEATURE_NAMES)
    ],
    "gates": {"atr_percentile": [0, 100], "trades_fast": [10, None],
              "coinbase_premium_bps": [-500, 500], "liq_imbalance_fast": [-1, 1]},
    "entry": {"threshold": 30, "min_coverage": 50, "cooldown": "2m", "max_open_per_symbol": 1},
    "exit": {"sl_atr": 0.5, "tp1_atr": 0.5, "tp1_fraction": 0.5, "tp2_atr": 1.0,
             "breakeven_after_tp1": True, "max_hold": "5m"},
    "costs": {"fee_bps": 4, "slippage_bps": 1},
}  # fmt: skip


@pytest.fixture
def engine_strategies() -> list[dict]:
    return [PROBE, EVERY]


@pytest.fixture
def engine_sim_overrides() -> dict[str, object]:
    # Liquidation bursts (about one every 10 s, every second when volatile), and enough
    # history for atr_percentile (14 candles for the ATR, then 12 of its values).
    return {"liquidations": 30.0, "history_ms": 150 * 60_000}


@pytest.fixture
def engine_before_start():
    """Two hours of open interest before the daemon starts, so ``oi_change_1h`` is in play
    (the daemon polls the point value from its start only). Only values known before now:
    the sim's market runs ahead of our clock, and a value stored ahead of the daemon's start
    would be one the daemon never received (its warm start reads up to its start)."""

    async def seed(sim: SimServer, url: str) -> None:
        now = int(time.time() * 1000)
        values = []
        async with aiohttp.ClientSession() as http:
            for symbol in SYMBOLS:
                params = {"symbol": symbol, "period": "5m", "limit": 30}
                async with http.get(f"{sim.rest_url}/futures/data/openInterestHist",
                                    params=params) as response:  # fmt: skip
                    assert response.status == 200
                    for row in await response.json():
                        ts = int(row["timestamp"])
                        if ts >= now:
                            continue
                        values.append(Indicator(symbol, "open_interest", ts, ts,
                                                float(row["sumOpenInterest"])))  # fmt: skip
        conn = await asyncpg.connect(url)
        try:
            await apply_migrations(conn)
            await insert_indicators(conn, values)
        finally:
            await conn.close()

    return seed


def blank_is_none(text: str) -> str | None:
    """A CSV cell: empty for None."""
    return text or None


def same(a: object, b: object) -> bool:
    """Equal, floats to 1e-9 relative, through nested JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return close(float(a), float(b))
    return a == b


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


async def test_backtest_reproduces_live_signals_and_paper_trades(
    engine_run: EngineRun, tmp_path: Path
) -> None:
    run = engine_run

    async def enough() -> bool:
        await run.advance(10, step_ms=250)
        signals = await run.fetch("SELECT count(*) AS n FROM signal_logs")
        closed = await run.fetch("SELECT count(*) AS n FROM paper_trades WHERE status = 'closed'")
        liquidated = await run.fetch(
            "SELECT count(*) AS n FROM signal_indicators WHERE strategy = 'every' "
            "AND (features->>'liq_imbalance_fast')::float8 <> 0"
        )
        # Each symbol is evaluated once its own history is in (one may take longer than
        # the other): both must be, for the backtest to have nothing the live run had not.
        evaluated = await run.fetch("SELECT count(DISTINCT symbol) AS n FROM signal_indicators")
        return (
            signals[0]["n"] >= 6
            and closed[0]["n"] >= 3
            and liquidated[0]["n"] >= 20
            and evaluated[0]["n"] == len(SYMBOLS)
        )

    await eventually(
        enough, 240, interval=0.1, what="signals, closed trades, liquidations, every symbol"
    )
    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(60) == 0
    assert not run.daemon.events("engine.late_trade")
    assert not run.daemon.events("engine.late_event"), str(run.daemon.events("engine.late_event"))

    bt = await backtest_the_store(run, ["probe", "every"], tmp_path / "bt")
    out, last_common = bt.out, bt.last_common

    # -- evaluations: every one, fired or not -------------------------------------------
    live_evaluations, replayed_evaluations = bt.live, bt.replayed
    assert set(replayed_evaluations) == set(live_evaluations)
    in_play: set[str] = set()
    for key, row in live_evaluations.items():
        other = replayed_evaluations[key]
        assert other["strategy_hash"] == row["strategy_hash"], key
        direction = None if row["direction"] is None else str(row["direction"])
        assert blank_is_none(other["direction"]) == direction, key
        assert other["fired"] == str(row["fired"]), key
        assert blank_is_none(other["reason"]) == row["reason"], key
        live_features, bt_features = json.loads(row["features"]), json.loads(other["features"])
        differ = sorted(k for k in live_features.keys() | bt_features.keys()
                        if not same(live_features.get(k), bt_features.get(k)))  # fmt: skip
        assert not differ, (key, {k: (live_features.get(k), bt_features.get(k)) for k in differ})
        for name in ("score", "coverage"):
            value = blank_is_none(other[name])
            assert same(None if value is None else float(value), row[name]), (key, name)
        for name in ("contributions", "gates"):
            assert same(json.loads(other[name]), json.loads(row[name])), (key, name)
        if row["strategy"] == "every":
            in_play |= {f for f, v in json.loads(row["features"]).items() if v != 0}
    assert in_play == set(FEATURE_NAMES), set(FEATURE_NAMES) - in_play

    # -- signals ---------------------------------------------------------------------
    live = {
        (r["tick"], r["symbol"], r["strategy"]): r
        for r in await run.fetch("SELECT * FROM signal_logs WHERE tick <= $1", last_common)
    }
    with (out / "signals.csv").open() as handle:
        replayed = {
            (int(r["tick"]), r["symbol"], r["strategy"]): r
            for r in csv.DictReader(handle)
            if int(r["tick"]) <= last_common
        }
    assert live, "no live signal to compare"
    assert set(replayed) == set(live)
    for key, row in live.items():
        other = replayed[key]
        assert int(other["direction"]) == row["direction"], key
        assert other["strategy_hash"] == row["strategy_hash"]
        assert close(float(other["score"]), row["score"]), key
        assert close(float(other["coverage"]), row["coverage"]), key
        assert close(float(other["price"]), row["price"]), key
        assert close(float(other["atr"]), row["atr"]), key
        live_contrib = json.loads(row["contributions"])
        bt_contrib = {k: float(v) for k, v in json.loads(other["contributions"]).items()}
        assert set(bt_contrib) == set(live_contrib), key
        assert all(close(bt_contrib[k], live_contrib[k]) for k in live_contrib), key

    # -- paper trades ----------------------------------------------------------------
    live_trades = {
        (r["strategy"], r["symbol"], r["entry_tick"]): r
        for r in await run.fetch("SELECT * FROM paper_trades WHERE entry_tick <= $1", last_common)
    }
    with (out / "trades.csv").open() as handle:
        bt_trades = {
            (r["strategy"], r["symbol"], int(r["entry_tick"])): r
            for r in csv.DictReader(handle)
            if int(r["entry_tick"]) <= last_common
        }
    assert set(bt_trades) == set(live_trades)
    assert any(r["status"] == "closed" for r in live_trades.values())
    for key, row in live_trades.items():
        other = bt_trades[key]
        assert other["status"] == row["status"], key
        assert (other["exit_reason"] or None) == row["exit_reason"], key
        for name in ("entry_price", "r_distance", "stop_loss", "quantity"):
            assert close(float(other[name]), row[name]), (key, name)
        fills = json.loads(row["exits"])["fills"]
        bt_fills = json.loads(other["exits"])
        assert len(bt_fills) == len(fills), key
        for bt_fill, fill in zip(bt_fills, fills, strict=True):
            assert (bt_fill["ts"], bt_fill["agg_id"], bt_fill["reason"]) == (
                fill["ts"],
                fill["agg_id"],
                fill["reason"],
            ), key
            assert close(bt_fill["price"], fill["price"]), key
            assert close(bt_fill["fraction"], fill["fraction"]), key
        if row["result_r"] is None:
            # Live states a result once a part is closed; the backtest's is the costs so far.
            assert not fills, key
            costs_usd = float(other["funding_usd"]) - float(other["fees_usd"])
            risk = float(other["quantity"]) * float(other["r_distance"])
            assert close(float(other["result_r"]), costs_usd / risk), key
        else:
            assert close(float(other["result_r"]), row["result_r"]), key
        assert close(float(other["funding_usd"]), row["funding"]), key


pytestmark = pytest.mark.timeout(400)
