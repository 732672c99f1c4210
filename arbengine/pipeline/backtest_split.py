"""A backtest split across processes by symbol, so that it uses every core it is given.

Symbols never meet in the pipeline (``backtest_part``), so each process replays a group of
them exactly as one process replays them all, and the groups' results are put together:
positions and signals are sorted as before, evaluations.csv is merged back into one
replay's order. The groups are balanced by the trades each symbol has stored in the range
(the continuity check's daily counts), heaviest first, each to the least loaded group.

The first group is replayed here, at once, so the first trade is replayed as soon as it is
read; the others in spawned worker processes, whose start-up (about a second of importing)
overlaps it. Workers report each chunk they finish, then their result, on one queue; a
worker that fails or dies ends the backtest with a one-line error instead of a wait on a
queue nobody will fill, and a worker whose parent dies exits rather than outlive it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import asyncpg

from arbengine.domain.errors import FatalError
from arbengine.logs import configure_logging, logging_in_force
from arbengine.pipeline.backtest_part import EvaluationsCsv, PartResult, replay_part
from arbengine.pipeline.replay import describe_exit, exit_with_parent
from arbengine.signals import StrategySet
from arbengine.store.tape_archive import TapeArchive
from arbengine.store.trade_reader import stored_trade_counts

POLL_S = 0.5
"""How often a wait for the workers checks that they are still alive."""


class BacktestWorkerFailed(FatalError):
    """A worker process of a split backtest failed or died: its symbols have no result."""


def available_cores() -> int:
    """The cores this process may run on (``taskset`` and container limits narrow it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def split_symbols(weights: Mapping[str, int], groups: int) -> list[list[str]]:
    """``weights``' symbols in at most ``groups`` groups of near-equal total weight (longest
    first, each to the lightest group so far); each group sorted, the heaviest first."""
    members: list[list[str]] = [[] for _ in range(max(1, groups))]
    loads = [0] * len(members)
    for symbol in sorted(weights, key=lambda s: (-weights[s], s)):
        k = min(range(len(members)), key=lambda i: (loads[i], i))
        members[k].append(symbol)
        loads[k] += weights[symbol] + 1  # + 1: symbols without stored trades spread too
    return [sorted(m) for m in members if m]


SPLIT_FROM_TRADES = 2_000_000
"""Without a number of workers asked for, a backtest of fewer stored trades is not split: a
worker's start-up (about half a second of importing) costs more than it would save."""


async def plan_groups(
    conn: asyncpg.Connection,
    symbols: Sequence[str],
    from_ms: int,
    to_ms: int,
    workers: int | None,
) -> list[list[str]]:
    """``symbols`` in up to ``workers`` groups balanced by their stored trades in range
    (``None``: as many as there are cores, for a backtest of ``SPLIT_FROM_TRADES`` or more)."""
    if workers == 1 or len(symbols) <= 1 or (workers is None and available_cores() == 1):
        return [list(symbols)] if symbols else []
    counts = await stored_trade_counts(conn, symbols, from_ms, to_ms)
    if workers is None:
        if sum(counts.values()) < SPLIT_FROM_TRADES:
            return [list(symbols)]
        workers = available_cores()
    return split_symbols({s: counts.get(s, 0) for s in symbols}, workers)


@dataclass(frozen=True)
class _Job:
    group: int
    database_url: str
    strategies: StrategySet
    symbols: list[str]
    from_ms: int
    to_ms: int
    only_traded: bool
    archive: str | None
    evaluations_part: Path | None
    logging: tuple[str, bool] | None


def _work(job: _Job, messages: Any) -> None:
    """A worker process: replay ``job.symbols``; report each chunk, then the result."""
    exit_with_parent()
    if job.logging is not None:
        configure_logging(*job.logging)
    try:
        import uvloop

        messages.put(("done", job.group, uvloop.run(_replay(job, messages))))
    except BaseException as exc:  # reported to the parent, which raises it
        messages.put(("failed", job.group, f"{type(exc).__name__}: {exc}"))


async def _replay(job: _Job, messages: Any) -> PartResult:
    conn = await asyncpg.connect(
        job.database_url,
        server_settings={"application_name": f"arbengine backtest worker {job.group}"},
    )
    evaluations = (
        EvaluationsCsv(job.evaluations_part, chunk_column=True)
        if job.evaluations_part is not None
        else None
    )
    try:
        return await replay_part(
            conn,
            job.strategies,
            job.symbols,
            job.from_ms,
            job.to_ms,
            only_traded=job.only_traded,
            database_url=job.database_url,
            archive=TapeArchive(job.archive) if job.archive is not None else None,
            evaluations=evaluations,
            on_chunk=lambda k, trades, end: messages.put(("chunk", job.group, (k, trades, end))),
        )
    finally:
        if evaluations is not None:
            evaluations.close()
        await conn.close()


class _Progress:
    """Reports chunk ``k`` once every group has finished it, with their trades summed."""

    def __init__(self, groups: int, report: Callable[[int, int], None] | None) -> None:
        self._groups = groups
        self._report = report
        self._seen: dict[int, list[int]] = {}
        self._next = 0

    def add(self, k: int, trades: int, chunk_end: int) -> None:
        seen = self._seen.setdefault(k, [0, 0, chunk_end])
        seen[0] += 1
        seen[1] += trades
        while self._seen.get(self._next, [0])[0] == self._groups:
            _, total, end = self._seen.pop(self._next)
            if self._report is not None:
                self._report(total, end)
            self._next += 1


async def replay_split(
    conn: asyncpg.Connection,
    strategies: StrategySet,
    groups: Sequence[Sequence[str]],
    from_ms: int,
    to_ms: int,
    *,
    only_traded: bool,
    database_url: str,
    archive: TapeArchive | None,
    evaluations: EvaluationsCsv | None,
    on_progress: Callable[[int, int], None] | None,
) -> list[PartResult]:
    """Replay each group in its own process (the first here); their results in group order."""
    parts = (
        [evaluations.path.with_name(f"{evaluations.path.name}.part{g}") for g in range(len(groups))]
        if evaluations is not None
        else None
    )
    progress = _Progress(len(groups), on_progress)
    results: dict[int, PartResult] = {}
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    workers: dict[int, BaseProcess] = {}

    def take(message: tuple[str, int, Any]) -> None:
        kind, group, body = message
        if kind == "chunk":
            progress.add(*body)
        elif kind == "done":
            results[group] = body
        else:
            raise BacktestWorkerFailed(
                f"backtest worker for {', '.join(groups[group])} failed: {body}"
            )

    def take_waiting() -> None:
        while True:
            try:
                take(messages.get_nowait())
            except queue.Empty:
                return

    def check_workers() -> None:
        """Between the chunks of the first group: a worker that died is an error now, not
        when that group is done (its last messages are in the pipe once it has ended)."""
        take_waiting()
        for g, worker in workers.items():
            if g not in results and worker.exitcode is not None:
                take_waiting()
                if g not in results:
                    raise BacktestWorkerFailed(_ended(groups[g], worker))

    try:
        for g in range(1, len(groups)):
            job = _Job(
                g, database_url, strategies, list(groups[g]), from_ms, to_ms, only_traded,
                archive.where if archive is not None else None,
                parts[g] if parts is not None else None, logging_in_force(),
            )  # fmt: skip
            # Not a daemon: a worker starts a reader process of its own (replay.py), which a
            # daemon may not; the ``finally`` below and the parent watch end it instead.
            workers[g] = context.Process(
                target=_work, args=(job, messages), name=f"backtest-worker-{g}"
            )
            workers[g].start()
        own = EvaluationsCsv(parts[0], chunk_column=True) if parts is not None else None
        try:

            def own_chunk(k: int, trades: int, chunk_end: int) -> None:
                progress.add(k, trades, chunk_end)
                check_workers()

            results[0] = await replay_part(
                conn, strategies, groups[0], from_ms, to_ms, only_traded=only_traded,
                database_url=database_url, archive=archive, evaluations=own,
                on_chunk=own_chunk,
            )  # fmt: skip
        finally:
            if own is not None:
                own.close()
        while len(results) < len(groups):
            take(await _next_message(messages, workers, results, groups))
    finally:
        for worker in workers.values():
            if worker.is_alive() and worker.exitcode is None:
                await asyncio.to_thread(worker.join, POLL_S)
            if worker.is_alive():
                worker.terminate()
                await asyncio.to_thread(worker.join, POLL_S)
        if len(results) < len(groups) and parts is not None:
            for part in parts:
                part.unlink(missing_ok=True)
    if evaluations is not None and parts is not None:
        evaluations.merge(parts)
    return [results[g] for g in range(len(groups))]


async def _next_message(
    messages: Any,
    workers: Mapping[int, BaseProcess],
    results: Mapping[int, PartResult],
    groups: Sequence[Sequence[str]],
) -> tuple[str, int, Any]:
    while True:
        try:
            message: tuple[str, int, Any] = await asyncio.to_thread(messages.get, True, POLL_S)
            return message
        except queue.Empty:
            dead = [g for g, w in workers.items() if g not in results and w.exitcode is not None]
            if not dead:
                continue
            try:  # what it put just before it ended may still be on its way
                message = messages.get(timeout=POLL_S)
                return message
            except queue.Empty:
                raise BacktestWorkerFailed(_ended(groups[dead[0]], workers[dead[0]])) from None


def _ended(symbols: Sequence[str], worker: BaseProcess) -> str:
    return (
        f"backtest worker for {', '.join(symbols)} {describe_exit(worker.exitcode or 0)} "
        "before it finished"
    )
