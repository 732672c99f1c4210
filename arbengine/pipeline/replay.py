"""Feeding stored history into a pipeline: the one way both warm start and backtest read.

History is read a chunk (a day by default) at a time. Within a chunk, the
indicator values, premiumIndex readings and liquidations are fed first, then
each symbol's trades in (T, agg_id) order. That is exactly equivalent to a
strict time merge, because the feature state only ever uses values known
before the tick it evaluates, and each symbol's ticks depend on that
symbol's events alone.

With a database URL, a reader process with its own connection fetches the
next chunk while this one is processed: PostgreSQL's packing of a day (the
larger part of a read) and its replay then run on two cores instead of taking
turns. One reader: a second one reading the day after (1.32 M against 1.41 M
trades/s on a month) only made the server compete with the replay for the
cores. A process rather than a thread, because a thread would wait for the
replay's hold on the interpreter at each of the ~1,500 socket reads a day.

Chunks are UTC days (the first and last may be parts of one), because the tape
archive seals whole days: with an ``archive``, every symbol-day sealed there
(and not written into since) has its trades read from its Parquet file instead,
on a thread one day ahead of the replay (pyarrow and hashlib let go of the
interpreter while they decode and check), and only the rest from PostgreSQL. A
file that fails its checks is logged (``archive.file_rejected``) and its day read
from PostgreSQL: the table is the source of truth, the archive a faster copy.
The first two chunks are read here, and the reader process is started as
their replay begins: its start-up (about a second of a core) then overlaps the
replay instead of the first reads, and the first trade is replayed as soon as
they are read. With only one chunk left after them it is read here too: a
reader would take longer to start than to read it, and the replay would wait.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import asyncpg

from arbengine.domain.errors import FatalError
from arbengine.domain.market import Indicator, Liquidation, MarketEvent, TradeBatch
from arbengine.logs import get_logger
from arbengine.store.market_reads import read_indicators, read_liquidations
from arbengine.store.tape_archive import ArchiveFileRejected, SealedFile, TapeArchive, day_of_ms
from arbengine.store.trade_reader import (
    read_columns_by_symbol,
    read_sealed,
    read_trades_of,
    sealed_days_of,
)
from arbengine.trading.report import iso

DAY_MS = 86_400_000
READER_POLL_S = 0.5
"""How often a wait for the reader's next chunk checks that the reader is still alive."""
READ_HERE = 2
"""Chunks read by the replay itself, before the reader process starts: the first is the part
of a day before the first midnight (often before the tape begins), the second a day."""
_log = get_logger("replay")


class ReplayTarget(Protocol):
    """What history is fed into: a ``SignalPipeline``, or the live engine's warm start."""

    def on_event(self, event: MarketEvent) -> None: ...

    def on_rate_columns(
        self, symbol: str, known_ms: list[int], funding_rate: list[float], index: list[float]
    ) -> None: ...

    def on_trades(self, trades: TradeBatch) -> None: ...


@dataclass
class ReplayStats:
    trades: int = 0
    events: int = 0
    archived_trades: int = 0
    """Of ``trades``, those read from the tape archive's files."""
    rejected_files: int = 0
    """Sealed symbol-days whose file failed its checks, read from PostgreSQL instead."""
    first_trade_s: float | None = None
    """From the start of the replay to its first trade fed."""
    waited_s: float = 0.0
    """How long the replay waited for reads: the reading that did not overlap replaying."""


@dataclass
class _Chunk:
    end: int
    events: list[Indicator | Liquidation] = field(default_factory=list)
    rates: dict[str, tuple[Any, Any, Any]] = field(default_factory=dict)
    trades: list[TradeBatch] = field(default_factory=list)


_RATE_COLUMNS = (("known_at", "i8"), ("funding_rate", "f8"), ("index_price", "f8"))


def _visible(event: Indicator | Liquidation) -> int:
    return event.known_at if isinstance(event, Indicator) else event.ts


async def _read_chunk(
    conn: asyncpg.Connection,
    symbols: Sequence[str],
    start: int,
    end: int,
    trade_symbols: Sequence[str],
) -> _Chunk:
    """Everything of ``[start, end)`` but the trades of symbols not in ``trade_symbols``
    (those come from the archive)."""
    chunk = _Chunk(end)
    chunk.events = [
        *await read_indicators(conn, symbols, start, end),
        *await read_liquidations(conn, symbols, start, end),
    ]
    chunk.events.sort(key=_visible)
    # premiumIndex readings come every 2 s: they are read and added as columns.
    rates = await read_columns_by_symbol(
        conn, "rate_snapshots", _RATE_COLUMNS, symbols, "known_at >= $2 AND known_at < $3",
        (start, end), order_by="known_at, ts",
    )  # fmt: skip
    for symbol in symbols:
        if symbol in rates:
            cols = rates[symbol]
            chunk.rates[symbol] = (cols["known_at"], cols["funding_rate"], cols["index_price"])
    if trade_symbols:
        chunk.trades = list((await read_trades_of(conn, trade_symbols, start, end)).values())
    return chunk


