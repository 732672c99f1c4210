"""Column reader: exact values, range bounds, (T, agg_id) order even if stored out of order."""

from __future__ import annotations

import asyncpg
import numpy as np

from arbengine.store.market_sql import TRADE_COLUMNS
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from arbengine.store.trade_reader import read_columns_by_symbol, read_trades_of

T0 = 1_790_000_000_000


async def test_reads_exact_columns_in_order(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        await ensure_partitions_covering(conn, T0, T0 + 86_400_000)
        rows = [
            (
                "BTCUSDT",
                10 + i,
                T0 + i * 1000,
                60_000.1 + i * 0.1,
                0.001 * (i + 1),
                1,
                1,
                i % 2 == 0,
            )
            for i in range(10)
        ]
        # Stored out of order (as after a repair) plus another symbol and rows out of range.
        shuffled = [rows[i] for i in (5, 6, 7, 8, 9, 0, 1, 2, 3, 4)]
        shuffled += [("ETHUSDT", 1, T0, 3000.0, 1.0, 1, 1, False)]
        shuffled += [("BTCUSDT", 9, T0 - 1, 1.0, 1.0, 1, 1, False)]
        await conn.copy_records_to_table("agg_trades", records=shuffled, columns=TRADE_COLUMNS)

        found = await read_trades_of(conn, ["BTCUSDT", "SOLUSDT", "ETHUSDT"], T0, T0 + 9_000)
        assert list(found) == ["BTCUSDT", "ETHUSDT"]  # asked order; SOLUSDT has none
        cols = found["BTCUSDT"]
        assert cols.agg_id.tolist() == list(range(10, 19))
        assert cols.ts.tolist() == [T0 + i * 1000 for i in range(9)]
        assert cols.price.tolist() == [r[3] for r in rows[:9]]
        assert cols.qty.tolist() == [r[4] for r in rows[:9]]
        assert cols.is_buyer_maker.tolist() == [r[7] for r in rows[:9]]
        assert cols.agg_id.dtype == np.int64
        assert cols.price.dtype == np.float64
        assert found["ETHUSDT"].price.tolist() == [3000.0]
        assert await read_trades_of(conn, ["BTCUSDT"], T0 + 10_000, T0 + 20_000) == {}

        # Ordered aggregation: every column follows the same order.
        ordered = await read_columns_by_symbol(
            conn, "agg_trades", (("ts", "i8"), ("agg_id", "i8")), ["BTCUSDT"],
            "ts >= $2", (T0,), order_by="ts DESC",
        )  # fmt: skip
        assert ordered["BTCUSDT"]["agg_id"].tolist() == list(range(19, 9, -1))
    finally:
        await conn.close()
