"""A backtest reading sealed days from the tape archive and the rest from PostgreSQL decides
exactly what one reading everything from PostgreSQL decides: every evaluation, signal and
paper trade, byte for byte in its output files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import asyncpg

from arbengine.pipeline.backtest import EvaluationsCsv, run_backtest, write_outputs
from arbengine.signals import StrategySet, parse_strategy
from arbengine.store import archive_sql
from arbengine.store.archive_sealer import seal_ready_days
from arbengine.store.migrations import apply_migrations
from arbengine.store.tape_archive import TapeArchive
from tests.support.tape import (
    D0,
    DAY_MS,
    PROBE_STRATEGY,
    Tape,
    count_days,
    store_rates,
    store_trades,
)


async def test_a_backtest_over_archived_and_unsealed_days_equals_one_from_postgresql(
    database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        tapes = [Tape("BTCUSDT", 60_000.0, 11), Tape("ETHUSDT", 3_000.0, 12)]
        # Four days and the first hour of a fifth: days 1-4 can be sealed, the fifth not.
        for tape in tapes:
            batches = [tape.day(D0 + k * DAY_MS, 6_000) for k in range(4)]
            batches.append(tape.day(D0 + 4 * DAY_MS, 200, span_ms=3_600_000))
            await store_trades(conn, batches)
            await store_rates(conn, tape.symbol, D0, D0 + 5 * DAY_MS)
        await count_days(conn, [t.symbol for t in tapes], D0, D0 + 5 * DAY_MS)
        archive = TapeArchive(str(tmp_path / "tape"))
        assert len(await seal_ready_days(conn, archive)) == 8
        # One sealed day written into since: it is read from PostgreSQL.
        await archive_sql.mark_changed(conn, "ETHUSDT", date(2026, 1, 3))

        strategies = StrategySet.of([parse_strategy(PROBE_STRATEGY)])
        outputs = {}
        for source, where in (("postgres", None), ("archive", archive)):
            out = tmp_path / source
            out.mkdir()
            evaluations = EvaluationsCsv(out / "evaluations.csv")
            # From noon of the second day: the replay starts 26 h earlier, at 10:00 of the first.
            result = await run_backtest(
                conn, strategies, D0 + DAY_MS + DAY_MS // 2, D0 + 4 * DAY_MS + 1_800_000,
                database_url=database_url, evaluations=evaluations, archive=where,
            )  # fmt: skip
            evaluations.close()
            write_outputs(result, out, title="archive parity")
            outputs[source] = result
        # From the replay's start to the fifth day, but ETHUSDT's third day.
        sealed_trades = await conn.fetchval(
            "SELECT count(*) FROM agg_trades WHERE ts >= $1 AND ts < $2 "
            "AND NOT (symbol = 'ETHUSDT' AND ts >= $3 AND ts < $4)",
            D0 + 10 * 3_600_000, D0 + 4 * DAY_MS, D0 + 2 * DAY_MS, D0 + 3 * DAY_MS,
        )  # fmt: skip
    finally:
        await conn.close()

    from_table, from_archive = outputs["postgres"], outputs["archive"]
    assert from_table.replay.archived_trades == 0
    assert from_archive.replay.archived_trades == sealed_trades
    assert from_archive.replay.rejected_files == 0
    assert from_archive.trades == from_table.trades
    assert from_table.evaluations == 2 * (1440 * 5 // 2 + 30)  # a tick a minute each
    assert from_table.positions  # signals fired, trades were paper-traded
    for name in ("evaluations.csv", "signals.csv", "trades.csv", "summary.json"):
        assert (tmp_path / "archive" / name).read_bytes() == (
            tmp_path / "postgres" / name
        ).read_bytes(), name
