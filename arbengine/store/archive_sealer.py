"""Sealing: days of the tape the continuity check has proven complete, written once to the
archive, checked, and recorded in its manifest.

``seal_ready_days`` is the one way a day is sealed: ``arbengine archive seal`` calls
it, and the daemon's ``ArchiveSealer`` runs it every ``[archive] seal_interval`` in a
worker process. A process, because a pass holds a day of trades in memory twice (the
table's and the file's) and loads pyarrow (~60 MB resident): the daemon's memory stays
what the engine needs, and the compression runs beside the event loop, not in it.

Per day, under the sealer's lock on each symbol-day (``archive_sql.lock_day``: writes
of trades into those days wait, and so does a second sealer), the day is checked again,
read with the very query a backtest uses (``read_trades_of``), compared with the
continuity check's count (rows and id range), written, read back from the archive
and compared trade for trade, and recorded. A day whose count is out of date (the table
changed after it was counted) is counted again, and sealed by a later pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import groupby
from multiprocessing.process import BaseProcess
from typing import Any

import asyncpg
import numpy as np

from arbengine.domain.errors import RetryableError
from arbengine.domain.market import TradeBatch
from arbengine.logs import get_logger
from arbengine.store import archive_sql
from arbengine.store.continuity_sql import refresh_daily_completeness
from arbengine.store.database import OUTAGE_ERRORS, Database, DatabaseUnavailable, outage_error
from arbengine.store.tape_archive import (
    DAY_MS,
    ArchiveFileRejected,
    ArchiveUnavailable,
    SealedFile,
    TapeArchive,
    day_start_ms,
    difference,
)
from arbengine.store.trade_reader import read_trades_of

MAX_ROWS_PER_READ = 6_000_000
"""Symbols of one day are read together (one scan of the day) up to this many trades."""
WORKER_POLL_S = 0.5


@dataclass(frozen=True)
class SealOutcome:
    symbol: str
    day: date
    rows: int
    bytes: int
    resealed: bool
    """The day had been sealed before, and trades were written into it since."""
    recounted: bool = False
    """Not sealed: the continuity check's count was out of date, and was counted again."""
    seconds: float = 0.0


async def seal_ready_days(
    conn: asyncpg.Connection,
    archive: TapeArchive,
    symbols: Sequence[str] | None = None,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_outcome: Callable[[SealOutcome], None] | None = None,
) -> list[SealOutcome]:
    """Seal every day of ``symbols`` (None: every symbol) that is ready, oldest first.

    Storage that cannot be written is ``ArchiveUnavailable``; ``should_stop`` is asked
    between days."""
    outcomes: list[SealOutcome] = []
    ready = await archive_sql.ready_days(conn, symbols)
    for day, of_day in groupby(ready, key=lambda r: r.day):
        for group in _groups(list(of_day)):
            if should_stop():
                return outcomes
            for outcome in await _seal_group(conn, archive, day, group):
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
    return outcomes


def _groups(ready: list[archive_sql.ReadyDay]) -> list[list[archive_sql.ReadyDay]]:
    groups: list[list[archive_sql.ReadyDay]] = [[]]
    rows = 0
    for item in ready:
        if groups[-1] and rows + item.rows > MAX_ROWS_PER_READ:
            groups.append([])
            rows = 0
        groups[-1].append(item)
        rows += item.rows
    return [g for g in groups if g]


async def _seal_group(
    conn: asyncpg.Connection, archive: TapeArchive, day: date, group: list[archive_sql.ReadyDay]
) -> list[SealOutcome]:
    start = day_start_ms(day)
    outcomes: list[SealOutcome] = []
    async with conn.transaction():
        names = sorted(item.symbol for item in group)
        for symbol in names:
            await archive_sql.lock_day(conn, symbol, day)
        # Again under the locks: another sealer may have sealed them, a write changed them.
        current = await archive_sql.ready_days(conn, names, day)
        if not current:
            return outcomes
        found = await read_trades_of(conn, [r.symbol for r in current], start, start + DAY_MS)
        for ready in current:
            began = time.perf_counter()
            trades = found.get(ready.symbol)
            if trades is None or not _as_counted(trades.agg_id, ready):
                await refresh_daily_completeness(conn, ready.symbol, start, start + DAY_MS)
                outcomes.append(SealOutcome(ready.symbol, day, 0, 0, ready.resealing, True))
                continue
            sealed = await asyncio.to_thread(_write_checked, archive, ready.symbol, day, trades)
            await archive_sql.record_seal(conn, sealed)
            seconds = time.perf_counter() - began
            resealed = ready.resealing
            outcomes.append(
                SealOutcome(ready.symbol, day, sealed.rows, sealed.bytes, resealed, seconds=seconds)
            )
    return outcomes


