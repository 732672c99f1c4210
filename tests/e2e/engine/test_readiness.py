"""Readiness per symbol, with the daemon: one symbol's history is slow (the exchange holds its
global long/short ratio history) while the other's is in. The ready one is evaluated on time;
the slow one is not evaluated, says why (``/api/server``, ``/api/signals/latest``), and once
its history is in it is evaluated from its first tick, identically to a backtest of the
stored data, with no late trade."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from arbengine.signals import parse_strategy
from arbengine.sim.server import SimServer
from tests.e2e.collect.conftest import fault
from tests.e2e.collect.test_outages import bearer
from tests.e2e.engine.conftest import PROBE, SYMBOLS, EngineRun, backtest_the_store
from tests.e2e.engine.test_parity import close, same
from tests.support.waiting import eventually

FAST, SLOW = SYMBOLS  # BTCUSDT is polled first: its ratio history comes before ETHUSDT's hangs
RATIO = "/futures/data/globalLongShortAccountRatio"

CROWD = {
    **PROBE,
    "name": "crowd",
    "factors": [
        *PROBE["factors"],
        {"feature": "ls_global", "weight": 2, "full": 0.3, "contrarian": True},
    ],
}


@pytest.fixture
def engine_strategies() -> list[dict]:
    return [CROWD]


@pytest.fixture
def engine_before_start():
    async def hold_the_slow_symbols_ratio_history(sim: SimServer, _url: str) -> None:
        await fault(sim, {"hang": {"seconds": 600, "path": RATIO, "symbol": SLOW}})

    return hold_the_slow_symbols_ratio_history


@pytest.fixture
def engine_env() -> dict[str, str]:
    # The held call just waits (it is answered once the fault is cleared).
    return {"ARB_EXCHANGE_REQUEST_TIMEOUT": "10m"}


async def api(run: EngineRun, path: str, token: str) -> Any:
    url = f"{await run.daemon.started()}{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def ticks_of(run: EngineRun, symbol: str) -> list[int]:
    rows = await run.fetch(
        "SELECT tick FROM signal_indicators WHERE symbol = $1 ORDER BY tick", symbol
    )
    return [r["tick"] for r in rows]


async def test_a_slow_symbol_waits_alone_and_is_then_evaluated_as_a_backtest_would(
    engine_run: EngineRun, tmp_path: Path
) -> None:
    run = engine_run
    token = await bearer(run.daemon, run.url)

    async def fast_evaluated_while_slow_waits() -> dict[str, Any] | None:
        await run.advance(2, step_ms=250)
        server = await api(run, "/api/server", token)
        states = {s["symbol"]: s for s in server["engine"]["symbols"]}
        fast_ticks = await ticks_of(run, FAST)
        if states[FAST]["state"] != "ready" or len(fast_ticks) < 4:
            return None
        # The slow symbol's tape catch-up is paced behind the live polls: wait until it is in,
        # so the held ratio history is all it still waits for.
        return None if "tape" in states[SLOW]["waiting_for"] else states

    states = await eventually(fast_evaluated_while_slow_waits, 120, interval=0.1,
                              what=f"{FAST} evaluated while {SLOW} waits")  # fmt: skip
    slow = states[SLOW]
    assert (slow["state"], slow["waiting_for"]) == ("waiting", ["ls_global"]), slow
    assert slow["held_trades"] > 0
    assert await ticks_of(run, SLOW) == []
    latest = await api(run, f"/api/signals/latest?symbol={SLOW}", token)
    assert latest["rows"] == []
    (waiting,) = latest["waiting"]
    assert (waiting["strategy"], waiting["symbol"], waiting["waiting_for"]) == (
        "crowd",
        SLOW,
        ["ls_global"],
    )
    assert "ls_global" in waiting["reason"]
    fast_first = (await ticks_of(run, FAST))[0]

    await fault(run.sim, {"clear": True})
    ready = await run.daemon.wait_for(
        lambda line: line.get("event") == "engine.symbol_ready" and line["symbol"] == SLOW, 60
    )
    assert ready["held_trades"] > 0

    async def slow_caught_up() -> list[int]:
        await run.advance(1, step_ms=250)
        slow_ticks, fast_ticks = await ticks_of(run, SLOW), await ticks_of(run, FAST)
        return slow_ticks if slow_ticks and slow_ticks[-1] >= fast_ticks[-1] - 15_000 else []

    slow_ticks = await eventually(slow_caught_up, 60, interval=0.1, what=f"{SLOW} caught up")
    assert slow_ticks[0] == fast_first  # from its first tick: nothing skipped
    assert slow_ticks == list(range(slow_ticks[0], slow_ticks[-1] + 1, 15_000))
    server = await api(run, "/api/server", token)
    assert {s["state"] for s in server["engine"]["symbols"]} == {"ready"}
    assert (await api(run, f"/api/signals/latest?symbol={SLOW}", token))["waiting"] == []

    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(60) == 0
    assert not run.daemon.events("engine.late_trade")
    assert not run.daemon.events("engine.late_event"), [
        {k: v for k, v in e.items() if k not in ("timestamp", "level")}
        for e in run.daemon.events("engine.late_event")
    ]
    await same_as_a_backtest(run, tmp_path)


async def same_as_a_backtest(run: EngineRun, tmp_path: Path) -> None:
    """Every stored evaluation of both symbols equals the backtest's: the decision, score,
    coverage, contributions and every feature the strategy reads. (Features it does not read
    are stored too, but their series are not waited for: while the slow symbol's other ratio
    series still come in, they may be absent where the backtest has them.)"""
    reads = set(parse_strategy(CROWD).reads)
    evaluated = await run.fetch("SELECT DISTINCT symbol FROM signal_indicators")
    assert {r["symbol"] for r in evaluated} == set(SYMBOLS)
    bt = await backtest_the_store(run, ["crowd"], tmp_path / "bt")
    live, replayed = bt.live, bt.replayed
    assert set(replayed) == set(live)
    slow_ratio_seen = False
    for key, row in live.items():
        other = replayed[key]
        assert other["fired"] == str(row["fired"]), key
        assert (other["reason"] or None) == row["reason"], key
        live_features, bt_features = json.loads(row["features"]), json.loads(other["features"])
        differ = sorted(k for k in reads
                        if not same(live_features.get(k), bt_features.get(k)))  # fmt: skip
        assert not differ, (key, {k: (live_features.get(k), bt_features.get(k)) for k in differ})
        for name in ("score", "coverage"):
            value = None if other[name] == "" else float(other[name])
            assert (value is None and row[name] is None) or close(value, row[name]), (key, name)
        for name in ("contributions", "gates"):
            assert same(json.loads(other[name]), json.loads(row[name])), (key, name)
        slow_ratio_seen |= key[1] == SLOW and "ls_global" in live_features
    assert slow_ratio_seen  # the history the slow symbol waited for is in its evaluations
