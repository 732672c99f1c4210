"""A hole the collector records in the tape (a backfill longer than ``max_backfill``) is
alerted by the daemon."""

from __future__ import annotations

import time

import asyncpg

from arbengine.sim.server import SimConfig, SimServer
from arbengine.store.market_sql import TRADE_COLUMNS
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from tests.e2e.collect.conftest import collect_env
from tests.service.notify.conftest import Receiver
from tests.support.waiting import eventually

HOUR = 3_600_000


async def test_a_recorded_tape_hole_is_alerted(
    daemon_env: dict, spawn_daemon, database_url: str
) -> None:
    now = int(time.time() * 1000) // 1000 * 1000
    config = SimConfig(port=0, manual=True, seed=9, symbols=("BTCUSDT",), trade_rate=0.2,
                       start_ms=now - 26 * HOUR, history_days=2)  # fmt: skip
    receiver = Receiver()
    await receiver.start()
    try:
        async with SimServer(config) as sim:
            await sim.advance_to(now)
            tape = sim.tape("BTCUSDT")
            old = [
                ("BTCUSDT", r["a"], r["T"], float(r["p"]), float(r["q"]), r["f"], r["l"], r["m"])
                for r in tape.rows(0, 50)
            ]  # stored long ago; the daemon was then down for about 26 hours
            conn = await asyncpg.connect(database_url)
            await apply_migrations(conn)
            await ensure_partitions_covering(conn, old[0][2], now + HOUR)
            await conn.copy_records_to_table("agg_trades", records=old, columns=TRADE_COLUMNS)
            await conn.close()
            env = {
                **collect_env(sim, daemon_env, database_url),
                "ARB_COLLECT_SYMBOLS": "BTCUSDT",
                "ARB_ENGINE_ENABLED": "false",
                "ARB_ALERTS_WEBHOOK_URL": receiver.url,
                "ARB_ALERTS_BATCH_WINDOW": "100ms",
            }
            daemon = await spawn_daemon(env)
            await daemon.started()
            hole = await daemon.wait_for("collector.hole_recorded")

            async def alerted() -> list[dict]:
                return [
                    a for c in receiver.calls for a in c.body["alerts"] if a["kind"] == "tape.hole"
                ]

            [alert] = await eventually(alerted, 20, what="the tape hole alert")
            assert alert["symbol"] == "BTCUSDT"
            assert alert["detail"] == {
                "from_id": hole["from_id"], "to_id": hole["to_id"], "reason": "max_backfill",
            }  # fmt: skip
            assert alert["level"] == "warning"
    finally:
        await receiver.stop()
