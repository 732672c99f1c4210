"""``arbengine backtest``: the live pipeline, driven from stored history.

Reads from 26 h before ``from`` (the history horizon) so the first tick is as
valid as any, evaluates every tick in ``[from, to)``, and reports the paper
trades: a summary table per strategy and symbol, ``trades.csv``,
``signals.csv``, ``summary.json`` and a self-contained ``report.html``; on
request every evaluation too (``evaluations.csv``: what the daemon stores in
``signal_indicators``, written as the replay goes, so a long period does not
have to fit in memory). Positions still open at ``to`` are reported open,
with their funding so far.
"""

from __future__ import annotations

import csv
import json
import time
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
from arbengine.trading.report import (
    SummaryRow,
    iso,
    summary_json,
    summary_rows,
    write_report,
    write_trades_csv,
)

HORIZON_MS = 26 * 3_600_000
DAY_MS = 86_400_000

SIGNAL_COLUMNS = (
    "tick", "time", "symbol", "strategy", "strategy_hash", "direction", "score", "coverage",
    "price", "atr", "contributions",
)  # fmt: skip
EVALUATION_COLUMNS: tuple[str, ...] = EvaluationRow.__struct_fields__
"""``signal_indicators`` columns, in its order; JSON columns as JSON, floats exact."""
_JSON_FROM = EVALUATION_COLUMNS.index("features")


class EvaluationsCsv:
    """Every evaluation as a CSV row in ``signal_indicators`` form, written as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(EVALUATION_COLUMNS)

    def write(self, evaluations: Sequence[Evaluation]) -> None:
        for e in sorted(evaluations, key=lambda e: (e.tick_ms, e.symbol, e.strategy)):
            row = msgspec.structs.astuple(evaluation_row(e))
            self._writer.writerow(
                [*(repr(v) if isinstance(v, float) else v for v in row[:_JSON_FROM]),
                 *(json.dumps(v, sort_keys=True, default=msgspec.structs.asdict)
                   for v in row[_JSON_FROM:])]
            )  # fmt: skip

    def close(self) -> None:
        self._handle.close()


@dataclass
class BacktestResult:
    from_ms: int
    to_ms: int
    symbols: list[str]
    positions: list[PaperPosition]
    signals: list[Evaluation]
    evaluations: int = 0
    trades: int = 0
    seconds: float = 0.0
    rows: list[SummaryRow] = field(default_factory=list)
    replay: ReplayStats = field(default_factory=ReplayStats)
    """Where the trades came from (the archive or PostgreSQL) and how long reading waited."""


async def run_backtest(
    conn: asyncpg.Connection,
    strategies: StrategySet,
    from_ms: int,
    to_ms: int,
    *,
    symbols: Sequence[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    database_url: str | None = None,
    evaluations: EvaluationsCsv | None = None,
    archive: TapeArchive | None = None,
) -> BacktestResult:
    """With ``database_url`` the next day is read on a second connection while one is replayed;
    with ``evaluations`` every evaluation is written there as the replay goes; with
    ``archive`` the trades of sealed days are read from the tape archive. Without
    ``symbols``, the strategies' symbols that have trades in ``[from_ms, to_ms)``."""
    pipeline = SignalPipeline(strategies)
    chosen = sorted(pipeline.core.symbols if symbols is None else
                    set(symbols) & pipeline.core.symbols)  # fmt: skip
    pipeline.start_ticks_at(from_ms, chosen)
    result = BacktestResult(from_ms, to_ms, chosen, [], [])
    began = time.perf_counter()

    def chunk_done(trades: int, chunk_end: int) -> None:
        # Keep the fired evaluations only: a month of every evaluation would not fit.
        out = pipeline.drain()
        result.evaluations += len(out.evaluations)
        if evaluations is not None:
            evaluations.write(out.evaluations)
        result.signals += [e for e in out.evaluations if e.fired]
        if on_progress is not None:
            on_progress(trades, chunk_end)

    stats = await replay_history(
        pipeline,
        conn,
        chosen,
        from_ms - HORIZON_MS,
        to_ms,
        on_chunk=chunk_done,
        prefetch_url=database_url,
        archive=archive,
    )
    if symbols is None:
        # Without a choice of symbols, only those that traded in the range are replayed:
        # one with no trade there would only evaluate ticks without a price.
        result.symbols = pipeline.traded_since(from_ms)
    pipeline.finish(to_ms, result.symbols)
    chunk_done(0, to_ms)
    result.trades = stats.trades
    result.replay = stats
    result.positions = sorted(
        [*pipeline.book.closed, *pipeline.book.open],
        key=lambda p: (p.entry_tick, p.strategy, p.symbol),
    )
    result.seconds = time.perf_counter() - began
    result.rows = summary_rows(result.positions, from_ms, to_ms)
    return result


def write_signals_csv(signals: Sequence[Evaluation], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SIGNAL_COLUMNS)
        for e in sorted(signals, key=lambda e: (e.tick_ms, e.symbol, e.strategy)):
            writer.writerow(
                (
                    e.tick_ms, iso(e.tick_ms), e.symbol, e.strategy, e.strategy_hash,
                    e.direction, repr(e.score), repr(e.coverage), repr(e.price), repr(e.atr),
                    json.dumps({k: repr(v) for k, v in e.contributions.items()}, sort_keys=True),
                )
            )  # fmt: skip


def write_outputs(result: BacktestResult, out_dir: Path, title: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    trades = out_dir / "trades.csv"
    signals = out_dir / "signals.csv"
    summary = out_dir / "summary.json"
    report = out_dir / "report.html"
    write_trades_csv(result.positions, trades)
    write_signals_csv(result.signals, signals)
    summary.write_text(
        json.dumps(
            {
                "from": iso(result.from_ms),
                "to": iso(result.to_ms),
                "symbols": result.symbols,
                "trades_replayed": result.trades,
                "evaluations": result.evaluations,
                "signals": len(result.signals),
                "summary": summary_json(result.rows),
            },
            indent=2,
        )
    )
    write_report(
        result.positions,
        result.rows,
        report,
        title=title,
        params={
            "from": iso(result.from_ms),
            "to": iso(result.to_ms),
            "symbols": ", ".join(result.symbols),
            "trades replayed": f"{result.trades:,}",
            "signals": str(len(result.signals)),
        },
    )
    return [trades, signals, summary, report]
