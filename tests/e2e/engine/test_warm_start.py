"""Warm start: what the engine decided before a stop still binds it after (the cooldown of
a signal fired before the stop is restored from the store, not started afresh)."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.engine.conftest import PROBE, EngineRun
from tests.support.waiting import eventually


@pytest.fixture
def engine_strategies() -> list[dict]:
    # Fires at the first strong tick, then not for an hour: longer than this whole run.
    return [{**PROBE, "entry": {**PROBE["entry"], "cooldown": "1h"}}]


async def test_a_cooldown_started_before_a_restart_holds_after_it(
    engine_run: EngineRun, spawn_daemon
) -> None:
    run = engine_run

    async def a_signal() -> list:
        await run.advance(5, step_ms=250)
        return await run.fetch("SELECT symbol, tick FROM signal_logs ORDER BY tick LIMIT 1")

    [first] = await eventually(a_signal, 120, interval=0.1, what="a first signal")
    symbol, fired_at = first["symbol"], first["tick"]
    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(60) == 0

    await run.advance(60, step_ms=1000)
    restarted_at = run.sim.sim_time_ms
    daemon = await spawn_daemon(run.daemon.env)
    await daemon.started()
    await daemon.wait_for("engine.warm_start")

    async def held_back_after_the_restart() -> list:
        await run.advance(5, step_ms=250)
        return await run.fetch(
            "SELECT tick FROM signal_indicators WHERE strategy = 'probe' AND symbol = $1"
            " AND tick >= $2 AND reason = 'cooldown'",
            symbol,
            restarted_at,
        )

    # A tick after the restart strong enough to fire, held back by the restored cooldown ...
    await eventually(held_back_after_the_restart, 120, interval=0.1,
                     what="an evaluation after the restart held back by the cooldown")  # fmt: skip
    # ... and no second signal for that symbol since the first.
    again = await run.fetch(
        "SELECT tick FROM signal_logs WHERE symbol = $1 AND tick > $2", symbol, fired_at
    )
    assert again == []
