"""Start-up backfill: resume from the last stored id, but never reach back more than 24 h."""

from __future__ import annotations

import time

import asyncpg

from arbengine.sim.server import SimConfig, SimServer
from arbengine.store.market_sql import TRADE_COLUMNS
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from tests.e2e.collect.conftest import collect_env, last_stored_id, meta
from tests.support.waiting import eventually

HOUR = 3_600_000


async def test_a_backfill_longer_than_max_backfill_records_the_hole(
    daemon_env: dict, spawn_daemon, database_url: str
) -> None:
    now = int(time.time() * 1000) // 1000 * 1000
    config = SimConfig(port=0, manual=True, seed=9, symbols=("BTCUSDT",), trade_rate=0.2,
                       start_ms=now - 26 * HOUR, history_days=2)  # fmt: skip
    async with SimServer(config) as sim:
        await sim.advance_to(now)
        tape = sim.tape("BTCUSDT")
        rows = [
            ("BTCUSDT", r["a"], r["T"], float(r["p"]), float(r["q"]), r["f"], r["l"], r["m"])
            for r in tape.rows(0, tape.released)
        ]
        old = rows[:50]  # stored long ago; the daemon was then down for about 26 hours
        conn = await asyncpg.connect(database_url)
        await apply_migrations(conn)
        await ensure_partitions_covering(conn, rows[0][2], now + HOUR)
        await conn.copy_records_to_table("agg_trades", records=old, columns=TRADE_COLUMNS)
        await conn.close()

        env = {**collect_env(sim, daemon_env, database_url), "ARB_COLLECT_SYMBOLS": "BTCUSDT"}
        daemon = await spawn_daemon(env)
        await daemon.started()
        hole = await daemon.wait_for("collector.hole_recorded")
        assert hole["reason"] == "max_backfill"
        assert hole["from_id"] == old[-1][1] + 1
        # The tape resumes at the first trade of the last 24 h by the daemon's clock, which
        # started a little after ours.
        by_id = {r[1]: r for r in rows}
        resumed_at = by_id[hole["to_id"] + 1][2]
        assert now - 24 * HOUR <= resumed_at < now - 24 * HOUR + 120_000

        async def caught_up() -> bool:
            return await last_stored_id(database_url, "BTCUSDT") == tape.last_id

        await eventually(caught_up, 60, what="caught up to the exchange")
        row = await meta(database_url, "BTCUSDT")
        assert row["holes_left"] == 1
        resumed = tape.last_id - hole["to_id"]
        assert row["rows"] == resumed  # the rows the daemon wrote (the 50 old ones came by COPY)
        conn = await asyncpg.connect(database_url)
        stored = await conn.fetchval("SELECT count(*) FROM agg_trades")
        await conn.close()
        assert stored == 50 + resumed
