"""SQL behind the continuity check: holes in the stored tape, the bookkeeping of
``agg_trades_meta`` kept true to the table, and completeness per day."""

from __future__ import annotations

import asyncpg

from arbengine.store.market_sql import refresh_gap_counters


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


async def settle_open_gaps(conn: asyncpg.Connection, symbol: str) -> list[tuple[int, int]]:
    """Record ``repaired`` for every gap seen without an outcome whose ids are all stored now.

    The collector records a gap when it sees it and its outcome when the
    repair's trades are written; a daemon that stops in between (a crash, a
    kill) leaves the gap open, and the next start's catch-up stores its trades
    without knowing about it. The table, not the process, says whether the
    gap is closed. Returns the gaps settled.
    """
    rows = await conn.fetch(
        """
        WITH open_gap AS (
            SELECT g.symbol, g.from_id, g.to_id FROM agg_trades_gaps g
            WHERE g.symbol = $1 AND g.outcome = 'seen'
              AND NOT EXISTS (
                  SELECT 1 FROM agg_trades_gaps o
                  WHERE o.symbol = g.symbol AND o.from_id = g.from_id AND o.to_id = g.to_id
                    AND o.outcome <> 'seen')
        )
        INSERT INTO agg_trades_gaps (symbol, from_id, to_id, outcome)
        SELECT g.symbol, g.from_id, g.to_id, 'repaired' FROM open_gap g
        WHERE (SELECT count(*) FROM agg_trades t
               WHERE t.symbol = g.symbol AND t.agg_id BETWEEN g.from_id AND g.to_id)
              = g.to_id - g.from_id + 1
        ON CONFLICT DO NOTHING
        RETURNING from_id, to_id
        """,
        symbol,
    )
    if rows:
        await refresh_gap_counters(conn, [symbol])
    return sorted((int(r["from_id"]), int(r["to_id"])) for r in rows)


async def recount_trade_rows(conn: asyncpg.Connection, symbol: str) -> int:
    """Make ``agg_trades_meta.rows`` equal the rows stored in its id span; return the change.

    ``rows`` is kept by adding what each write inserts, so rows removed
    behind its back (a manual delete, a restore) stay counted, and repairing
    them would count them twice. When the continuity check finds rows
    missing it recounts: the meta row and the count are read in one snapshot
    (so writes committed meanwhile are in both or in neither), and only the
    difference is applied, so writes that commit during the count keep their
    own increments. Nothing is locked while counting.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        meta = await conn.fetchrow(
            "SELECT first_id, last_id, rows FROM agg_trades_meta WHERE symbol = $1", symbol
        )
        if meta is None or meta["first_id"] is None or meta["last_id"] is None:
            return 0
        stored = await conn.fetchval(
            "SELECT count(*) FROM agg_trades WHERE symbol = $1 AND agg_id BETWEEN $2 AND $3",
            symbol,
            meta["first_id"],
            meta["last_id"],
        )
    delta = int(stored) - int(meta["rows"])
    if delta:
        await conn.execute(
            "UPDATE agg_trades_meta SET rows = rows + $2, updated_at = now() WHERE symbol = $1",
            symbol,
            delta,
        )
    return delta
