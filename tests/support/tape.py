"""Generated days of the trade tape, stored the way the collectors store them, for tests of
the tape archive and of backtests over it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import numpy as np

from arbengine.domain.market import TradeBatch
from arbengine.store.continuity_sql import refresh_daily_completeness
from arbengine.store.market_sql import insert_trades, update_trade_meta
from arbengine.store.partitions import ensure_partitions_covering

DAY_MS = 86_400_000
D0 = 1_767_225_600_000
"""2026-01-01T00:00Z: the first generated day."""

PROBE_STRATEGY = {
    "name": "probe",
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "tick": "1m",
    "windows": {"fast": "5m", "mid": "20m", "day": "1h"},
    "atr_percentile_min_values": 12,
    "direction": {"feature": "flow_fast", "min": 0.0},
    "factors": [
        {"feature": "flow_fast", "weight": 3, "full": 0.05},
        {"feature": "vwap_dev_fast", "weight": 1, "full": 0.002},
        {"feature": "large_imbalance_fast", "weight": 1, "full": 0.5},
        {"feature": "funding_rate", "weight": 1, "full": 0.001, "contrarian": True},
    ],
    "entry": {"threshold": 20, "cooldown": "5m"},
    "exit": {"sl_atr": 0.5, "tp1_atr": 0.5, "tp1_fraction": 0.5, "tp2_atr": 1.0,
             "max_hold": "30m"},
    "costs": {"fee_bps": 4, "slippage_bps": 1},
}  # fmt: skip
"""A strategy over the two generated symbols, ticking every minute: cheap to backtest."""


@dataclass
class Tape:
    """One symbol's generated tape: ids follow on from day to day."""

    symbol: str
    price: float
    seed: int
    next_id: int = 1

    def day(self, start_ms: int, trades: int, *, span_ms: int = DAY_MS) -> TradeBatch:
        """``trades`` trades within ``[start_ms, start_ms + span_ms)``, in time and id order."""
        rng = np.random.default_rng(self.seed + start_ms // DAY_MS)
        ts = start_ms + np.sort(rng.integers(0, span_ms, trades))
        path = np.log(self.price) + np.cumsum(rng.normal(0, 0.0005, trades))
        self.price = float(np.exp(path[-1]))
        ids = np.arange(self.next_id, self.next_id + trades, dtype=np.int64)
        self.next_id += trades
        return TradeBatch.of(
            self.symbol, ids, ts, np.round(np.exp(path), 2), np.round(rng.pareto(2.2, trades)
            * 0.01 + 0.001, 3), ids, ids, rng.random(trades) < 0.5,
        )  # fmt: skip


async def store_trades(conn: asyncpg.Connection, batches: list[TradeBatch]) -> None:
    """As the market writer stores them: in one transaction, meta row advanced."""
    nonempty = [b for b in batches if len(b)]
    await ensure_partitions_covering(
        conn, min(int(b.ts.min()) for b in nonempty), max(int(b.ts.max()) for b in nonempty)
    )
    async with conn.transaction():
        inserted = await insert_trades(conn, nonempty)
        await update_trade_meta(conn, nonempty, inserted)


async def count_days(
    conn: asyncpg.Connection, symbols: list[str], from_ms: int, to_ms: int
) -> None:
    """Per-day completeness, as the continuity check counts it."""
    for symbol in symbols:
        await refresh_daily_completeness(conn, symbol, from_ms, to_ms)


async def store_rates(conn: asyncpg.Connection, symbol: str, from_ms: int, to_ms: int) -> None:
    """A premiumIndex reading every minute, the funding rate drifting."""
    times = range(from_ms, to_ms, 60_000)
    await conn.copy_records_to_table(
        "rate_snapshots",
        records=[
            (symbol, t, 100.0, 100.0, None, 0.0001 * (1 + (t // 3_600_000) % 5), 0.0001, None, t)
            for t in times
        ],
    )


def without(batch: TradeBatch, ids: range) -> TradeBatch:
    """The batch less the trades of ``ids`` (a hole in the tape)."""
    keep = ~np.isin(batch.agg_id, np.asarray(ids))
    return batch.take(np.flatnonzero(keep))
