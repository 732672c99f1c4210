"""Open paper positions and evaluations survive a restart, including what happened while down."""

from __future__ import annotations

import itertools
import json
import signal

from tests.e2e.engine.conftest import EngineRun
from tests.support.waiting import eventually


async def test_open_positions_resume_and_missed_ticks_are_caught_up(
    engine_run: EngineRun, spawn_daemon
) -> None:
    run = engine_run

    async def engine_at_market() -> bool:
        # The engine may lag the market (a loaded machine): a position is looked for only once
        # the engine has evaluated the market's last ticks, so what the market does after the
        # stop is what the first daemon never saw.
        rows = await run.fetch(
            "SELECT min(tick) AS tick FROM"
            " (SELECT max(tick) AS tick FROM signal_indicators GROUP BY symbol) AS latest"
        )
        return rows[0]["tick"] is not None and rows[0]["tick"] >= run.sim.sim_time_ms - 30_000

    async def an_open_position() -> list:
        await run.advance(5, step_ms=250)
        await eventually(engine_at_market, 60, interval=0.1, what="the engine at the market")
        return await run.fetch("SELECT * FROM paper_trades WHERE status = 'open'")

    opened = (await eventually(an_open_position, 120, interval=0.1, what="an open position"))[0]
    key = (opened["strategy"], opened["symbol"], opened["entry_tick"])
    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(60) == 0
    stopped_at = run.sim.sim_time_ms
    open_at_stop = await run.fetch("SELECT 1 FROM paper_trades WHERE status = 'open'")
    [still] = await run.fetch(
        "SELECT status FROM paper_trades WHERE strategy = $1 AND symbol = $2 AND entry_tick = $3",
        *key,
    )
    assert still["status"] == "open"  # closed after the restart, or the test proves nothing

    await run.advance(6 * 60, step_ms=1000)  # max_hold is 5 minutes: it must exit while down
    restarted_at = run.sim.sim_time_ms
    daemon = await spawn_daemon(run.daemon.env)
    await daemon.started()
    warm = await daemon.wait_for("engine.warm_start")
    assert warm["restored_positions"] == len(open_at_stop)  # every open one, none made up

    async def closed() -> list:
        rows = await run.fetch(
            "SELECT * FROM paper_trades WHERE strategy = $1 AND symbol = $2 AND entry_tick = $3",
            *key,
        )
        return rows if rows and rows[0]["status"] == "closed" else []

    row = (await eventually(closed, 60, what="the position closed after the restart"))[0]
    fills = json.loads(row["exits"])["fills"]
    assert stopped_at <= fills[-1]["ts"] < restarted_at  # the exit happened while we were down

    async def caught_up() -> list:
        await run.advance(2, step_ms=250)
        rows = await run.fetch(
            "SELECT DISTINCT tick FROM signal_indicators WHERE symbol = $1 ORDER BY tick",
            opened["symbol"],
        )
        ticks = [r["tick"] for r in rows]
        return ticks if ticks and ticks[-1] >= restarted_at else []

    ticks = await eventually(caught_up, 60, interval=0.1, what="ticks after the restart")
    assert all(b - a == 15_000 for a, b in itertools.pairwise(ticks))  # no tick missing