def _as_counted(ids: np.ndarray, ready: archive_sql.ReadyDay) -> bool:
    """Whether the ids read are exactly every id from the count's first to its last."""
    if len(ids) != ready.last_id - ready.first_id + 1:
        return False
    if not (np.diff(ids) > 0).all():  # stored out of (ts, id) order, or an id twice
        ids = np.sort(ids)
        if not (np.diff(ids) == 1).all():
            return False
    return int(ids[0]) == ready.first_id and int(ids[-1]) == ready.last_id


def _write_checked(archive: TapeArchive, symbol: str, day: date, trades: TradeBatch) -> SealedFile:
    sealed = archive.write(symbol, day, trades)
    try:
        back = archive.read(sealed)
    except ArchiveFileRejected as exc:
        raise ArchiveUnavailable(f"the file just written does not read back: {exc}") from None
    differs = difference(trades, back)
    if differs is not None:
        raise ArchiveUnavailable(f"{sealed.path} read back differs from the table: {differs}")
    return sealed


# -- the daemon's component ------------------------------------------------------------------


class SealingWorkerFailed(Exception):
    """The sealing worker met an error that is not an outage: a bug, counted as a fault."""


class ArchiveSealer:
    """Every ``interval_s``: if a day of ``symbols`` is ready, seal in a worker process.

    Outages (PostgreSQL, the archive's storage, a worker killed from outside) are
    ``RetryableError``s: the supervisor waits them out and reports the component
    degraded meanwhile."""

    def __init__(
        self, db: Database, archive: TapeArchive, symbols: Sequence[str], interval_s: float
    ) -> None:
        self._db = db
        self._archive = archive
        self.symbols = list(symbols)
        self.interval_s = interval_s
        self._stop = asyncio.Event()
        self._log = get_logger("archive")

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            async with self._db.acquire() as conn:
                ready = await archive_sql.ready_days(conn, self.symbols)
            if ready:
                await self._seal_in_worker()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    async def _seal_in_worker(self) -> None:
        context = multiprocessing.get_context("spawn")
        reports: Any = context.Queue()
        stop = context.Event()
        worker = context.Process(
            target=_worker,
            args=(self._db.url, self._archive.where, self.symbols, reports, stop),
            name="archive-sealer",
            daemon=True,
        )
        worker.start()
        try:
            while True:
                kind, detail = await self._next_report(reports, worker, stop)
                if kind == "outcome":
                    self._report(detail)
                elif kind == "done":
                    return
                elif kind == "database":
                    raise DatabaseUnavailable(detail)
                elif kind == "storage":
                    raise ArchiveUnavailable(detail)
                else:
                    self._log.error("archive.worker_failed", traceback=detail)
                    raise SealingWorkerFailed(detail.strip().splitlines()[-1])
        finally:
            stop.set()
            await asyncio.to_thread(worker.join, 10)
            if worker.is_alive():
                worker.terminate()
                await asyncio.to_thread(worker.join, 5)

    async def _next_report(self, reports: Any, worker: BaseProcess, stop: Any) -> tuple[str, Any]:
        while True:
            if self._stop.is_set():
                stop.set()  # the worker ends after the day it is on
            try:
                item: tuple[str, Any] = await asyncio.to_thread(reports.get, True, WORKER_POLL_S)
                return item
            except queue.Empty:
                if worker.exitcode is None:
                    continue
            try:  # what it sent just before it ended may still be on its way
                item = reports.get(timeout=WORKER_POLL_S)
                return item
            except queue.Empty:
                raise ArchiveUnavailable(
                    f"the sealing worker process ended ({_how_it_ended(worker.exitcode)}) "
                    "without finishing its pass"
                ) from None

    def _report(self, outcome: SealOutcome) -> None:
        if outcome.recounted:
            self._log.info("archive.recounted", symbol=outcome.symbol, day=outcome.day.isoformat())
            return
        self._log.info(
            "archive.sealed",
            symbol=outcome.symbol,
            day=outcome.day.isoformat(),
            trades=outcome.rows,
            bytes=outcome.bytes,
            resealed=outcome.resealed,
            seconds=round(outcome.seconds, 3),
        )


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _worker(url: str, where: str, symbols: list[str], reports: Any, stop: Any) -> None:
    """The sealing pass in its own process; every outcome and the end go to ``reports``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when it stops

    async def seal() -> None:
        conn = await asyncpg.connect(url)
        try:
            await seal_ready_days(
                conn, TapeArchive(where), symbols,
                should_stop=stop.is_set, on_outcome=lambda o: reports.put(("outcome", o)),
            )  # fmt: skip
        finally:
            await conn.close()

    try:
        asyncio.run(seal())
        reports.put(("done", None))
    except DatabaseUnavailable as exc:
        reports.put(("database", str(exc)))
    except RetryableError as exc:
        reports.put(("storage", str(exc)))
    except OUTAGE_ERRORS as exc:
        reports.put(("database", str(outage_error(exc, "sealing worker"))))
    except Exception as exc:
        reports.put(("failed", "".join(traceback.format_exception(exc))))
