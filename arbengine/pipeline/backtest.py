"""``arbengine backtest``: the live pipeline, driven from stored history.

Reads from 26 h before ``from`` (the history horizon) so the first tick is as
valid as any, evaluates every tick in ``[from, to)``, and reports the paper
trades: a summary table per strategy and symbol, ``trades.csv``,
``signals.csv``, ``summary.json`` and a self-contained ``report.html``; on
request every evaluation too (``evaluations.csv``: what the daemon stores in
``signal_indicators``, written as the replay goes, so a long period does not
have to fit in memory). Positions still open at ``to`` are reported open,
with their funding so far.

With more than one worker (``--workers``, by default the cores it may use) the symbols
are split between processes (``backtest_split``): the results are the same, file for file.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from arbengine.pipeline.backtest_part import HORIZON_MS, EvaluationsCsv, replay_part
from arbengine.pipeline.backtest_split import plan_groups, replay_split
from arbengine.pipeline.replay import ReplayStats
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

__all__ = ["BacktestResult", "EvaluationsCsv", "run_backtest", "write_outputs"]

SIGNAL_COLUMNS = (
    "tick", "time", "symbol", "strategy", "strategy_hash", "direction", "score", "coverage",
    "price", "atr", "contributions",
)  # fmt: skip


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
    workers: int = 1
    """Processes the symbols were split between."""


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
    workers: int | None = 1,
) -> BacktestResult:
    """With ``database_url`` the next day is read on a second connection while one is replayed,
    and with ``workers`` > 1 too the symbols are split between that many processes (``None``:
    between the cores it may use, if the backtest is big enough to gain from it); with
    ``evaluations`` every evaluation is written there as the replay goes; with ``archive``
    the trades of sealed days are read from the tape archive. Without ``symbols``, the
    strategies' symbols that have trades in ``[from_ms, to_ms)``."""
    chosen = sorted(strategies.symbols if symbols is None else set(symbols) & strategies.symbols)
    began = time.perf_counter()
    groups = (
        await plan_groups(conn, chosen, from_ms - HORIZON_MS, to_ms, workers)
        if database_url is not None
        else [chosen]
    )
    if len(groups) > 1 and database_url is not None:
        parts = await replay_split(
            conn, strategies, groups, from_ms, to_ms, only_traded=symbols is None,
            database_url=database_url, archive=archive, evaluations=evaluations,
            on_progress=on_progress,
        )  # fmt: skip
    else:
        report = on_progress

        def chunk_done(_k: int, trades: int, chunk_end: int) -> None:
            if report is not None:
                report(trades, chunk_end)

        part = await replay_part(
            conn, strategies, chosen, from_ms, to_ms, only_traded=symbols is None,
            database_url=database_url, archive=archive, evaluations=evaluations,
            on_chunk=chunk_done,
        )  # fmt: skip
        parts = [part]
    result = BacktestResult(from_ms, to_ms, sorted(s for p in parts for s in p.symbols), [], [])
    result.positions = sorted(
        (position for p in parts for position in p.positions),
        key=lambda p: (p.entry_tick, p.strategy, p.symbol),
    )
    result.signals = sorted(
        (e for p in parts for e in p.signals), key=lambda e: (e.tick_ms, e.symbol, e.strategy)
    )
    result.evaluations = sum(p.evaluations for p in parts)
    result.replay = _combined([p.stats for p in parts])
    result.trades = result.replay.trades
    result.workers = len(parts)
    result.seconds = time.perf_counter() - began
    result.rows = summary_rows(result.positions, from_ms, to_ms)
    return result


def _combined(stats: Sequence[ReplayStats]) -> ReplayStats:
    """The replays of all groups as one: counts summed; the first trade and the waiting for
    reads as the first group (replayed in this process) saw them."""
    own = stats[0] if stats else ReplayStats()
    return ReplayStats(
        trades=sum(s.trades for s in stats),
        events=sum(s.events for s in stats),
        archived_trades=sum(s.archived_trades for s in stats),
        rejected_files=sum(s.rejected_files for s in stats),
        first_trade_s=own.first_trade_s,
        waited_s=own.waited_s,
    )


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
