"""``arbengine backtest`` without symbols replays only those that traded in the range."""

from __future__ import annotations

import asyncpg

from arbengine.pipeline.backtest import run_backtest
from arbengine.signals import StrategySet, parse_strategy
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering

FROM_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR_MS = 3_600_000
TICKS = HOUR_MS // 15_000
STRATEGY = StrategySet.of(
    [
        parse_strategy(
            {
                "name": "probe",
                "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
                "direction": {"feature": "flow_fast", "min": 0.05},
                "factors": [{"feature": "flow_mid", "weight": 1, "full": 0.15}],
                "entry": {"threshold": 70},
                "exit": {"sl_atr": 1.5},
            }
        )
    ]
)


async def _stored(database_url: str) -> asyncpg.Connection:
    """BTCUSDT trades every 10 s through the hour backtested; ETHUSDT only in the hour of
    history before it; SOLUSDT none at all."""
    conn = await asyncpg.connect(database_url)
    await apply_migrations(conn)
    await ensure_partitions_covering(conn, FROM_MS - 2 * HOUR_MS, FROM_MS + 2 * HOUR_MS)
    rows = [
        (symbol, i, ts, 100.0, 1.0, i, i, i % 2 == 0)
        for symbol, start, end in (
            ("BTCUSDT", FROM_MS - HOUR_MS, FROM_MS + HOUR_MS),
            ("ETHUSDT", FROM_MS - HOUR_MS, FROM_MS - 60_000),
        )
        for i, ts in enumerate(range(start, end, 10_000), 1)
    ]
    await conn.copy_records_to_table(
        "agg_trades",
        records=rows,
        columns=["symbol", "agg_id", "ts", "price", "qty", "first_trade_id", "last_trade_id",
                 "is_buyer_maker"],
    )  # fmt: skip
    return conn


async def test_without_symbols_only_those_with_trades_in_the_range_are_replayed(
    database_url: str,
) -> None:
    conn = await _stored(database_url)
    try:
        result = await run_backtest(conn, STRATEGY, FROM_MS, FROM_MS + HOUR_MS)
    finally:
        await conn.close()
    assert result.symbols == ["BTCUSDT"]
    assert result.evaluations == TICKS  # one strategy, one symbol, every tick of the hour


async def test_symbols_asked_for_are_replayed_even_without_trades(database_url: str) -> None:
    conn = await _stored(database_url)
    try:
        result = await run_backtest(
            conn, STRATEGY, FROM_MS, FROM_MS + HOUR_MS, symbols=["BTCUSDT", "ETHUSDT"]
        )
    finally:
        await conn.close()
    assert result.symbols == ["BTCUSDT", "ETHUSDT"]
    assert result.evaluations == 2 * TICKS
