"""Binary COPY reader: exact values, range bounds, (T, agg_id) order even if stored out of order."""

from __future__ import annotations

import asyncpg
import numpy as np

from arbengine.store.market_writes import TRADE_COLUMNS
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from arbengine.store.trade_reader import iter_trade_chunks, read_trades

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

        cols = await read_trades(conn, "BTCUSDT", T0, T0 + 9_000)
        assert cols.agg_id.tolist() == list(range(10, 19))
        assert cols.ts.tolist() == [T0 + i * 1000 for i in range(9)]
        assert cols.price.tolist() == [r[3] for r in rows[:9]]
        assert cols.qty.tolist() == [r[4] for r in rows[:9]]
        assert cols.is_buyer_maker.tolist() == [r[7] for r in rows[:9]]
        assert cols.agg_id.dtype == np.int64

        chunks = [c async for c in iter_trade_chunks(conn, "BTCUSDT", T0, T0 + 10_000, 3_000)]
        assert [c.agg_id.tolist() for c in chunks] == [
            [10, 11, 12],
            [13, 14, 15],
            [16, 17, 18],
            [19],
        ]
        assert len(await read_trades(conn, "SOLUSDT", T0, T0 + 10_000)) == 0
    finally:
        await conn.close()
