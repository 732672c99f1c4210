"""``arbengine bench backtest``: trades/s through the backtester, end to end, reading included.

Generates ``--days`` of trades for 4 symbols (binary COPY straight from numpy,
so generation is quick) plus premiumIndex readings every 2 s, in a private
embedded PostgreSQL (or ``--database-url``), then runs the shipped strategies
over the whole period exactly as ``arbengine backtest`` does and reports
trades replayed per second (reading included), evaluations per second, and
where the time went.

With ``--source archive`` (the default) the generated days are first counted
as the continuity check counts them and sealed into a tape archive in a
temporary directory, as the daemon would have done, and the backtest reads
their trades from it; ``--source postgres`` reads everything from PostgreSQL
(the figure before the archive). A few trades after the last day stand for
the day after, whose first trade proves the last day complete. Reported
besides: how long after the replay began its first trade was replayed (the
first day's read), how long the replay waited for reads in all (reading that
did not overlap replaying), the trades read from the archive, what sealing
took (time, bytes per trade), and the table's size per trade (indexes included).
``--workers`` (default: the cores it may use) splits the symbols between processes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import struct
import tempfile
import time
from pathlib import Path

import asyncpg
import numpy as np

from arbengine.benchmarks import bench_database
from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.domain.errors import ConfigError
from arbengine.pipeline.backtest import run_backtest
from arbengine.pipeline.backtest_split import available_cores
from arbengine.signals import load_strategy_set
from arbengine.store.archive_sealer import seal_ready_days
from arbengine.store.continuity_sql import refresh_daily_completeness
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from arbengine.store.tape_archive import TapeArchive

DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
# Relative trade rates of the 4 symbols: BTC about 3 M aggTrades a day, the others fewer.
SYMBOLS = {"BTCUSDT": 1.0, "ETHUSDT": 0.67, "SOLUSDT": 0.4, "XRPUSDT": 0.3}
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TAIL_TRADES = 1000
"""Trades in the first minute after the last day: the day after, as far as sealing needs."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=30, help="days of generated history")
    parser.add_argument(
        "--trades-per-day", type=float, default=3_000_000,
        help="trades per day of the busiest symbol (the others trade less)",
    )  # fmt: skip
    parser.add_argument("--strategies", default="strategies", help="strategy directory")
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a private one")
    parser.add_argument(
        "--source", choices=("archive", "postgres"), default="archive",
        help="read the trades of the sealed days from a tape archive (default), or all from "
        "PostgreSQL",
    )  # fmt: skip
    parser.add_argument(
        "--keep", metavar="DIR",
        help="keep the generated database and archive in DIR, and reuse them when run again "
        "with the same --days and --trades-per-day (compare code or --workers on one dataset)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=0,
        help="processes to split the symbols between (default: the cores it may use)",
    )  # fmt: skip


MADE = "generated.json"
"""In a ``--keep`` directory: what was generated there (days, trades a day, trades)."""


def _kept(keep: Path | None, made: dict[str, float]) -> int | None:
    """The trades generated in ``keep`` by an earlier run with the same options (None: none
    yet, generate them); a run with other options there is a mistake."""
    if keep is None or not (keep / MADE).exists():
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        return None
    found = json.loads((keep / MADE).read_text())
    if {k: found.get(k) for k in made} != made:
        raise ConfigError(
            f"--keep {keep}: it holds {found.get('days')} days at "
            f"{found.get('trades_per_day'):,.0f} trades a day; use another directory for other "
            "options"
        )
    return int(found["trades"])


def _row_dtype(columns: tuple[tuple[str, str], ...]) -> np.dtype[np.void]:
    """A binary COPY row of fixed-width NOT NULL columns: a field count, then per column
    its int32 length and its big-endian value."""
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    for name, kind in columns:
        fields += [(f"len_{name}", ">i4"), (name, kind if kind[0] in "?S" else f">{kind}")]
    return np.dtype(fields)


