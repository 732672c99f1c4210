"""The market writer against a real PostgreSQL that goes away mid-stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from arbengine.domain.market import Indicator, TapeGap, TradeBatch
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from arbengine.store.writer import MarketWriter, WriterPolicy
from tests.support.postgres import PgTestServer

T0 = 1_790_000_000_000


def batch(first_id: int, n: int) -> TradeBatch:
    ids = list(range(first_id, first_id + n))
    return TradeBatch(
        "BTCUSDT",
        ids,
        [T0 + i for i in ids],
        [100.0 + i * 0.01 for i in ids],
        [0.5] * n,
        ids,
        ids,
        [i % 2 == 0 for i in ids],
    )


async def stored_ids(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r["agg_id"] for r in await conn.fetch("SELECT agg_id FROM agg_trades ORDER BY 1")]
    finally:
        await conn.close()


async def test_rows_survive_a_database_outage_exactly_once(tmp_path: Path) -> None:
    server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
    try:
        conn = await asyncpg.connect(server.url)
        await apply_migrations(conn)
        await ensure_partitions_covering(conn, T0, T0 + 1_000_000)
        await conn.close()
        pool = await asyncpg.create_pool(server.url, min_size=1, max_size=2)
        channel: Channel = Channel("market-test", 5, OverflowPolicy.BLOCK)
        writer = MarketWriter(
            pool,
            channel,
            WriterPolicy(
                batch_rows=500,
                flush_interval_s=0.01,
                max_buffer_rows=3000,
                retry_initial_s=0.05,
                retry_max_s=0.2,
            ),
        )
        running = asyncio.create_task(writer.run())

        next_id = 1
        for _ in range(10):
            await channel.put(batch(next_id, 100))
            next_id += 100

        await asyncio.wait_for(writer.wait_until(lambda: writer.trades_written >= 1000), 10)
        await asyncio.to_thread(server.stop)

        producer_done = asyncio.Event()

        async def produce_during_outage() -> None:
            nonlocal next_id
            for _ in range(60):  # 6000 rows: more than the writer may buffer
                await channel.put(batch(next_id, 100))
                next_id += 100
            producer_done.set()

        producing = asyncio.create_task(produce_during_outage())

        # The writer buffers up to its bound, then stops taking: the producer must wait.
        await asyncio.wait_for(writer.wait_until(lambda: writer.backpressured), 10)
        assert not producer_done.is_set()
        assert channel.waits_total > 0

        server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
        await asyncio.wait_for(producing, 30)
        await channel.put(TapeGap("BTCUSDT", 50, 60, "seen"))
        await channel.put(Indicator("BTCUSDT", "open_interest", T0, T0, 123.0))
        channel.close()
        await asyncio.wait_for(running, 30)
        await pool.close()

        ids = await stored_ids(server.url)
        assert ids == list(range(1, next_id))
        conn = await asyncpg.connect(server.url)
        meta = await conn.fetchrow("SELECT * FROM agg_trades_meta WHERE symbol = 'BTCUSDT'")
        assert (meta["first_id"], meta["last_id"], meta["rows"]) == (1, next_id - 1, next_id - 1)
        assert meta["gaps_seen"] == 1
        assert await conn.fetchval("SELECT value FROM market_indicators") == 123.0
        await conn.close()
    finally:
        server.stop()


async def test_a_replayed_batch_is_not_stored_twice(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    await apply_migrations(conn)
    await ensure_partitions_covering(conn, T0, T0 + 1_000_000)
    await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    channel: Channel = Channel("market-dup", 10, OverflowPolicy.BLOCK)
    writer = MarketWriter(pool, channel, WriterPolicy(flush_interval_s=0.01))
    running = asyncio.create_task(writer.run())
    await channel.put(batch(1, 10))
    await channel.put(batch(5, 10))  # ids 5..14: 5..10 already written
    channel.close()
    await asyncio.wait_for(running, 10)
    await pool.close()
    assert await stored_ids(database_url) == list(range(1, 15))
    conn = await asyncpg.connect(database_url)
    assert await conn.fetchval("SELECT rows FROM agg_trades_meta") == 14
    await conn.close()