def _feed(pipeline: ReplayTarget, chunk: _Chunk, stats: ReplayStats) -> int:
    for event in chunk.events:
        pipeline.on_event(event)
    for symbol, (known, rate, index) in chunk.rates.items():
        pipeline.on_rate_columns(symbol, known.tolist(), rate.tolist(), index.tolist())
        stats.events += len(known)
    stats.events += len(chunk.events)
    trades = 0
    for batch in chunk.trades:
        pipeline.on_trades(batch)
        trades += len(batch)
    stats.trades += trades
    return trades


def exit_with_parent() -> None:
    """In a spawned child: end at once when the parent process ends, however it ends (a
    SIGKILL included), rather than work on for a queue nobody will read."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _reader_process(
    url: str, symbols: list[str], spans: list[_Span], ahead: Any, stop: Any
) -> None:
    """Read every chunk in order into ``ahead``; ``None`` at the end, a message on failure."""
    exit_with_parent()

    async def read_all() -> None:
        conn = await asyncpg.connect(url)
        try:
            for span in spans:
                if stop.is_set():
                    return
                chunk = await _read_chunk(conn, symbols, span.start, span.end, span.from_table)
                while not stop.is_set():
                    try:
                        ahead.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
        finally:
            await conn.close()

    try:
        asyncio.run(read_all())
        ahead.put(None)
    except Exception as exc:  # reported to the consumer, which raises it
        ahead.put(f"{type(exc).__name__}: {exc}")


class ReplayReaderFailed(FatalError):
    """The reader process ended without delivering the history: the replay cannot go on."""


async def _next_chunk(ahead: Any, reader: BaseProcess, start_ms: int) -> _Chunk:
    """The reader's next chunk; a reader that died (killed, out of memory) is an error at once
    rather than a wait for ever on a queue nobody will fill."""
    where = f"the chunk from {iso(start_ms)}"
    while True:
        try:
            item = await asyncio.to_thread(ahead.get, True, READER_POLL_S)
        except queue.Empty:
            if reader.exitcode is None:
                continue
            try:  # what it put just before it ended may still be on its way
                item = ahead.get(timeout=READER_POLL_S)
            except queue.Empty:
                raise ReplayReaderFailed(
                    f"replay reader process {describe_exit(reader.exitcode)} before {where}"
                ) from None
        if item is None:
            raise ReplayReaderFailed(f"replay reader process ended early, before {where}")
        if isinstance(item, str):
            raise ReplayReaderFailed(f"replay reader process failed before {where}: {item}")
        assert isinstance(item, _Chunk)
        return item


def describe_exit(exitcode: int) -> str:
    """How a child process ended, for an error message: its exit status or the signal."""
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


@dataclass(frozen=True)
class _Span:
    """One chunk of the replay: ``[start, end)`` within one UTC day."""

    start: int
    end: int
    from_table: list[str]
    """Symbols whose trades are read from PostgreSQL (the others' day is sealed)."""
    from_files: dict[str, SealedFile]
    """Symbols whose trades are read from the archive, with their day's file."""


def _chunks(from_ms: int, to_ms: int, chunk_ms: int) -> list[tuple[int, int]]:
    """``[from_ms, to_ms)`` cut at every multiple of ``chunk_ms`` since the epoch (with a day:
    at each UTC midnight), so that no chunk spans two days of the archive."""
    if chunk_ms <= 0 or DAY_MS % chunk_ms:
        raise ValueError(f"chunk_ms {chunk_ms} does not divide a day")
    bounds = [from_ms, *range(from_ms - from_ms % chunk_ms + chunk_ms, to_ms, chunk_ms), to_ms]
    return [(a, b) for a, b in itertools.pairwise(bounds) if a < b]


def _plan(
    symbols: Sequence[str], spans: list[tuple[int, int]], sealed: dict[tuple[str, date], SealedFile]
) -> list[_Span]:
    out = []
    for start, end in spans:
        day = day_of_ms(start)
        files = {s: sealed[(s, day)] for s in symbols if (s, day) in sealed}
        out.append(_Span(start, end, [s for s in symbols if s not in files], files))
    return out


class _SealedReads:
    """The sealed symbol-days of each span, read on a thread one span ahead of the replay.

    A file that fails its checks comes back as its ``ArchiveFileRejected``."""

    def __init__(self, archive: TapeArchive, spans: list[_Span]) -> None:
        self._archive = archive
        self._spans = spans
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="archive-reader")
        self._pending: dict[int, Future[dict[str, TradeBatch | ArchiveFileRejected]]] = {}

    def prefetch(self, k: int) -> None:
        if k < len(self._spans) and k not in self._pending and self._spans[k].from_files:
            self._pending[k] = self._pool.submit(self._read, self._spans[k])

    async def get(self, k: int) -> dict[str, TradeBatch | ArchiveFileRejected]:
        self.prefetch(k)
        future = self._pending.pop(k, None)
        return {} if future is None else await asyncio.wrap_future(future)

    def _read(self, span: _Span) -> dict[str, TradeBatch | ArchiveFileRejected]:
        out: dict[str, TradeBatch | ArchiveFileRejected] = {}
        for symbol, sealed in span.from_files.items():
            try:
                out[symbol] = read_sealed(self._archive, sealed, span.start, span.end)
            except ArchiveFileRejected as exc:
                out[symbol] = exc
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _with_sealed(
    chunk: _Chunk,
    span: _Span,
    symbols: Sequence[str],
    from_files: dict[str, TradeBatch | ArchiveFileRejected],
    conn: asyncpg.Connection,
    stats: ReplayStats,
) -> None:
    """Put the archive's trades into ``chunk`` beside the table's, in the order of ``symbols``
    (as ``read_trades_of`` orders them); a rejected file's day is read from the table."""
    if not span.from_files:
        return
    by_symbol = {batch.symbol: batch for batch in chunk.trades}
    for symbol, got in from_files.items():
        if isinstance(got, ArchiveFileRejected):
            sealed = span.from_files[symbol]
            _log.warning(
                "archive.file_rejected", symbol=symbol, day=sealed.day.isoformat(),
                reason=str(got), read_from="postgresql",
            )  # fmt: skip
            stats.rejected_files += 1
            by_symbol.update(await read_trades_of(conn, [symbol], span.start, span.end))
        elif len(got):
            by_symbol[symbol] = got
            stats.archived_trades += len(got)
    chunk.trades = [by_symbol[s] for s in symbols if s in by_symbol]


