"""One backtest's replay of a group of symbols: the whole backtest, or its share of one split
across processes (``backtest_split``), and the evaluations.csv that it writes as it goes.

Symbols do not meet anywhere in the pipeline (features, cooldowns, ``max_open_per_symbol``,
paper positions and their funding are all per symbol), so replaying them in groups and
putting the groups' results together gives exactly what one replay of them all gives.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import msgspec

from arbengine.domain.engine_rows import EvaluationRow
from arbengine.pipeline.records import evaluation_row
from arbengine.pipeline.replay import ReplayStats, replay_history
from arbengine.pipeline.signal_pipeline import SignalPipeline
from arbengine.signals import StrategySet
from arbengine.signals.scoring import Evaluation
from arbengine.store.tape_archive import TapeArchive
from arbengine.trading.paper import PaperPosition

HORIZON_MS = 26 * 3_600_000

EVALUATION_COLUMNS: tuple[str, ...] = EvaluationRow.__struct_fields__
"""``signal_indicators`` columns, in its order; JSON columns as JSON, floats exact."""
_JSON_FROM = EVALUATION_COLUMNS.index("features")


class EvaluationsCsv:
    """Every evaluation as a CSV row in ``signal_indicators`` form, written as they come.

    Rows are sorted by (tick, symbol, strategy) within each chunk of the replay. A backtest
    split across processes writes one *part* per process (``chunk_column``: each row led by
    its chunk's number), and ``merge`` puts the parts together in exactly that order: the
    file is the same byte for byte however many processes made it.
    """

    def __init__(self, path: Path, *, chunk_column: bool = False) -> None:
        self.path = path
        self._chunk_column = chunk_column
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow((("chunk",) if chunk_column else ()) + EVALUATION_COLUMNS)

    def write(self, evaluations: Sequence[Evaluation], chunk: int = 0) -> None:
        lead = [chunk] if self._chunk_column else []
        for e in sorted(evaluations, key=lambda e: (e.tick_ms, e.symbol, e.strategy)):
            row = msgspec.structs.astuple(evaluation_row(e))
            self._writer.writerow(
                [*lead,
                 *(repr(v) if isinstance(v, float) else v for v in row[:_JSON_FROM]),
                 *(json.dumps(v, sort_keys=True, default=msgspec.structs.asdict)
                   for v in row[_JSON_FROM:])]
            )  # fmt: skip

    def merge(self, parts: Sequence[Path]) -> None:
        """Append the rows of ``parts`` (written with ``chunk_column``) in the order one
        process would have written them, then delete the parts."""
        handles = [part.open(newline="", encoding="utf-8") for part in parts]
        try:
            readers = [csv.reader(handle) for handle in handles]
            for reader in readers:
                next(reader, None)  # the header
            for row in heapq.merge(*readers, key=_part_order):
                self._writer.writerow(row[1:])
        finally:
            for handle in handles:
                handle.close()
        for part in parts:
            part.unlink()

    def close(self) -> None:
        self._handle.close()


_TICK, _SYMBOL, _STRATEGY = (
    1 + EVALUATION_COLUMNS.index(c) for c in ("tick", "symbol", "strategy")
)


def _part_order(row: list[str]) -> tuple[int, int, str, str]:
    return int(row[0]), int(row[_TICK]), row[_SYMBOL], row[_STRATEGY]


ChunkDone = Callable[[int, int, int], None]
"""``(chunk number, trades in it, chunk end ms)``, after each chunk of the replay."""


@dataclass
class PartResult:
    """What the replay of one group of symbols produced."""

    symbols: list[str]
    """Replayed: those asked for, or (``only_traded``) those of them that traded in range."""
    positions: list[PaperPosition] = field(default_factory=list)
    signals: list[Evaluation] = field(default_factory=list)
    """The fired evaluations (a month of every evaluation would not fit in memory)."""
    evaluations: int = 0
    stats: ReplayStats = field(default_factory=ReplayStats)


async def replay_part(
    conn: asyncpg.Connection,
    strategies: StrategySet,
    symbols: Sequence[str],
    from_ms: int,
    to_ms: int,
    *,
    only_traded: bool,
    database_url: str | None = None,
    archive: TapeArchive | None = None,
    evaluations: EvaluationsCsv | None = None,
    on_chunk: ChunkDone | None = None,
) -> PartResult:
    """Replay ``symbols`` from the history horizon before ``from_ms`` to ``to_ms``, evaluating
    every tick in ``[from_ms, to_ms)``; ``only_traded``: only of the symbols with a trade in
    that range (one without would only evaluate ticks without a price)."""
    pipeline = SignalPipeline(strategies)
    part = PartResult(sorted(set(symbols) & pipeline.core.symbols))
    pipeline.start_ticks_at(from_ms, part.symbols)
    chunks = 0

    def chunk_done(trades: int, chunk_end: int) -> None:
        nonlocal chunks
        out = pipeline.drain()
        part.evaluations += len(out.evaluations)
        if evaluations is not None:
            evaluations.write(out.evaluations, chunks)
        part.signals += [e for e in out.evaluations if e.fired]
        if on_chunk is not None:
            on_chunk(chunks, trades, chunk_end)
        chunks += 1

    part.stats = await replay_history(
        pipeline,
        conn,
        part.symbols,
        from_ms - HORIZON_MS,
        to_ms,
        on_chunk=chunk_done,
        prefetch_url=database_url,
        archive=archive,
    )
    if only_traded:
        part.symbols = pipeline.traded_since(from_ms)
    pipeline.finish(to_ms, part.symbols)
    chunk_done(0, to_ms)
    part.positions = [*pipeline.book.closed, *pipeline.book.open]
    return part
