"""SQL for storing market events. Every statement is idempotent, so a retried
flush (after a commit whose acknowledgement was lost) changes nothing.

Trades go in by binary COPY straight into ``agg_trades`` (the tape never
sends an id twice, so this is the common case); if a COPY meets an id that is
already stored, that batch goes through a temporary table and
``INSERT … ON CONFLICT DO NOTHING`` instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

import asyncpg
import numpy as np
import orjson

from arbengine.domain.market import (
    Indicator,
    Liquidation,
    RateSnapshot,
    TapeGap,
    TradeBatch,
)

DAY_MS = 86_400_000
EPOCH_DAY = date(1970, 1, 1)

TRADE_COLUMNS = (
    "symbol",
    "agg_id",
    "ts",
    "price",
    "qty",
    "first_trade_id",
    "last_trade_id",
    "is_buyer_maker",
)


async def insert_trades(conn: asyncpg.Connection, batches: Sequence[TradeBatch]) -> dict[str, int]:
    """Store trades; return rows actually inserted per symbol. Call inside a transaction.

    The days that got rows are touched (``agg_trades_archive_touch``, migration 0020): a
    sealed day written into is read from the table again until it is sealed anew."""
    records = [row for batch in batches for row in batch.rows()]
    inserted: dict[str, int] = defaultdict(int)
    if not records:
        return inserted
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("agg_trades", records=records, columns=TRADE_COLUMNS)
    except asyncpg.UniqueViolationError:
        pass
    else:
        for batch in batches:
            inserted[batch.symbol] += len(batch)
        await _touch_days(conn, {(b.symbol, day) for b in batches for day in _days_of(b)})
        return inserted
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS agg_trades_incoming "
        "(LIKE agg_trades INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    await conn.execute("TRUNCATE agg_trades_incoming")
    await conn.copy_records_to_table("agg_trades_incoming", records=records, columns=TRADE_COLUMNS)
    rows = await conn.fetch(
        """
        WITH ins AS (
            INSERT INTO agg_trades SELECT * FROM agg_trades_incoming
            ON CONFLICT DO NOTHING RETURNING symbol, ts
        ) SELECT symbol, ts / $1 AS day, count(*) AS n FROM ins GROUP BY 1, 2
        """,
        DAY_MS,
    )
    for row in rows:
        inserted[row["symbol"]] += int(row["n"])
    await _touch_days(conn, {(row["symbol"], int(row["day"])) for row in rows})
    return inserted


def _days_of(batch: TradeBatch) -> list[int]:
    """The UTC days (days since the epoch) of a batch's trades."""
    if not len(batch):
        return []
    first, last = int(batch.ts.min()) // DAY_MS, int(batch.ts.max()) // DAY_MS
    if first == last:  # the common case: no need to look at every trade
        return [first]
    return [int(day) for day in np.unique(batch.ts // DAY_MS)]


async def _touch_days(conn: asyncpg.Connection, days: set[tuple[str, int]]) -> None:
    if not days:
        return
    pairs = sorted(days)
    await conn.execute(
        "SELECT agg_trades_archive_touch($1::text[], $2::date[])",
        [symbol for symbol, _ in pairs],
        [EPOCH_DAY + timedelta(days=day) for _, day in pairs],
    )


async def update_trade_meta(
    conn: asyncpg.Connection, batches: Sequence[TradeBatch], inserted: dict[str, int]
) -> None:
    """Advance first/last id and time and the row count per symbol."""
    span: dict[str, list[int]] = {}
    for batch in batches:
        if not len(batch):
            continue
        lo_id, hi_id = int(batch.agg_id[0]), int(batch.agg_id[-1])
        lo_ts, hi_ts = int(batch.ts.min()), int(batch.ts.max())
        if batch.symbol in span:
            s = span[batch.symbol]
            span[batch.symbol] = [
                min(s[0], lo_id),
                max(s[1], hi_id),
                min(s[2], lo_ts),
                max(s[3], hi_ts),
            ]
        else:
            span[batch.symbol] = [lo_id, hi_id, lo_ts, hi_ts]
    if not span:
        return
    await conn.executemany(
        """
        INSERT INTO agg_trades_meta AS m (symbol, first_id, last_id, first_ts, last_ts, rows)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (symbol) DO UPDATE SET
            first_id = LEAST(m.first_id, EXCLUDED.first_id),
            last_id = GREATEST(m.last_id, EXCLUDED.last_id),
            first_ts = LEAST(m.first_ts, EXCLUDED.first_ts),
            last_ts = GREATEST(m.last_ts, EXCLUDED.last_ts),
            rows = m.rows + EXCLUDED.rows,
            updated_at = now()
        """,
        [(sym, *s, inserted.get(sym, 0)) for sym, s in span.items()],
    )


async def record_gaps(conn: asyncpg.Connection, gaps: Sequence[TapeGap]) -> None:
    if not gaps:
        return
    await conn.executemany(
        "INSERT INTO agg_trades_gaps (symbol, from_id, to_id, outcome) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        [(g.symbol, g.from_id, g.to_id, g.outcome) for g in gaps],
    )
    await refresh_gap_counters(conn, sorted({g.symbol for g in gaps}))


async def refresh_gap_counters(conn: asyncpg.Connection, symbols: Iterable[str]) -> None:
    """Recompute the gap counters of ``agg_trades_meta`` from ``agg_trades_gaps``."""
    await conn.execute(
        """
        INSERT INTO agg_trades_meta AS m (symbol, gaps_seen, gaps_repaired, holes_left, holes)
        SELECT s.symbol,
               count(*) FILTER (WHERE g.outcome = 'seen'),
               count(*) FILTER (WHERE g.outcome = 'repaired'),
               count(*) FILTER (WHERE g.outcome = 'hole'),
               coalesce(jsonb_agg(jsonb_build_array(g.from_id, g.to_id) ORDER BY g.from_id)
                        FILTER (WHERE g.outcome = 'hole'), '[]'::jsonb)
        FROM unnest($1::text[]) AS s(symbol)
        LEFT JOIN agg_trades_gaps g ON g.symbol = s.symbol
        GROUP BY s.symbol
        ON CONFLICT (symbol) DO UPDATE SET
            gaps_seen = EXCLUDED.gaps_seen,
            gaps_repaired = EXCLUDED.gaps_repaired,
            holes_left = EXCLUDED.holes_left,
            holes = EXCLUDED.holes,
            updated_at = now()
        """,
        list(symbols),
    )


async def insert_rate_snapshots(conn: asyncpg.Connection, snaps: Sequence[RateSnapshot]) -> None:
    if not snaps:
        return
    await conn.executemany(
        """
        INSERT INTO rate_snapshots (symbol, ts, mark_price, index_price, estimated_settle_price,
                                    funding_rate, interest_rate, next_funding_time, known_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING
        """,
        [
            (
                s.symbol,
                s.ts,
                s.mark_price,
                s.index_price,
                s.estimated_settle_price,
                s.funding_rate,
                s.interest_rate,
                s.next_funding_time,
                s.visible_at,
            )
            for s in snaps
        ],
    )


async def insert_indicators(conn: asyncpg.Connection, values: Sequence[Indicator]) -> None:
    """First value wins: what the engine saw live is what a backtest will see."""
    if not values:
        return
    await conn.executemany(
        """
        INSERT INTO market_indicators (symbol, kind, ts, known_at, value, data)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING
        """,
        [
            (v.symbol, v.kind, v.ts, v.known_at, v.value, orjson.dumps(v.data).decode())
            for v in values
        ],
    )


async def insert_liquidations(conn: asyncpg.Connection, events: Sequence[Liquidation]) -> None:
    """Store events, then recompute the one-minute aggregates they touch (idempotent)."""
    if not events:
        return
    await conn.executemany(
        """
        INSERT INTO liquidation_events (symbol, ts, event_time, side, order_type, time_in_force,
                                        qty, price, avg_price, status, last_qty, filled_qty)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING
        """,
        [
            (
                e.symbol,
                e.ts,
                e.event_time,
                e.side,
                e.order_type,
                e.time_in_force,
                e.qty,
                e.price,
                e.avg_price,
                e.status,
                e.last_qty,
                e.filled_qty,
            )
            for e in events
        ],
    )
    minutes = sorted({(e.symbol, e.ts - e.ts % 60_000) for e in events})
    await conn.execute(
        """
        INSERT INTO liquidation_agg AS a (symbol, minute, side, count, qty, notional)
        SELECT e.symbol, k.minute, e.side, count(*), sum(e.filled_qty),
               sum(e.filled_qty * e.avg_price)
        FROM unnest($1::text[], $2::bigint[]) AS k(symbol, minute)
        JOIN liquidation_events e
          ON e.symbol = k.symbol AND e.ts >= k.minute AND e.ts < k.minute + 60000
        GROUP BY e.symbol, k.minute, e.side
        ON CONFLICT (symbol, minute, side) DO UPDATE SET
            count = EXCLUDED.count, qty = EXCLUDED.qty, notional = EXCLUDED.notional
        """,
        [m[0] for m in minutes],
        [m[1] for m in minutes],
    )


async def last_stored_trade_ids(
    conn: asyncpg.Connection, symbols: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """(last agg_id, its time) per symbol that has stored trades: where the tape resumes."""
    result: dict[str, tuple[int, int]] = {}
    for symbol in symbols:
        row = await conn.fetchrow(
            "SELECT agg_id, ts FROM agg_trades WHERE symbol = $1 ORDER BY agg_id DESC LIMIT 1",
            symbol,
        )
        if row is not None:
            result[symbol] = (int(row["agg_id"]), int(row["ts"]))
    return result


async def last_indicator_times(
    conn: asyncpg.Connection, symbols: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Latest stored ``ts`` per (symbol, kind): where each indicator backfill resumes."""
    rows = await conn.fetch(
        "SELECT symbol, kind, max(ts) AS ts FROM market_indicators "
        "WHERE symbol = ANY($1::text[]) GROUP BY symbol, kind",
        list(symbols),
    )
    return {(r["symbol"], r["kind"]): int(r["ts"]) for r in rows}
