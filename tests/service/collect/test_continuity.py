"""The continuity check repairs holes in the stored tape over REST, and records what it cannot."""

from __future__ import annotations

import time

import aiohttp
import asyncpg
import pytest

from arbengine.app import continuity_store
from arbengine.collect.continuity import ContinuityCheck, ContinuityStore
from arbengine.domain.market import TapeGap, TradeBatch
from arbengine.exchange.rest import BinanceRest
from arbengine.settings import ExchangeSettings
from arbengine.sim.server import SimConfig, SimServer
from arbengine.store.database import Database
from arbengine.store.market_sql import (
    TRADE_COLUMNS,
    insert_trades,
    record_gaps,
    update_trade_meta,
)
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering

WEIGHT_SAFETY = ExchangeSettings().weight_safety
"""The daemon's share of each REST limit (a test of the budget states its own)."""


@pytest.fixture
async def sim():
    start = int(time.time() * 1000) // 1000 * 1000 - 600_000
    config = SimConfig(port=0, manual=True, seed=3, symbols=("BTCUSDT",), trade_rate=10.0,
                       start_ms=start)  # fmt: skip
    async with SimServer(config) as server:
        await server.advance_to(start + 300_000)
        yield server


def tape_rows(sim: SimServer) -> list[tuple]:
    tape = sim.tape("BTCUSDT")
    return [
        ("BTCUSDT", r["a"], r["T"], float(r["p"]), float(r["q"]), r["f"], r["l"], r["m"])
        for r in tape.rows(0, tape.released)
    ]


def store_for(pool: asyncpg.Pool) -> ContinuityStore:
    """The daemon's own store (``app.continuity_store``), on the test's pool."""
    return continuity_store(Database(pool=pool, url="", embedded=None, migrations_applied=[]))


async def test_a_hole_in_the_stored_tape_is_repaired(sim: SimServer, database_url: str) -> None:
    rows = tape_rows(sim)
    assert len(rows) > 500
    missing = rows[200:260]
    conn = await asyncpg.connect(database_url)
    await apply_migrations(conn)
    await ensure_partitions_covering(conn, rows[0][2], rows[-1][2])
    await conn.copy_records_to_table(
        "agg_trades", records=rows[:200] + rows[260:], columns=TRADE_COLUMNS
    )
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with aiohttp.ClientSession() as session:
            rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
            check = ContinuityCheck(["BTCUSDT"], rest, store_for(pool))
            outcomes = await check.check("BTCUSDT")
        assert [(g.from_id, g.to_id, g.outcome) for g in outcomes] == [
            (missing[0][1], missing[-1][1], "seen"),
            (missing[0][1], missing[-1][1], "repaired"),
        ]
        stored = await conn.fetch(
            "SELECT symbol, agg_id, ts, price, qty, first_trade_id, last_trade_id, "
            "is_buyer_maker FROM agg_trades ORDER BY agg_id"
        )
        assert [tuple(r) for r in stored] == rows
        meta = await conn.fetchrow("SELECT * FROM agg_trades_meta")
        assert (meta["gaps_seen"], meta["gaps_repaired"], meta["holes_left"]) == (1, 1, 0)
        daily = await conn.fetch("SELECT completeness FROM agg_trades_daily")
        assert [r["completeness"] for r in daily] == [1.0] * len(daily)
    finally:
        await pool.close()
        await conn.close()


async def test_ids_the_exchange_no_longer_has_are_recorded_as_a_hole(
    sim: SimServer, database_url: str
) -> None:
    rows = tape_rows(sim)
    # Stored ids 1..k and then ids far beyond anything the exchange ever had.
    phantom = [("BTCUSDT", r[1] + 10**9, *r[2:]) for r in rows[300:310]]
    conn = await asyncpg.connect(database_url)
    await apply_migrations(conn)
    await ensure_partitions_covering(conn, rows[0][2], rows[-1][2])
    await conn.copy_records_to_table(
        "agg_trades", records=rows[:300] + phantom, columns=TRADE_COLUMNS
    )
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with aiohttp.ClientSession() as session:
            rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
            check = ContinuityCheck(["BTCUSDT"], rest, store_for(pool))
            outcomes = await check.check("BTCUSDT")
            assert "hole" in {g.outcome for g in outcomes}
            again = await check.check("BTCUSDT")  # a known hole is not chased again
        assert again == []
        meta = await conn.fetchrow("SELECT * FROM agg_trades_meta")
        assert meta["holes_left"] >= 1
        daily = await conn.fetch("SELECT completeness FROM agg_trades_daily")
        assert min(r["completeness"] for r in daily) < 1.0
    finally:
        await pool.close()
        await conn.close()


