"""The writers against a real PostgreSQL that goes away, or freezes, mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

import asyncpg
from prometheus_client import REGISTRY

from arbengine.domain.engine_rows import EngineOutput, EvaluationBreakdown, EvaluationRow
from arbengine.domain.market import Indicator, TapeGap, TradeBatch
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.store.engine_writer import EngineWriter
from arbengine.store.market_writer import MarketWriter, WriterPolicy
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from tests.support.postgres import PgTestServer, frozen
from tests.support.waiting import eventually

T0 = 1_790_000_000_000


def batch(first_id: int, n: int) -> TradeBatch:
    ids = list(range(first_id, first_id + n))
    return TradeBatch.of(
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


async def migrated_pool(url: str) -> asyncpg.Pool:
    """A small pool on a migrated database with the trades partitions around ``T0``."""
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
        await ensure_partitions_covering(conn, T0, T0 + 1_000_000)
    finally:
        await conn.close()
    return await asyncpg.create_pool(url, min_size=1, max_size=2)


async def test_rows_survive_a_database_outage_exactly_once(tmp_path: Path) -> None:
    server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
    try:
        pool = await migrated_pool(server.url)
        channel: Channel = Channel("market-test", 5, OverflowPolicy.BLOCK)
        writer = MarketWriter(
            pool,
            channel,
            WriterPolicy(
                batch_rows=500,
                flush_interval_s=0.01,
                max_buffer_rows=3000,
                retry=RetryPolicy(initial_s=0.05, max_s=0.2),
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
    pool = await migrated_pool(database_url)
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


async def test_a_frozen_database_times_out_and_buffers_as_when_it_is_down(tmp_path: Path) -> None:
    server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
    try:
        pool = await migrated_pool(server.url)
        channel: Channel = Channel("market-frozen", 5, OverflowPolicy.BLOCK)
        writer = MarketWriter(
            pool,
            channel,
            WriterPolicy(
                batch_rows=500,
                flush_interval_s=0.01,
                max_buffer_rows=3000,
                retry=RetryPolicy(initial_s=0.05, max_s=0.2),
                write_timeout_s=1.0,
            ),
        )
        running = asyncio.create_task(writer.run())
        next_id = 1
        for _ in range(10):
            await channel.put(batch(next_id, 100))
            next_id += 100
        await asyncio.wait_for(writer.wait_until(lambda: writer.trades_written >= 1000), 10)
        timeouts = (
            REGISTRY.get_sample_value("arb_writer_flush_failures_total", {"reason": "timeout"})
            or 0.0
        )

        producer_done = asyncio.Event()

        async def produce() -> None:
            nonlocal next_id
            for _ in range(60):  # 6000 rows: more than the writer may buffer
                await channel.put(batch(next_id, 100))
                next_id += 100
            producer_done.set()

        async with frozen(server):
            froze = time.time()
            producing = asyncio.create_task(produce())
            # The stalled flush is given up after write_timeout; then the writer buffers up
            # to its bound and stops taking, exactly as when the database is down.
            await asyncio.wait_for(writer.wait_until(lambda: writer.backpressured), 30)
            health = writer.health()
            assert health.unavailable_since is not None
            assert froze - 0.001 <= health.unavailable_since <= time.time()
            assert health.last_error is not None
            # The stalled write was cut off, then no new connection was had in time.
            assert health.last_error.startswith("WriteTimeout: no ")
            assert health.buffered_rows >= 3000
            assert health.backpressure
            assert not producer_done.is_set()
            assert channel.waits_total > 0
            assert (
                REGISTRY.get_sample_value("arb_writer_flush_failures_total", {"reason": "timeout"})
                > timeouts
            )

        await asyncio.wait_for(producing, 30)
        channel.close()
        await asyncio.wait_for(running, 30)
        await pool.close()
        assert await stored_ids(server.url) == list(range(1, next_id))
        health = writer.health()
        assert (health.unavailable_since, health.last_error, health.buffered_rows) == (
            None,
            None,
            0,
        )
    finally:
        server.stop()


def engine_output(tick: int) -> EngineOutput:
    evaluation = EvaluationRow(
        "v52", "h" * 64, "BTCUSDT", tick, None, None, 0.5, False, "gated", {},
        EvaluationBreakdown({}, {}), {},
    )  # fmt: skip
    return EngineOutput(evaluations=[evaluation])


async def stored_ticks(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [
            r["tick"] for r in await conn.fetch("SELECT tick FROM signal_indicators ORDER BY 1")
        ]
    finally:
        await conn.close()


async def test_the_signal_writer_times_out_on_a_frozen_database_and_writes_once_it_thaws(
    tmp_path: Path,
) -> None:
    server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
    try:
        pool = await migrated_pool(server.url)
        channel: Channel = Channel("engine-out-frozen", 100, OverflowPolicy.BLOCK)
        writer = EngineWriter(pool, channel, write_timeout_s=1.0)
        running = asyncio.create_task(writer.run())
        await channel.put(engine_output(15_000))
        await asyncio.wait_for(writer.wait_until(lambda: writer.batches_written == 1), 10)

        async with frozen(server):
            for k in range(2, 6):
                await channel.put(engine_output(k * 15_000))
            await asyncio.wait_for(writer.wait_until(lambda: writer.last_error is not None), 30)
            health = writer.health()
            assert health.last_error is not None
            assert health.last_error.startswith("WriteTimeout")
            assert health.unavailable_since is not None
            assert health.buffered_rows >= 1

        channel.close()
        await asyncio.wait_for(running, 30)
        await pool.close()
        assert await stored_ticks(server.url) == [k * 15_000 for k in range(1, 6)]
        assert writer.health().unavailable_since is None
    finally:
        server.stop()


async def test_a_signal_writer_stopped_while_the_database_is_down_counts_what_it_held(
    tmp_path: Path,
) -> None:
    server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
    try:
        pool = await migrated_pool(server.url)
        await asyncio.to_thread(server.stop)
        channel: Channel = Channel("engine-out-down", 100, OverflowPolicy.BLOCK)
        writer = EngineWriter(pool, channel)
        running = asyncio.create_task(writer.run())
        await channel.put(engine_output(15_000))
        await asyncio.wait_for(writer.wait_until(lambda: writer.last_error is not None), 30)
        await channel.put(engine_output(30_000))  # queued behind the batch in hand
        channel.close()
        running.cancel()  # the shutdown deadline
        with contextlib.suppress(asyncio.CancelledError):
            await running
        assert writer.unwritten == {"evaluations": 2, "signals": 0, "paper_updates": 0}
        pool.terminate()
    finally:
        server.stop()


async def test_a_writer_cancelled_in_a_write_to_a_frozen_database_ends_at_once(
    tmp_path: Path,
) -> None:
    # The shutdown deadline cancels a writer whose write the server does not answer: it must
    # end now and count what it held, not wait out write_timeout and then retry.
    server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
    try:
        pool = await migrated_pool(server.url)
        channel: Channel = Channel("market-cancelled", 5, OverflowPolicy.BLOCK)
        writer = MarketWriter(
            pool,
            channel,
            WriterPolicy(batch_rows=500, flush_interval_s=0.01, write_timeout_s=5.0),
        )
        running = asyncio.create_task(writer.run())
        async with frozen(server):
            await channel.put(batch(1, 100))

            async def writing() -> bool:
                # Its connection is taken at once (an idle one): the write then waits on the
                # server, which answers nothing.
                return writer.writing_since is not None and pool.get_idle_size() == 0

            await eventually(writing, what="a write under way")
            cancelled_at = time.monotonic()
            running.cancel()
            done, _ = await asyncio.wait({running}, timeout=4.0)
            ended_after = time.monotonic() - cancelled_at
            assert done, "the cancelled writer is still writing"
            assert running.cancelled()
            assert ended_after < 1.0
            assert writer.unwritten["trades"] == 100
        pool.terminate()
    finally:
        server.stop()


async def test_the_signal_writer_retries_through_an_outage_as_its_policy_says_and_writes_once(
    tmp_path: Path,
) -> None:
    server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
    try:
        pool = await migrated_pool(server.url)
        channel: Channel = Channel("engine-out-outage", 100, OverflowPolicy.BLOCK)
        clock = ManualClock(T0)
        retry = RetryPolicy(initial_s=1.0, max_s=4.0, jitter=0.5)
        writer = EngineWriter(pool, channel, retry=retry, clock=clock, rng=random.Random(3))
        running = asyncio.create_task(writer.run())
        await channel.put(engine_output(15_000))
        await asyncio.wait_for(writer.wait_until(lambda: writer.batches_written == 1), 10)

        await asyncio.to_thread(server.stop)
        for k in range(2, 5):
            await channel.put(engine_output(k * 15_000))
        expected = random.Random(3)
        for attempt in range(1, 5):
            # Each failed write waits on the writer's clock, as long as the policy says.
            await asyncio.wait_for(clock.until_sleeping(), 30)
            assert clock.sleeps[-1] == retry.delay(attempt, expected)
            assert writer.batches_written == 1
            assert writer.health().unavailable_since is not None
            clock.advance(int(clock.sleeps[-1] * 1000) + 1)
        assert len(clock.sleeps) == 4

        server = await asyncio.to_thread(PgTestServer, tmp_path / "pg")
        await asyncio.wait_for(clock.until_sleeping(), 30)
        clock.advance(int(clock.sleeps[-1] * 1000) + 1)
        await asyncio.wait_for(writer.wait_until(lambda: writer.batches_written == 4), 30)
        channel.close()
        await asyncio.wait_for(running, 30)
        await pool.close()
        assert await stored_ticks(server.url) == [k * 15_000 for k in range(1, 5)]
        assert (writer.health().unavailable_since, writer.health().last_error) == (None, None)
        assert writer.unwritten == {}
    finally:
        server.stop()
