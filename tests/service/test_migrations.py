"""Migrations on a real PostgreSQL: all tables created, idempotent, edits detected."""

from __future__ import annotations

import asyncpg
import pytest

from arbengine.store.migrations import MigrationError, apply_migrations, available_migrations

TABLES = {
    "agg_trades",
    "agg_trades_meta",
    "rate_snapshots",
    "market_indicators",
    "liquidation_events",
    "liquidation_agg",
    "signal_indicators",
    "signal_logs",
    "paper_trades",
    "live_trades",
    "live_orders",
    "live_config",
    "live_events",
    "users",
    "invite_codes",
    "refresh_tokens",
    "admin_audit",
    "schema_migrations",
}


async def test_migrations_create_the_tables_once(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await apply_migrations(conn)
        assert first == [m.name for m in available_migrations()]
        schema_before = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        second = await apply_migrations(conn)
        assert second == []
        schema_after = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        assert schema_before == schema_after
        tables = {r["table_name"] for r in schema_after}
        assert tables >= TABLES
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert recorded == len(available_migrations())
    finally:
        await conn.close()


async def test_an_applied_migration_that_changed_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn)
    finally:
        await conn.close()


async def test_agg_trades_is_partitioned_by_range_on_trade_time(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        strategy = await conn.fetchval(
            "SELECT partstrat::text FROM pg_partitioned_table "
            "WHERE partrelid = 'agg_trades'::regclass"
        )
        assert strategy == "r"
        key = await conn.fetchval("SELECT pg_get_partkeydef('agg_trades'::regclass)")
        assert key == "RANGE (ts)"
    finally:
        await conn.close()
