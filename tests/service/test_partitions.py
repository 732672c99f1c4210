"""Monthly agg_trades partitions: created ahead, covering imports, dropped after retention."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import (
    ensure_partitions_covering,
    existing_partitions,
    expired_months,
    maintain_partitions,
    month_start_ms,
    months_between,
)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_month_arithmetic() -> None:
    assert month_start_ms(2026, 1) == ms(2026, 1, 1)
    assert months_between(ms(2025, 11, 30), ms(2026, 2, 1)) == [
        (2025, 11),
        (2025, 12),
        (2026, 1),
        (2026, 2),
    ]


@pytest.mark.parametrize(
    ("retention", "expected"),
    [(0, []), (1, [(2026, 8), (2026, 9)]), (2, [(2026, 8)]), (12, [])],
)
def test_expired_months(retention: int, expected: list[tuple[int, int]]) -> None:
    existing = [(2026, 8), (2026, 9), (2026, 10), (2026, 11), (2026, 12)]
    assert expired_months(existing, ms(2026, 11, 26), retention) == expected


@pytest.fixture
async def conn(database_url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(database_url)
    await apply_migrations(connection)
    yield connection
    await connection.close()


async def test_current_and_next_two_months_are_created_once(conn: asyncpg.Connection) -> None:
    now = ms(2026, 11, 26, 12)
    created, dropped = await maintain_partitions(conn, now)
    assert created == ["agg_trades_202611", "agg_trades_202612", "agg_trades_202701"]
    assert dropped == []
    assert await maintain_partitions(conn, now) == ([], [])
    assert await existing_partitions(conn) == [(2026, 11), (2026, 12), (2027, 1)]


async def test_rows_land_in_their_month_and_boundaries_are_exact(conn: asyncpg.Connection) -> None:
    await maintain_partitions(conn, ms(2026, 11, 1))
    boundary = ms(2026, 12, 1)
    rows = [("BTCUSDT", 1, boundary - 1), ("BTCUSDT", 2, boundary)]
    await conn.executemany(
        "INSERT INTO agg_trades VALUES ($1, $2, $3, 1.0, 1.0, 1, 1, false)", rows
    )
    placed = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, agg_id FROM agg_trades ORDER BY 2"
    )
    assert [(r["part"], r["agg_id"]) for r in placed] == [
        ("agg_trades_202611", 1),
        ("agg_trades_202612", 2),
    ]


async def test_a_trade_outside_every_partition_is_refused(conn: asyncpg.Connection) -> None:
    await maintain_partitions(conn, ms(2026, 11, 1))
    with pytest.raises(asyncpg.exceptions.CheckViolationError):
        await conn.execute(
            "INSERT INTO agg_trades VALUES ('BTCUSDT', 1, $1, 1.0, 1.0, 1, 1, false)",
            ms(2025, 1, 5),
        )


async def test_covering_creates_partitions_for_old_imports(conn: asyncpg.Connection) -> None:
    created = await ensure_partitions_covering(conn, ms(2025, 12, 15), ms(2026, 2, 3))
    assert created == ["agg_trades_202512", "agg_trades_202601", "agg_trades_202602"]
    await conn.execute(
        "INSERT INTO agg_trades VALUES ('BTCUSDT', 1, $1, 1.0, 1.0, 1, 1, false)", ms(2026, 1, 5)
    )
    assert await conn.fetchval("SELECT count(*) FROM agg_trades_202601") == 1


async def test_retention_drops_old_partitions_and_their_rows(conn: asyncpg.Connection) -> None:
    await ensure_partitions_covering(conn, ms(2026, 6, 1), ms(2026, 11, 1))
    await conn.execute(
        "INSERT INTO agg_trades VALUES ('BTCUSDT', 1, $1, 1.0, 1.0, 1, 1, false)", ms(2026, 6, 2)
    )
    await conn.execute(
        "INSERT INTO agg_trades VALUES ('BTCUSDT', 2, $1, 1.0, 1.0, 1, 1, false)", ms(2026, 9, 2)
    )
    created, dropped = await maintain_partitions(conn, ms(2026, 11, 26), retention_months=2)
    assert created == ["agg_trades_202612", "agg_trades_202701"]
    assert dropped == ["agg_trades_202606", "agg_trades_202607", "agg_trades_202608"]
    assert await conn.fetchval("SELECT array_agg(agg_id) FROM agg_trades") == [2]


async def test_retention_drops_the_archive_seals_of_the_days_it_drops(
    conn: asyncpg.Connection,
) -> None:
    """The archive is read only where it equals the table: a dropped month's seals go too."""
    await ensure_partitions_covering(conn, ms(2026, 6, 1), ms(2026, 11, 1))
    for day in ("2026-08-31", "2026-09-01"):
        await conn.execute(
            "INSERT INTO agg_trades_archive (symbol, day, rows, first_id, last_id, bytes, sha256,"
            " path) VALUES ('BTCUSDT', $1::text::date, 1, 1, 1, 1, 'x', 'p')",
            day,
        )
    await maintain_partitions(conn, ms(2026, 11, 26), retention_months=2)
    kept = await conn.fetch("SELECT day::text FROM agg_trades_archive")
    assert [r["day"] for r in kept] == ["2026-09-01"]
