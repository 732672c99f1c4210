"""The engine in a real daemon on the simulated exchange: stored, explained signals; reloads."""

from __future__ import annotations

import itertools
import json
import signal

from tests.e2e.engine.conftest import PROBE, SYMBOLS, EngineRun, write_strategy
from tests.support.waiting import eventually


async def test_signals_are_stored_with_their_breakdown(engine_run: EngineRun) -> None:
    run = engine_run

    async def fired() -> list:
        await run.advance(5)
        evaluated = await run.fetch("SELECT count(*) AS n FROM signal_indicators")
        if evaluated[0]["n"] < 12:  # a few ticks, so cooldowns show too
            return []
        return await run.fetch("SELECT * FROM signal_logs ORDER BY tick")

    signals = await eventually(fired, 90, interval=0.2, what="a fired signal")
    first = signals[0]
    assert first["strategy"] == "probe"
    assert first["symbol"] in SYMBOLS
    features = json.loads(first["features"])
    contributions = json.loads(first["contributions"])
    assert {"price", "atr", "flow_fast", "cvd_fast", "vwap_fast"} <= features.keys()
    assert first["price"] == features["price"]
    assert first["atr"] == features["atr"] > 0
    assert first["score"] >= PROBE["entry"]["threshold"]
    # score = 100 · Σ wᵢsᵢ / Σ wᵢ over the present factors
    weights = {f["feature"]: f["weight"] for f in PROBE["factors"]}
    present = sum(weights[k] for k in contributions)
    assert abs(first["score"] - 100 * sum(contributions.values()) / present) < 1e-9

    rows = await run.fetch(
        "SELECT * FROM signal_indicators WHERE strategy = 'probe' AND tick = $1 AND symbol = $2",
        first["tick"], first["symbol"],
    )  # fmt: skip
    assert rows[0]["fired"] is True
    assert rows[0]["strategy_hash"] == first["strategy_hash"]
    breakdown = json.loads(rows[0]["contributions"])
    assert breakdown["contributions"] == contributions
    assert set(breakdown["factors"]) == set(weights)

    evaluations = await run.fetch("SELECT tick, fired, reason FROM signal_indicators")
    ticks = sorted({r["tick"] for r in evaluations})
    assert all(b - a == 15_000 for a, b in itertools.pairwise(ticks))
    reasons = {r["reason"] for r in evaluations if not r["fired"]}
    assert reasons, "every evaluation fired: the cooldown was not applied"
    assert None not in reasons

    paper = await eventually(
        lambda: run.fetch(
            "SELECT * FROM paper_trades WHERE entry_tick = $1 AND symbol = $2 AND strategy = $3",
            first["tick"], first["symbol"], first["strategy"],
        ),
        30, what="the paper trade of the first signal",
    )  # fmt: skip
    assert paper[0]["direction"] == first["direction"]
    expected_entry = first["price"] * (1 + first["direction"] * 0.0001)
    assert abs(paper[0]["entry_price"] - expected_entry) <= 1e-12 * expected_entry


async def test_sighup_unchanged_invalid_and_changed(engine_run: EngineRun) -> None:
    run = engine_run
    daemon = run.daemon

    async def evaluated() -> list:
        await run.advance(5)  # the sim's clock is manual: ticks come as it is moved on
        return await run.fetch("SELECT DISTINCT strategy_hash FROM signal_indicators")

    original = await eventually(evaluated, 60, interval=0.2, what="a first evaluation")
    old_hash = original[0]["strategy_hash"]

    daemon.send(signal.SIGHUP)
    unchanged = await daemon.wait_for("strategies.unchanged")
    assert unchanged["strategies"] == ["probe"]

    (run.strategies / "broken.json").write_text('{"name": "broken", "symbols": ["BTCUSDT"]}')
    daemon.send(signal.SIGHUP)
    failed = await daemon.wait_for("strategies.reload_failed")
    assert any("broken.json: $.direction: is required" in p for p in failed["problems"]), failed
    assert failed["kept"] == "previous set"
    refused_at = run.sim.sim_time_ms

    async def evaluated_after_the_refusal() -> list:
        await run.advance(5)
        return await run.fetch(
            "SELECT DISTINCT strategy, strategy_hash FROM signal_indicators WHERE tick > $1",
            refused_at,
        )

    still = await eventually(evaluated_after_the_refusal, 60, interval=0.2,
                             what="evaluations after the refused reload")  # fmt: skip
    assert [(r["strategy"], r["strategy_hash"]) for r in still] == [("probe", old_hash)]

    (run.strategies / "broken.json").unlink()
    write_strategy(run.strategies, {**PROBE, "entry": {**PROBE["entry"], "threshold": 45}})
    daemon.send(signal.SIGHUP)
    reloaded = await daemon.wait_for("strategies.reloaded")
    new_hash = reloaded["strategies"]["probe"]
    assert new_hash != old_hash
    marker = run.sim.sim_time_ms

    async def new_hash_used() -> list:
        await run.advance(5)
        return await run.fetch(
            "SELECT strategy_hash FROM signal_indicators WHERE tick > $1", marker
        )

    rows = await eventually(new_hash_used, 60, interval=0.2, what="evaluations after reload")
    assert {r["strategy_hash"] for r in rows} == {new_hash}
    assert daemon.process is not None
    assert daemon.process.returncode is None
