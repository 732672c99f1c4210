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
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import asyncpg

from arbengine.domain.errors import FatalError
from arbengine.domain.market import Indicator, Liquidation, MarketEvent, TradeBatch
from arbengine.store.market_reads import read_indicators, read_liquidations
from arbengine.store.trade_reader import read_columns_by_symbol, read_trades_of
from arbengine.trading.report import iso

DAY_MS = 86_400_000
READER_POLL_S = 0.5
"""How often a wait for the reader's next chunk checks that the reader is still alive."""


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
    conn: asyncpg.Connection, symbols: Sequence[str], start: int, end: int
) -> _Chunk:
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
    chunk.trades = list((await read_trades_of(conn, symbols, start, end)).values())
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


def _reader_process(
    url: str, symbols: list[str], spans: list[tuple[int, int]], ahead: Any, stop: Any
) -> None:
    """Read every chunk in order into ``ahead``; ``None`` at the end, a message on failure."""

    async def read_all() -> None:
        conn = await asyncpg.connect(url)
        try:
            for start, end in spans:
                if stop.is_set():
                    return
                chunk = await _read_chunk(conn, symbols, start, end)
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
                    f"replay reader process {_how_it_ended(reader.exitcode)} before {where}"
                ) from None
        if item is None:
            raise ReplayReaderFailed(f"replay reader process ended early, before {where}")
        if isinstance(item, str):
            raise ReplayReaderFailed(f"replay reader process failed before {where}: {item}")
        assert isinstance(item, _Chunk)
        return item


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _chunks(from_ms: int, to_ms: int, chunk_ms: int) -> list[tuple[int, int]]:
    bounds = list(range(from_ms, to_ms, chunk_ms))
    return [(start, min(to_ms, start + chunk_ms)) for start in bounds]


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
) -> ReplayStats:
    """Feed everything stored for ``symbols`` in ``[from_ms, to_ms)``.

    ``on_chunk(trades, chunk_end_ms)`` reports progress after each chunk. With
    ``prefetch_url`` the next chunk is read by a reader process while this one is fed.
    """
    stats = ReplayStats()
    spans = _chunks(from_ms, to_ms, chunk_ms)
    if prefetch_url is None:
        for start, end in spans:
            chunk = await _read_chunk(conn, symbols, start, end)
            done = _feed(pipeline, chunk, stats)
            if on_chunk is not None:
                on_chunk(done, end)
        return stats

    context = multiprocessing.get_context("spawn")
    ahead: Any = context.Queue(maxsize=1)
    stop = context.Event()
    reader = context.Process(
        target=_reader_process,
        args=(prefetch_url, list(symbols), spans, ahead, stop),
        name="replay-reader",
        daemon=True,
    )
    reader.start()
    try:
        for start, _end in spans:
            item = await _next_chunk(ahead, reader, start)
            done = _feed(pipeline, item, stats)
            if on_chunk is not None:
                on_chunk(done, item.end)
    finally:
        stop.set()
        await asyncio.to_thread(reader.join, 10)
        if reader.is_alive():
            reader.terminate()
    return stats
