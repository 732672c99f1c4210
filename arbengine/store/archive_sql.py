"""SQL of the tape archive's manifest (``agg_trades_archive``, migration 0020).

Which days are ready to be sealed, the sealer's lock on a day, what a seal
recorded, which sealed days a backtest may read from their files, and the
summary ``arbengine archive status`` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from arbengine.store.tape_archive import EPOCH_DAY, SealedFile, day_of_ms

_DAY_START = "((d.day - date '1970-01-01')::bigint * 86400000)"


@dataclass(frozen=True)
class ReadyDay:
    """A day the continuity check has proven complete, not sealed (or changed since)."""

    symbol: str
    day: date
    rows: int
    first_id: int
    last_id: int
    resealing: bool
    """Sealed before, and trades were written into it since."""


async def ready_days(
    conn: asyncpg.Connection, symbols: Sequence[str] | None, day: date | None = None
) -> list[ReadyDay]:
    """Days ready to be sealed, oldest first: counted complete by the continuity check
    (``agg_trades_daily``: every id from its first to its last stored), and the tape runs
    on into the days either side: the id after its last is stored, on a later day (so the
    day is over and its count saw its end); the id before its first is stored on an earlier
    day, or nothing of the symbol is stored before it (where its history begins). A day
    next to a hole that could not be repaired is never ready: it is read from PostgreSQL."""
    rows = await conn.fetch(
        f"""
        SELECT d.symbol, d.day, d.rows, d.first_id, d.last_id, a.symbol IS NOT NULL AS resealing
        FROM agg_trades_daily d
        LEFT JOIN agg_trades_archive a ON a.symbol = d.symbol AND a.day = d.day
        WHERE ($1::text[] IS NULL OR d.symbol = ANY($1::text[]))
          AND ($2::date IS NULL OR d.day = $2::date)
          AND d.completeness = 1 AND d.rows = d.last_id - d.first_id + 1
          AND (a.symbol IS NULL OR a.changed_at IS NOT NULL)
          AND EXISTS (SELECT 1 FROM agg_trades n
                      WHERE n.symbol = d.symbol AND n.agg_id = d.last_id + 1
                        AND n.ts >= {_DAY_START} + 86400000)
          AND (EXISTS (SELECT 1 FROM agg_trades p
                       WHERE p.symbol = d.symbol AND p.agg_id = d.first_id - 1
                         AND p.ts < {_DAY_START})
               OR NOT EXISTS (SELECT 1 FROM agg_trades p
                              WHERE p.symbol = d.symbol AND p.agg_id < d.first_id))
        ORDER BY d.day, d.symbol
        """,
        None if symbols is None else list(symbols),
        day,
    )
    return [
        ReadyDay(r["symbol"], r["day"], r["rows"], r["first_id"], r["last_id"], r["resealing"])
        for r in rows
    ]


async def lock_day(conn: asyncpg.Connection, symbol: str, day: date) -> None:
    """The sealer's hold on a symbol-day until its transaction ends: writes of trades into
    the day wait for it (``agg_trades_archive_touch`` takes the same key, shared)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('agg_trades_archive ' || $1::text), $2::int)",
        symbol,
        (day - EPOCH_DAY).days,
    )


async def record_seal(conn: asyncpg.Connection, sealed: SealedFile) -> None:
    await conn.execute(
        """
        INSERT INTO agg_trades_archive AS a
            (symbol, day, rows, first_id, last_id, bytes, sha256, path)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (symbol, day) DO UPDATE SET
            rows = EXCLUDED.rows, first_id = EXCLUDED.first_id, last_id = EXCLUDED.last_id,
            bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256, path = EXCLUDED.path,
            sealed_at = now(), changed_at = NULL
        """,
        sealed.symbol,
        sealed.day,
        sealed.rows,
        sealed.first_id,
        sealed.last_id,
        sealed.bytes,
        sealed.sha256,
        sealed.path,
    )


async def mark_changed(conn: asyncpg.Connection, symbol: str, day: date) -> None:
    """Stop reading a day from its file (it failed a check): sealed again by the next seal."""
    await conn.execute(
        "UPDATE agg_trades_archive SET changed_at = now() "
        "WHERE symbol = $1 AND day = $2 AND changed_at IS NULL",
        symbol,
        day,
    )


async def drop_seals_before(conn: asyncpg.Connection, before_ms: int) -> int:
    """Forget the seals of days before ``before_ms`` (their partitions were dropped: the table
    no longer holds them, and the archive is read only where it equals the table)."""
    done = await conn.execute("DELETE FROM agg_trades_archive WHERE day < $1", day_of_ms(before_ms))
    return int(done.split()[-1])


@dataclass(frozen=True)
class SymbolSummary:
    symbol: str
    counted: int
    """Days the continuity check has counted (``agg_trades_daily``)."""
    complete: int
    sealed: int
    changed: int
    """Sealed, then written into: read from PostgreSQL until sealed again."""
    sealed_rows: int
    sealed_bytes: int
    first_sealed: date | None
    last_sealed: date | None


async def summary(conn: asyncpg.Connection, symbols: Sequence[str] | None) -> list[SymbolSummary]:
    rows = await conn.fetch(
        """
        SELECT coalesce(d.symbol, a.symbol) AS symbol,
               count(d.day) AS counted,
               count(d.day) FILTER (WHERE d.completeness = 1) AS complete,
               count(a.day) FILTER (WHERE a.changed_at IS NULL) AS sealed,
               count(a.day) FILTER (WHERE a.changed_at IS NOT NULL) AS changed,
               coalesce(sum(a.rows) FILTER (WHERE a.changed_at IS NULL), 0)::int8 AS sealed_rows,
               coalesce(sum(a.bytes) FILTER (WHERE a.changed_at IS NULL), 0)::int8 AS sealed_bytes,
               min(a.day) FILTER (WHERE a.changed_at IS NULL) AS first_sealed,
               max(a.day) FILTER (WHERE a.changed_at IS NULL) AS last_sealed
        FROM agg_trades_daily d
        FULL JOIN agg_trades_archive a ON a.symbol = d.symbol AND a.day = d.day
        WHERE $1::text[] IS NULL OR coalesce(d.symbol, a.symbol) = ANY($1::text[])
        GROUP BY 1 ORDER BY 1
        """,
        None if symbols is None else list(symbols),
    )
    return [SymbolSummary(**dict(r)) for r in rows]


async def sealed_in(
    conn: asyncpg.Connection,
    symbols: Sequence[str] | None,
    first_day: date | None,
    last_day: date | None,
) -> list[SealedFile]:
    """Every sealed day (unchanged since) of ``symbols`` between the two days (inclusive;
    None: no bound): what a replay reads from the files, and what ``archive verify`` checks."""
    rows = await conn.fetch(
        """
        SELECT symbol, day, rows, first_id, last_id, bytes, sha256, path
        FROM agg_trades_archive
        WHERE ($1::text[] IS NULL OR symbol = ANY($1::text[]))
          AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day <= $3)
          AND changed_at IS NULL
        ORDER BY day, symbol
        """,
        None if symbols is None else list(symbols),
        first_day,
        last_day,
    )
    return [SealedFile(**dict(r)) for r in rows]