async def replay_history(
    pipeline: ReplayTarget,
    conn: asyncpg.Connection,
    symbols: Sequence[str],
    from_ms: int,
    to_ms: int,
    *,
    chunk_ms: int = DAY_MS,
    on_chunk: Callable[[int, int], None] | None = None,
    prefetch_url: str | None = None,
    archive: TapeArchive | None = None,
) -> ReplayStats:
    """Feed everything stored for ``symbols`` in ``[from_ms, to_ms)``.

    ``on_chunk(trades, chunk_end_ms)`` reports progress after each chunk. With
    ``prefetch_url`` the chunks after the first two are read by a reader process while
    the replay goes on; with ``archive`` sealed days' trades come from its files.
    """
    began = time.perf_counter()
    stats = ReplayStats()
    sealed = {} if archive is None else await sealed_days_of(conn, symbols, from_ms, to_ms)
    spans = _plan(symbols, _chunks(from_ms, to_ms, chunk_ms), sealed)
    files = _SealedReads(archive, spans) if archive is not None and sealed else None
    reader: BaseProcess | None = None
    ahead: Any = None
    stop: Any = None
    try:
        for k, span in enumerate(spans):
            if files is not None:
                files.prefetch(k)
            waiting = time.perf_counter()
            if k < READ_HERE or reader is None:
                chunk = await _read_chunk(conn, symbols, span.start, span.end, span.from_table)
            else:
                chunk = await _next_chunk(ahead, reader, span.start)
            if files is not None:
                await _with_sealed(chunk, span, symbols, await files.get(k), conn, stats)
                files.prefetch(k + 1)
            stats.waited_s += time.perf_counter() - waiting
            if k == READ_HERE - 1 and prefetch_url is not None and len(spans) > READ_HERE + 1:
                # Started once the first chunks are read, so that its start-up (a second of
                # a core) overlaps their replay rather than slowing their reading.
                context = multiprocessing.get_context("spawn")
                ahead = context.Queue(maxsize=1)
                stop = context.Event()
                starting = context.Process(
                    target=_reader_process,
                    args=(prefetch_url, list(symbols), spans[READ_HERE:], ahead, stop),
                    name="replay-reader",
                    daemon=True,
                )
                starting.start()
                reader = starting
            if stats.first_trade_s is None and chunk.trades:
                stats.first_trade_s = time.perf_counter() - began
            done = _feed(pipeline, chunk, stats)
            if on_chunk is not None:
                on_chunk(done, chunk.end)
    finally:
        if files is not None:
            files.close()
        if reader is not None:
            stop.set()
            await asyncio.to_thread(reader.join, 10)
            if reader.is_alive():
                reader.terminate()
    return stats