def batch_of(rows: list[tuple]) -> TradeBatch:
    """Rows in TRADE_COLUMNS order as one batch of columns."""
    return TradeBatch.of("BTCUSDT", *([r[i] for r in rows] for i in range(1, 8)))


async def written_by_the_daemon(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Store ``rows`` the way the market writer does (trades and meta in one transaction)."""
    await apply_migrations(conn)
    await ensure_partitions_covering(conn, rows[0][2], rows[-1][2])
    async with conn.transaction():
        batch = batch_of(rows)
        await update_trade_meta(conn, [batch], await insert_trades(conn, [batch]))


async def test_repairing_deleted_rows_does_not_count_them_twice(
    sim: SimServer, database_url: str
) -> None:
    rows = tape_rows(sim)
    conn = await asyncpg.connect(database_url)
    await written_by_the_daemon(conn, rows)
    assert await conn.fetchval("SELECT rows FROM agg_trades_meta") == len(rows)
    # Rows removed behind the bookkeeping's back (by hand, a restore …).
    deleted = await conn.execute(
        "DELETE FROM agg_trades WHERE agg_id BETWEEN $1 AND $2", rows[100][1], rows[179][1]
    )
    assert deleted == "DELETE 80"
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with aiohttp.ClientSession() as session:
            rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
            check = ContinuityCheck(["BTCUSDT"], rest, store_for(pool))
            outcomes = await check.check("BTCUSDT")
        assert [g.outcome for g in outcomes] == ["seen", "repaired"]
        stored = await conn.fetchval("SELECT count(*) FROM agg_trades")
        assert stored == len(rows)
        meta = await conn.fetchrow("SELECT * FROM agg_trades_meta")
        assert meta["rows"] == stored  # not len(rows) + 80
        assert (meta["gaps_seen"], meta["gaps_repaired"]) == (1, 1)
    finally:
        await pool.close()
        await conn.close()


async def test_a_gap_left_open_by_a_crash_is_settled_once_its_ids_are_stored(
    sim: SimServer, database_url: str
) -> None:
    rows = tape_rows(sim)
    conn = await asyncpg.connect(database_url)
    # The collector recorded a gap as seen and was killed before its outcome was written;
    # the next start's catch-up stored every trade (nothing is missing).
    await written_by_the_daemon(conn, rows)
    seen = TapeGap("BTCUSDT", rows[50][1], rows[59][1], "seen")
    # Another gap still open for real: its ids are not all stored.
    open_gap = TapeGap("BTCUSDT", rows[-1][1] + 1, rows[-1][1] + 5, "seen")
    await record_gaps(conn, [seen, open_gap])
    meta = await conn.fetchrow("SELECT * FROM agg_trades_meta")
    assert (meta["gaps_seen"], meta["gaps_repaired"]) == (2, 0)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with aiohttp.ClientSession() as session:
            rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
            check = ContinuityCheck(["BTCUSDT"], rest, store_for(pool))
            await check.check("BTCUSDT")
            await check.check("BTCUSDT")  # settling twice changes nothing
        meta = await conn.fetchrow("SELECT * FROM agg_trades_meta")
        assert (meta["gaps_seen"], meta["gaps_repaired"], meta["holes_left"]) == (2, 1, 0)
        outcomes = await conn.fetch(
            "SELECT from_id, to_id, outcome FROM agg_trades_gaps ORDER BY from_id, outcome"
        )
        assert [tuple(r) for r in outcomes] == [
            (seen.from_id, seen.to_id, "repaired"),
            (seen.from_id, seen.to_id, "seen"),
            (open_gap.from_id, open_gap.to_id, "seen"),
        ]
    finally:
        await pool.close()
        await conn.close()
