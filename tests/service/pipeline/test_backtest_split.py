"""A backtest split between processes by symbol decides exactly what one process decides
(every evaluation, signal and paper trade, byte for byte in its files, progress included),
and a worker that dies ends it with one line instead of a wait."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import psutil
import pytest

from arbengine.pipeline.backtest import (
    BacktestResult,
    EvaluationsCsv,
    run_backtest,
    write_outputs,
)
from arbengine.pipeline.backtest_split import BacktestWorkerFailed
from arbengine.signals import StrategySet, parse_strategy
from arbengine.store.archive_sealer import seal_ready_days
from arbengine.store.migrations import apply_migrations
from arbengine.store.tape_archive import TapeArchive
from tests.support.tape import D0, DAY_MS, PROBE_STRATEGY, Tape, count_days, store_rates
from tests.support.tape import store_trades as store_batches
from tests.support.waiting import eventually

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
STRATEGIES = StrategySet.of([parse_strategy({**PROBE_STRATEGY, "symbols": list(SYMBOLS)})])
OUTPUTS = ("evaluations.csv", "signals.csv", "trades.csv", "summary.json")


async def _store(conn: asyncpg.Connection, days: int, per_day: int) -> None:
    """``days`` days of the four symbols (different densities) and an hour of the day after."""
    await apply_migrations(conn)
    for k, symbol in enumerate(SYMBOLS):
        tape = Tape(symbol, (60_000.0, 3_000.0, 150.0, 0.6)[k], 21 + k)
        n = per_day * (4 - k) // 4
        batches = [tape.day(D0 + d * DAY_MS, n) for d in range(days)]
        batches.append(tape.day(D0 + days * DAY_MS, 50, span_ms=3_600_000))
        await store_batches(conn, batches)
        await store_rates(conn, symbol, D0, D0 + (days + 1) * DAY_MS)
    await count_days(conn, list(SYMBOLS), D0, D0 + (days + 1) * DAY_MS)


async def _backtest(
    conn: asyncpg.Connection, url: str, out: Path, workers: int, archive: TapeArchive | None
) -> tuple[BacktestResult, list[tuple[int, int]]]:
    out.mkdir()
    evaluations = EvaluationsCsv(out / "evaluations.csv")
    progress: list[tuple[int, int]] = []
    try:
        result = await run_backtest(
            conn, STRATEGIES, D0 + DAY_MS + DAY_MS // 2, D0 + 3 * DAY_MS + 1_800_000,
            database_url=url, evaluations=evaluations, workers=workers,
            on_progress=lambda trades, end: progress.append((trades, end)), archive=archive,
        )  # fmt: skip
    finally:
        evaluations.close()
    write_outputs(result, out, title="split parity")
    return result, progress


async def test_a_backtest_split_between_processes_equals_one_in_a_single_process(
    database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await _store(conn, 3, 4_000)
        archive = TapeArchive(str(tmp_path / "tape"))
        assert len(await seal_ready_days(conn, archive)) == 3 * len(SYMBOLS)
        runs = {}
        for workers, source in ((1, "postgres"), (2, "postgres"), (3, "archive")):
            where = archive if source == "archive" else None
            out = tmp_path / f"{workers}-{source}"
            runs[(workers, source)] = await _backtest(conn, database_url, out, workers, where)
    finally:
        await conn.close()

    (one, one_progress) = runs[(1, "postgres")]
    assert one.workers == 1
    assert one.positions  # signals fired and were paper-traded
    for key in ((2, "postgres"), (3, "archive")):
        split, progress = runs[key]
        assert split.workers == key[0]
        assert split.trades == one.trades
        assert split.evaluations == one.evaluations
        assert split.symbols == one.symbols == list(SYMBOLS)
        assert progress == one_progress
        for name in OUTPUTS:
            mine = (tmp_path / f"{key[0]}-{key[1]}" / name).read_bytes()
            assert mine == (tmp_path / "1-postgres" / name).read_bytes(), (key, name)
        assert not list((tmp_path / f"{key[0]}-{key[1]}").glob("*.part*"))
    assert runs[(3, "archive")][0].replay.archived_trades > 0


def _worker_processes() -> list[psutil.Process]:
    """This process's children spawned by multiprocessing (not its resource tracker): here,
    a backtest's workers."""
    return [
        child
        for child in psutil.Process().children()
        if any("spawn_main" in part for part in child.cmdline())
    ]


async def test_a_worker_killed_mid_backtest_ends_it_with_one_line(
    database_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    holder = await asyncpg.connect(database_url)
    try:
        await _store(conn, 1, 2_000)
        # Every reader waits at its first read behind this lock: the workers are then
        # started and not yet past their first chunk (no reader processes of their own yet).
        lock = holder.transaction()
        await lock.start()
        await holder.execute("LOCK TABLE rate_snapshots IN ACCESS EXCLUSIVE MODE")
        replay = run_backtest(
            conn, STRATEGIES, D0 + DAY_MS // 2, D0 + DAY_MS, database_url=database_url, workers=2
        )
        backtest = asyncio.create_task(replay)

        async def both_waiting() -> bool:
            # The backtest's own reads and the worker's (its connection may still be starting,
            # so it is counted by its lock rather than found by its application name).
            waiting = await holder.fetchval(
                "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted "
                "AND relation = 'rate_snapshots'::regclass"
            )
            return waiting == 2

        await eventually(both_waiting, timeout=30, what="both replays waiting on the lock")
        killed = _worker_processes()
        assert len(killed) == 1
        killed[0].send_signal(signal.SIGKILL)
        await lock.rollback()
        with pytest.raises(BacktestWorkerFailed) as failure:
            await asyncio.wait_for(backtest, 60)
    finally:
        await holder.close()
        await conn.close()
    message = str(failure.value)
    assert message.startswith("backtest worker for ")
    assert "was killed by SIGKILL before it finished" in message
    assert "\n" not in message
