"""SQL behind the continuity check: holes in the stored tape and completeness per day."""

from __future__ import annotations

import asyncpg


async def find_holes(conn: asyncpg.Connection, symbol: str, from_id: int) -> list[tuple[int, int]]:
    """Id ranges missing between stored trades with ``agg_id ≥ from_id`` (inclusive bounds)."""
    rows = await conn.fetch(
        """
        SELECT prev + 1 AS from_id, agg_id - 1 AS to_id FROM (
            SELECT agg_id, lag(agg_id) OVER (ORDER BY agg_id) AS prev
            FROM agg_trades WHERE symbol = $1 AND agg_id >= $2
        ) s
        WHERE agg_id > prev + 1
        ORDER BY 1
        """,
        symbol,
        from_id,
    )
    return [(int(r["from_id"]), int(r["to_id"])) for r in rows]


async def known_holes(conn: asyncpg.Connection, symbol: str) -> list[tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT from_id, to_id FROM agg_trades_gaps WHERE symbol = $1 AND outcome = 'hole'",
        symbol,
    )
    return [(int(r["from_id"]), int(r["to_id"])) for r in rows]


async def first_id_since(conn: asyncpg.Connection, symbol: str, since_ms: int) -> int | None:
    value = await conn.fetchval(
        "SELECT min(agg_id) FROM agg_trades WHERE symbol = $1 AND ts >= $2", symbol, since_ms
    )
    return None if value is None else int(value)


async def refresh_daily_completeness(
    conn: asyncpg.Connection, symbol: str, from_ms: int, to_ms: int
) -> None:
    """Per UTC day: stored rows / (last id − first id + 1), for days in [from_ms, to_ms)."""
    await conn.execute(
        """
        INSERT INTO agg_trades_daily AS d (symbol, day, first_id, last_id, rows, completeness)
        SELECT symbol, (to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC')::date AS day,
               min(agg_id), max(agg_id), count(*),
               count(*)::double precision / (max(agg_id) - min(agg_id) + 1)
        FROM agg_trades
        WHERE symbol = $1 AND ts >= $2 AND ts < $3
        GROUP BY symbol, day
        ON CONFLICT (symbol, day) DO UPDATE SET
            first_id = EXCLUDED.first_id, last_id = EXCLUDED.last_id, rows = EXCLUDED.rows,
            completeness = EXCLUDED.completeness, checked_at = now()
        """,
        symbol,
        from_ms,
        to_ms,
    )