def _copy_payload(symbol: str, ids: np.ndarray, ts: np.ndarray, price: np.ndarray,
                  qty: np.ndarray, maker: np.ndarray) -> bytes:  # fmt: skip
    """Rows of agg_trades in PostgreSQL's binary COPY format, built without a Python loop."""
    name = symbol.encode()
    columns = (("symbol", f"S{len(name)}"), ("agg_id", "i8"), ("ts", "i8"), ("price", "f8"),
               ("qty", "f8"), ("first_trade_id", "i8"), ("last_trade_id", "i8"),
               ("is_buyer_maker", "?"))  # fmt: skip
    rows = np.empty(len(ids), dtype=_row_dtype(columns))
    rows["nfields"] = len(columns)
    values = {"symbol": name, "agg_id": ids, "ts": ts, "price": price, "qty": qty,
              "first_trade_id": ids, "last_trade_id": ids, "is_buyer_maker": maker}  # fmt: skip
    for column, kind in columns:
        rows[f"len_{column}"] = len(name) if column == "symbol" else (1 if kind == "?" else 8)
        rows[column] = values[column]
    return _SIGNATURE + rows.tobytes() + b"\xff\xff"


async def _generate(conn: asyncpg.Connection, days: int, per_day: float) -> int:
    await ensure_partitions_covering(conn, START_MS, START_MS + (days + 1) * DAY_MS)
    rng = np.random.default_rng(7)
    total = 0
    for k, (symbol, share) in enumerate(SYMBOLS.items()):
        price0 = (60_000.0, 3_000.0, 150.0, 0.6)[k]
        next_id = 1
        log_price = np.log(price0)
        for day in range(days):
            n = int(per_day * share)
            ts = START_MS + day * DAY_MS + np.sort(rng.integers(0, DAY_MS, n))
            steps = rng.normal(0, 0.0004, n) + np.repeat(rng.normal(0, 0.00002, n // 500 + 1),
                                                         500)[:n]  # fmt: skip
            path = log_price + np.cumsum(steps)
            log_price = float(path[-1])
            price = np.round(np.exp(path), 2 if price0 > 10 else 4)
            qty = np.round(rng.pareto(2.2, n) * 0.01 + 0.001, 3)
            maker = rng.random(n) < 0.5
            ids = np.arange(next_id, next_id + n, dtype=np.int64)
            next_id += n
            payload = _copy_payload(symbol, ids, ts, price, qty, maker)
            await conn.copy_to_table("agg_trades", source=io.BytesIO(payload), format="binary")
            snaps_t = np.arange(START_MS + day * DAY_MS, START_MS + (day + 1) * DAY_MS, 2000)
            index = np.interp(snaps_t, ts, price)
            await conn.copy_records_to_table(
                "rate_snapshots",
                records=[
                    (symbol, int(t), float(i), float(i), None, 0.0001, 0.0001, None, int(t))
                    for t, i in zip(snaps_t, index, strict=True)
                ],
            )
            total += n
        # The first minute of the day after (its own generator: the days above stay the same).
        tail = np.random.default_rng(8 + k)
        ts = START_MS + days * DAY_MS + np.sort(tail.integers(0, 60_000, TAIL_TRADES))
        ids = np.arange(next_id, next_id + TAIL_TRADES, dtype=np.int64)
        price = np.full(TAIL_TRADES, np.round(np.exp(log_price), 2 if price0 > 10 else 4))
        payload = _copy_payload(symbol, ids, ts, price, np.full(TAIL_TRADES, 0.001),
                                tail.random(TAIL_TRADES) < 0.5)  # fmt: skip
        await conn.copy_to_table("agg_trades", source=io.BytesIO(payload), format="binary")
        # Counted as the continuity check counts each day (agg_trades_daily).
        await refresh_daily_completeness(conn, symbol, START_MS, START_MS + (days + 1) * DAY_MS)
    # Stored history has long been vacuumed by the time anyone backtests it; freshly copied
    # rows have not. Without this the first reads set every row's hint bits and race
    # autovacuum over the whole month, which measures the load, not the backtester.
    await conn.execute("VACUUM (ANALYZE) agg_trades, rate_snapshots")
    return total


async def _bench(args: argparse.Namespace) -> BenchReport:
    strategies = load_strategy_set(Path(args.strategies))
    workers = args.workers or available_cores()
    keep = Path(args.keep) if args.keep else None
    made = {"days": args.days, "trades_per_day": args.trades_per_day}
    kept = _kept(keep, made)
    with contextlib.ExitStack() as stack:
        archive_dir = (
            str(keep / "archive")
            if keep is not None
            else stack.enter_context(tempfile.TemporaryDirectory(prefix="arbengine-bench-archive-"))
        )
        archive = TapeArchive(archive_dir) if args.source == "archive" else None
        async with bench_database(args.database_url, keep) as url:
            conn = await asyncpg.connect(url)
            try:
                await apply_migrations(conn)
                began = time.perf_counter()
                if kept is None:
                    generated = await _generate(conn, args.days, args.trades_per_day)
                    if keep is not None:
                        (keep / MADE).write_text(json.dumps({**made, "trades": generated}))
                else:
                    generated = kept
                generation_s = time.perf_counter() - began
                table_bytes = await conn.fetchval(
                    "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits "
                    "WHERE inhparent = 'agg_trades'::regclass"
                )
                began = time.perf_counter()
                sealed = [] if archive is None else await seal_ready_days(conn, archive)
                seal_s = time.perf_counter() - began
                from_ms = START_MS + DAY_MS  # the first day is the history horizon
                to_ms = START_MS + args.days * DAY_MS
                result = await run_backtest(
                    conn, strategies, from_ms, to_ms, database_url=url, archive=archive,
                    workers=workers,
                )  # fmt: skip
            finally:
                await conn.close()
    rate = result.trades / result.seconds
    # The target on this project's reference machine (2 cores), and restricted to one core.
    target = 3_000_000 if available_cores() >= 2 else 1_500_000
    replay = result.replay
    first = replay.first_trade_s if replay.first_trade_s is not None else float("nan")
    sealed_rows = sum(o.rows for o in sealed)
    rows = [
        BenchRow("trades replayed", float(result.trades), "trades"),
        BenchRow("backtest time", result.seconds, "s"),
        BenchRow("throughput", rate, "trades/s", f">= {target}", rate >= target),
        BenchRow("first trade replayed after", first, "s", "<= 0.5", first <= 0.5),
        BenchRow("replay waiting for reads", replay.waited_s, "s"),
        BenchRow("trades read from the archive", float(replay.archived_trades), "trades"),
        BenchRow("evaluations", float(result.evaluations), "evaluations"),
        BenchRow("evaluations/s", result.evaluations / result.seconds, "evaluations/s"),
        BenchRow("signals", float(len(result.signals)), "signals"),
        BenchRow("paper trades", float(len(result.positions)), "trades"),
        BenchRow("data generated", float(generated), "trades"),
        BenchRow("generation and VACUUM time", generation_s, "s"),
        BenchRow("PostgreSQL size per trade", table_bytes / max(generated, 1), "bytes"),
    ]
    if archive is not None and sealed:  # (nothing to seal in a kept, sealed archive)
        rows += [
            BenchRow("symbol-days sealed", float(len(sealed)), "files"),
            BenchRow("sealing time", seal_s, "s"),
            BenchRow("sealing rate", sealed_rows / max(seal_s, 1e-9), "trades/s"),
            BenchRow(
                "archive size per trade",
                sum(o.bytes for o in sealed) / max(sealed_rows, 1),
                "bytes",
            ),
        ]
    return BenchReport(
        name="backtest",
        params={
            "days": args.days,
            "symbols": len(SYMBOLS),
            "busiest_trades_per_day": int(args.trades_per_day),
            "strategies": ",".join(strategies.names),
            "source": args.source,
            "workers": result.workers,
            "cores": available_cores(),
        },
        rows=rows,
    )


def run(args: argparse.Namespace) -> BenchReport:
    import uvloop

    return uvloop.run(_bench(args))
