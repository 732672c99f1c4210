"""Monthly partitions of ``agg_trades``: created ahead of time, dropped after retention.

Partitions are named ``agg_trades_YYYYMM`` and cover ``[first ms of month,
first ms of next month)`` in UTC. Dropping one also drops the tape archive's seals
of its days (their files stay where they are, no longer read). Inserting a trade whose month has no
partition fails loudly (there is deliberately no DEFAULT partition, which
would make every later partition creation scan it); writers that may meet
old data (backfills, imports) call ``ensure_partitions_covering`` first.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import asyncpg

from arbengine.store.archive_sql import drop_seals_before

_NAME = re.compile(r"^agg_trades_(\d{4})(\d{2})$")


def month_start_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def add_months(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def month_of_ms(ts_ms: int) -> tuple[int, int]:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.year, moment.month


def partition_name(year: int, month: int) -> str:
    return f"agg_trades_{year:04d}{month:02d}"


def months_between(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """Every (year, month) touched by ``[start_ms, end_ms]``."""
    year, month = month_of_ms(start_ms)
    last = month_of_ms(end_ms)
    months = []
    while (year, month) <= last:
        months.append((year, month))
        year, month = add_months(year, month, 1)
    return months


def expired_months(
    existing: list[tuple[int, int]], now_ms: int, retention_months: int
) -> list[tuple[int, int]]:
    """Partitions to drop: all months before the current month minus ``retention_months``.

    Retention N keeps the current month and the N full months before it; 0 keeps all.
    """
    if retention_months <= 0:
        return []
    oldest_kept = add_months(*month_of_ms(now_ms), -retention_months)
    return [m for m in existing if m < oldest_kept]


async def existing_partitions(conn: asyncpg.Connection) -> list[tuple[int, int]]:
    rows = await conn.fetch(
        """
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'agg_trades'
        """
    )
    found = []
    for row in rows:
        match = _NAME.match(row["relname"])
        if match:
            found.append((int(match.group(1)), int(match.group(2))))
    return sorted(found)


async def _create(conn: asyncpg.Connection, year: int, month: int) -> bool:
    name = partition_name(year, month)
    lower = month_start_ms(year, month)
    upper = month_start_ms(*add_months(year, month, 1))
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
    if exists:
        return False
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF agg_trades "
        f"FOR VALUES FROM ({lower}) TO ({upper})"
    )
    return True


async def ensure_partitions_covering(
    conn: asyncpg.Connection, start_ms: int, end_ms: int
) -> list[str]:
    """Create any missing partition for ``[start_ms, end_ms]``; return the names created."""
    created = []
    for year, month in months_between(start_ms, end_ms):
        if await _create(conn, year, month):
            created.append(partition_name(year, month))
    return created


async def maintain_partitions(
    conn: asyncpg.Connection, now_ms: int, months_ahead: int = 2, retention_months: int = 0
) -> tuple[list[str], list[str]]:
    """Keep the current and next ``months_ahead`` months ready; drop expired ones.

    Returns (created, dropped) partition names.
    """
    year, month = month_of_ms(now_ms)
    last = add_months(year, month, months_ahead)
    created = await ensure_partitions_covering(
        conn, month_start_ms(year, month), month_start_ms(*last)
    )
    dropped = []
    expired = expired_months(await existing_partitions(conn), now_ms, retention_months)
    for old in expired:
        name = partition_name(*old)
        async with conn.transaction():
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            # The archive is read only where it equals the table: those days' seals go too.
            await drop_seals_before(conn, month_start_ms(*add_months(*old, 1)))
        dropped.append(name)
    return created, dropped
