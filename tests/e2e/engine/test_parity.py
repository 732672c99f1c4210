"""Parity: the backtester over the stored trades reproduces what the live daemon decided.

The daemon runs against the simulated exchange with paper trading on; then
``arbengine backtest`` replays the stored period; signals (tick, symbol,
direction, score, contributions) and paper trades are compared field by field.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.engine.conftest import EngineRun
from tests.support.waiting import eventually

REL = 1e-9


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
        return signals[0]["n"] >= 6 and closed[0]["n"] >= 3

    await eventually(enough, 180, interval=0.1, what="signals and closed paper trades")
    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(60) == 0
    assert not run.daemon.events("engine.late_trade")

    ticks = await run.fetch(
        "SELECT symbol, min(tick) AS first, max(tick) AS last FROM signal_indicators GROUP BY 1"
    )
    first = min(r["first"] for r in ticks)
    last_common = min(r["last"] for r in ticks)
    last_trade = (await run.fetch("SELECT max(ts) AS t FROM agg_trades"))[0]["t"]

    out = tmp_path / "bt"
    backtest = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", "backtest",
        "--strategy", str(run.strategies / "probe.json"),
        "--from", str(first), "--to", str(last_trade + 1), "--out", str(out),
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "ARB_DATABASE_URL": run.url,
             "ARB_CONFIG": str(REPO / "config" / "arbengine.toml")},
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(backtest.communicate(), 300)
    assert backtest.returncode == 0, stderr.decode()

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
            assert other["result_r"] in ("", "0.0") or not fills
        else:
            assert close(float(other["result_r"]), row["result_r"]), key
        assert close(float(other["funding_usd"]), row["funding"]), key


pytestmark = pytest.mark.timeout(400)
