"""Every SQL statement of the API's routes, and nothing else (admin actions on users and
invites are the store's ``admin_sql``, shared with the command line and reached through
``ApiContext.admin``).

Each function takes a pool or a connection and returns asyncpg records (or
plain values); shaping them into responses is the handlers' business. Every
value arrives as a bind parameter; the only text chosen at run time is picked
from fixed alternatives (``_KLINE_SQL``), never built from input.

Reads carry a timeout: a request must not hold a connection for ever, and a
slow query is answered with 503 rather than a hung client.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
import orjson

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
Rows: TypeAlias = list[asyncpg.Record]
TIMEOUT_S = 10.0
USERS_CHANNEL = "arbengine_users"
"""NOTIFY channel of migration 0010: a user's role, ban or name changed (payload: id)."""


async def _fetch(db: Db, query: str, *args: object, timeout: float | None = None) -> Rows:
    """``db.fetch``, typed: asyncpg itself ships no annotations."""
    rows: Rows = await db.fetch(query, *args, timeout=timeout)
    return rows


# -- users ----------------------------------------------------------------------------

_USER_COLUMNS = "id, username, role, banned, created_at, last_login_at"


async def user_by_id(db: Db, user_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id, timeout=TIMEOUT_S
    )


async def user_by_name(db: Db, username: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE username = $1",
        username,
        timeout=TIMEOUT_S,
    )


async def record_login(db: Db, user_id: int, new_hash: str | None) -> asyncpg.Record:
    """Stamp the login (and store an upgraded hash); drop long-expired refresh tokens."""
    await db.execute(
        "DELETE FROM refresh_tokens WHERE user_id = $1 AND expires_at < now() - interval '1 day'",
        user_id,
        timeout=TIMEOUT_S,
    )
    row = await db.fetchrow(
        f"""
        UPDATE users SET last_login_at = now(), password_hash = coalesce($2, password_hash)
        WHERE id = $1 RETURNING {_USER_COLUMNS}
        """,
        user_id,
        new_hash,
        timeout=TIMEOUT_S,
    )
    assert row is not None
    return row


class RegisterOutcome(enum.Enum):
    OK = "ok"
    INVALID_INVITE = "invalid_invite"
    USERNAME_TAKEN = "username_taken"


class _UsernameTaken(Exception):
    pass


async def register(
    pool: asyncpg.Pool, code: str, username: str, password_hash: str
) -> tuple[RegisterOutcome, asyncpg.Record | None]:
    try:
        return await _register(pool, code, username, password_hash)
    except _UsernameTaken:
        return RegisterOutcome.USERNAME_TAKEN, None


async def _register(
    pool: asyncpg.Pool, code: str, username: str, password_hash: str
) -> tuple[RegisterOutcome, asyncpg.Record | None]:
    """Consume the invite and create the user in one transaction.

    The conditional UPDATE claims the code: of two registrations racing for it,
    exactly one sees a row come back. A taken username rolls the claim back, so
    the code stays usable.
    """
    async with pool.acquire(timeout=TIMEOUT_S) as conn, conn.transaction():
        claimed = await conn.fetchval(
            """
            UPDATE invite_codes SET used_at = now()
            WHERE code = $1 AND used_at IS NULL AND revoked_at IS NULL
              AND (expires_at IS NULL OR expires_at > now())
            RETURNING code
            """,
            code,
            timeout=TIMEOUT_S,
        )
        if claimed is None:
            return RegisterOutcome.INVALID_INVITE, None
        user = await conn.fetchrow(
            f"""
            INSERT INTO users (username, password_hash, last_login_at) VALUES ($1, $2, now())
            ON CONFLICT DO NOTHING RETURNING {_USER_COLUMNS}
            """,
            username,
            password_hash,
            timeout=TIMEOUT_S,
        )
        if user is None:
            # Undo the claim: raising inside the transaction block rolls it back.
            raise _UsernameTaken
        await conn.execute(
            "UPDATE invite_codes SET used_by = $2 WHERE code = $1",
            code,
            user["id"],
            timeout=TIMEOUT_S,
        )
        return RegisterOutcome.OK, user


# -- refresh tokens ----------------------------------------------------------------------


async def store_refresh(
    db: Db, user_id: int, family: str, token_hash: str, expires_at: int
) -> None:
    await db.execute(
        """
        INSERT INTO refresh_tokens (user_id, family, token_hash, expires_at)
        VALUES ($1, $2, $3, to_timestamp($4))
        """,
        user_id,
        uuid.UUID(family),
        token_hash,
        expires_at,
        timeout=TIMEOUT_S,
    )


class RotateOutcome(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"
    REUSED = "reused"
    BANNED = "banned"


@dataclass(frozen=True)
class Rotation:
    outcome: RotateOutcome
    user: asyncpg.Record | None = None


async def rotate_refresh(
    pool: asyncpg.Pool,
    old_hash: str,
    family: str,
    new_hash: str,
    new_expires_at: int,
) -> Rotation:
    """Spend a refresh token and record its successor, atomically.

    The row lock makes two concurrent uses of one token take turns: the first
    rotates, the second finds it used and revokes the family. Revocation is
    committed even though the caller answers 401.
    """
    async with pool.acquire(timeout=TIMEOUT_S) as conn, conn.transaction():
        row = await conn.fetchrow(
            """
            SELECT t.id, t.user_id, t.family, t.used_at, t.revoked_at,
                   t.expires_at < now() AS expired, u.banned
            FROM refresh_tokens t JOIN users u ON u.id = t.user_id
            WHERE t.token_hash = $1 FOR UPDATE OF t
            """,
            old_hash,
            timeout=TIMEOUT_S,
        )
        if row is None or str(row["family"]) != family:
            return Rotation(RotateOutcome.UNKNOWN)
        if row["banned"]:
            return Rotation(RotateOutcome.BANNED)
        if row["revoked_at"] is not None:
            return Rotation(RotateOutcome.REVOKED)
        if row["used_at"] is not None:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() "
                "WHERE family = $1 AND revoked_at IS NULL",
                row["family"],
                timeout=TIMEOUT_S,
            )
            return Rotation(RotateOutcome.REUSED)
        if row["expired"]:
            return Rotation(RotateOutcome.EXPIRED)
        await conn.execute(
            "UPDATE refresh_tokens SET used_at = now() WHERE id = $1", row["id"], timeout=TIMEOUT_S
        )
        await conn.execute(
            """
            INSERT INTO refresh_tokens (user_id, family, token_hash, expires_at)
            VALUES ($1, $2, $3, to_timestamp($4))
            """,
            row["user_id"],
            row["family"],
            new_hash,
            new_expires_at,
            timeout=TIMEOUT_S,
        )
        user = await conn.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", row["user_id"], timeout=TIMEOUT_S
        )
        return Rotation(RotateOutcome.OK, user)


async def revoke_family_of(db: Db, token_hash: str) -> bool:
    """Log out: revoke the family of this refresh token. False when the token is unknown."""
    family = await db.fetchval(
        """
        WITH t AS (SELECT family FROM refresh_tokens WHERE token_hash = $1)
        UPDATE refresh_tokens r SET revoked_at = coalesce(r.revoked_at, now())
        FROM t WHERE r.family = t.family RETURNING r.family
        """,
        token_hash,
        timeout=TIMEOUT_S,
    )
    return family is not None


# -- funding ---------------------------------------------------------------------------------

_INTERVAL_LATERAL = """
LEFT JOIN LATERAL (
    SELECT value FROM market_indicators
    WHERE symbol = s.symbol AND kind = 'funding_interval_hours' AND value > 0
    ORDER BY ts DESC LIMIT 1
) i ON true
"""


async def latest_rates(db: Db, symbols: Sequence[str]) -> Rows:
    """The newest premiumIndex sample and funding interval per symbol (index lookups only)."""
    return await _fetch(
        db,
        f"""
        SELECT s.symbol, r.ts, r.mark_price, r.index_price, r.funding_rate,
               r.next_funding_time, i.value AS interval_hours
        FROM unnest($1::text[]) WITH ORDINALITY AS s(symbol, ord)
        LEFT JOIN LATERAL (
            SELECT ts, mark_price, index_price, funding_rate, next_funding_time
            FROM rate_snapshots WHERE symbol = s.symbol ORDER BY ts DESC LIMIT 1
        ) r ON true
        {_INTERVAL_LATERAL}
        ORDER BY s.ord
        """,
        list(symbols),
        timeout=TIMEOUT_S,
    )


async def funding_stats(db: Db, symbols: Sequence[str], start: int, end: int) -> Rows:
    """Settled funding rates (``market_indicators`` kind ``funding_rate``) per symbol."""
    return await _fetch(
        db,
        f"""
        SELECT s.symbol, count(f.value) AS samples, avg(f.value) AS mean, min(f.value) AS min,
               max(f.value) AS max, sum(f.value) AS total, min(f.ts) AS first_ts,
               max(f.ts) AS last_ts, i.value AS interval_hours
        FROM unnest($1::text[]) WITH ORDINALITY AS s(symbol, ord)
        {_INTERVAL_LATERAL}
        LEFT JOIN market_indicators f
          ON f.symbol = s.symbol AND f.kind = 'funding_rate' AND f.ts >= $2 AND f.ts < $3
             AND f.value IS NOT NULL
        GROUP BY s.symbol, s.ord, i.value
        ORDER BY s.ord
        """,
        list(symbols),
        start,
        end,
        timeout=TIMEOUT_S,
    )


async def funding_history(db: Db, symbols: Sequence[str], start: int, end: int) -> Rows:
    return await _fetch(
        db,
        """
        SELECT symbol, ts, value AS funding_rate,
               CASE WHEN jsonb_typeof(data -> 'mark_price') = 'number'
                    THEN (data ->> 'mark_price')::double precision END AS mark_price
        FROM market_indicators
        WHERE symbol = ANY($1::text[]) AND kind = 'funding_rate' AND ts >= $2 AND ts < $3
          AND value IS NOT NULL
        ORDER BY symbol, ts
        """,
        list(symbols),
        start,
        end,
        timeout=TIMEOUT_S,
    )


async def snapshots(db: Db, symbol: str, start: int, end: int, limit: int) -> Rows:
    return await _fetch(
        db,
        """
        SELECT ts, mark_price, index_price, estimated_settle_price, funding_rate,
               interest_rate, next_funding_time
        FROM rate_snapshots WHERE symbol = $1 AND ts >= $2 AND ts < $3
        ORDER BY ts LIMIT $4
        """,
        symbol,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


# Open and close come from min/max of [time, value] arrays: one pass, constant memory,
# where array_agg(… ORDER BY) would hold a whole bucket.
_KLINE_SQL = {
    column: f"""
        SELECT (ts / $2) * $2 AS ts,
               (min(ARRAY[ts::double precision, {column}]))[2] AS open,
               max({column}) AS high, min({column}) AS low,
               (max(ARRAY[ts::double precision, {column}]))[2] AS close,
               count(*) AS samples
        FROM rate_snapshots WHERE symbol = $1 AND ts >= $3 AND ts < $4
        GROUP BY 1 ORDER BY 1
    """
    for column in ("funding_rate", "mark_price")
}


async def rate_bars(db: Db, symbol: str, series: str, bar_ms: int, start: int, end: int) -> Rows:
    return await _fetch(db, _KLINE_SQL[series], symbol, bar_ms, start, end, timeout=TIMEOUT_S)


# -- trades ------------------------------------------------------------------------------------


async def trade_bars(db: Db, symbol: str, bar_ms: int, start: int, end: int) -> Rows:
    return await _fetch(
        db,
        """
        SELECT (ts / $2) * $2 AS ts,
               (min(ARRAY[agg_id::double precision, price]))[2] AS open,
               max(price) AS high, min(price) AS low,
               (max(ARRAY[agg_id::double precision, price]))[2] AS close,
               sum(qty) AS volume, sum(price * qty) AS quote_volume,
               coalesce(sum(qty) FILTER (WHERE NOT is_buyer_maker), 0) AS buy_volume,
               sum(last_trade_id - first_trade_id + 1)::bigint AS trades
        FROM agg_trades WHERE symbol = $1 AND ts >= $3 AND ts < $4
        GROUP BY 1 ORDER BY 1
        """,
        symbol,
        bar_ms,
        start,
        end,
        timeout=TIMEOUT_S,
    )


async def trade_meta(db: Db, symbols: Sequence[str]) -> Rows:
    return await _fetch(
        db,
        """
        SELECT s.symbol, m.first_id, m.last_id, m.first_ts, m.last_ts,
               coalesce(m.rows, 0) AS rows, coalesce(m.gaps_seen, 0) AS gaps_seen,
               coalesce(m.gaps_repaired, 0) AS gaps_repaired,
               coalesce(m.holes_left, 0) AS holes_left,
               coalesce(m.holes, '[]'::jsonb)::text AS holes, m.updated_at
        FROM unnest($1::text[]) WITH ORDINALITY AS s(symbol, ord)
        LEFT JOIN agg_trades_meta m ON m.symbol = s.symbol
        ORDER BY s.ord
        """,
        list(symbols),
        timeout=TIMEOUT_S,
    )


async def daily_completeness(db: Db, symbols: Sequence[str], since: dt.date) -> Rows:
    return await _fetch(
        db,
        """
        SELECT symbol, day, first_id, last_id, rows, completeness FROM agg_trades_daily
        WHERE symbol = ANY($1::text[]) AND day >= $2 ORDER BY symbol, day
        """,
        list(symbols),
        since,
        timeout=TIMEOUT_S,
    )


# -- the database itself: sizes and partitions -------------------------------------------
#
# From the catalogue only: sizes and the planner's row estimates, never a count(*), which on
# a tape of billions of rows would read all of it.


async def database_size(db: Db) -> int:
    return int(await db.fetchval("SELECT pg_database_size(current_database())", timeout=TIMEOUT_S))


async def table_sizes(db: Db) -> Rows:
    """Every table of the current schema; a partitioned one with its partitions' sums."""
    return await _fetch(
        db,
        """
        SELECT c.relname AS name,
               coalesce(sum(pg_total_relation_size(l.oid)), 0)::bigint AS bytes,
               sum(l.reltuples) FILTER (WHERE coalesce(t.isleaf, true) AND l.reltuples >= 0)
                   ::bigint AS rows_estimate,
               count(*) FILTER (WHERE t.level > 0)::int AS partitions
        FROM pg_class c
        -- A table that is not partitioned has no tree: it is its own only member.
        LEFT JOIN LATERAL pg_partition_tree(c.oid) t ON true
        JOIN pg_class l ON l.oid = coalesce(t.relid, c.oid)
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        GROUP BY c.relname
        ORDER BY bytes DESC, name
        """,
        timeout=TIMEOUT_S,
    )


async def partitions(db: Db) -> Rows:
    """Each partition of each partitioned table of the current schema, with its bound as
    PostgreSQL prints it (``FOR VALUES FROM (…) TO (…)``) and its table's key."""
    return await _fetch(
        db,
        """
        SELECT p.relname AS table_name, pg_get_partkeydef(p.oid) AS key, c.relname AS name,
               pg_get_expr(c.relpartbound, c.oid) AS bound,
               pg_total_relation_size(c.oid) AS bytes,
               CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS rows_estimate
        FROM pg_class p
        JOIN pg_inherits i ON i.inhparent = p.oid
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE p.relnamespace = current_schema()::regnamespace AND p.relkind = 'p'
        ORDER BY p.relname, c.relname
        """,
        timeout=TIMEOUT_S,
    )


# -- the tape's continuity: days and gaps -------------------------------------------------


async def trade_days(db: Db, symbol: str, first_day: dt.date, end_day: dt.date) -> Rows:
    """The counted days in ``[first_day, end_day)``, newest first."""
    return await _fetch(
        db,
        """
        SELECT day, first_id, last_id, rows,
               greatest(0, last_id - first_id + 1 - rows) AS missing, completeness, checked_at
        FROM agg_trades_daily WHERE symbol = $1 AND day >= $2 AND day < $3
        ORDER BY day DESC
        """,
        symbol,
        first_day,
        end_day,
        timeout=TIMEOUT_S,
    )


async def trade_gaps(db: Db, symbol: str, start: int, end: int, limit: int) -> Rows:
    """Each gap (its outcomes folded into one), placed in time by its stored neighbours,
    that overlaps ``[start, end)``; newest ids first. A gap seen with no outcome of its own
    whose repair left holes inside it was repaired but for those holes."""
    return await _fetch(
        db,
        """
        WITH gap AS (
            SELECT from_id, to_id, min(recorded_at) AS seen_at,
                   bool_or(outcome = 'repaired') AS repaired, bool_or(outcome = 'hole') AS hole,
                   max(recorded_at) FILTER (WHERE outcome <> 'seen') AS settled_at
            FROM agg_trades_gaps WHERE symbol = $1
            GROUP BY from_id, to_id
        ), placed AS (
            SELECT g.*,
                   (SELECT t.ts FROM agg_trades t WHERE t.symbol = $1 AND t.agg_id < g.from_id
                    ORDER BY t.agg_id DESC LIMIT 1) AS prev_ts,
                   (SELECT t.ts FROM agg_trades t WHERE t.symbol = $1 AND t.agg_id > g.to_id
                    ORDER BY t.agg_id LIMIT 1) AS next_ts,
                   CASE WHEN NOT (g.repaired OR g.hole) THEN
                       (SELECT max(h.recorded_at) FROM agg_trades_gaps h
                        WHERE h.symbol = $1 AND h.outcome = 'hole'
                          AND h.from_id >= g.from_id AND h.to_id <= g.to_id)
                   END AS inner_holes_at
            FROM gap g
        )
        SELECT from_id, to_id, to_id - from_id + 1 AS ids,
               CASE WHEN repaired THEN 'repaired' WHEN hole THEN 'hole'
                    WHEN inner_holes_at IS NOT NULL THEN 'partly_repaired' ELSE 'open'
               END AS outcome,
               prev_ts, next_ts, seen_at, coalesce(settled_at, inner_holes_at) AS settled_at
        FROM placed
        WHERE (next_ts IS NULL OR next_ts >= $2) AND (prev_ts IS NULL OR prev_ts < $3)
        ORDER BY from_id DESC LIMIT $4
        """,
        symbol,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


# -- liquidations ----------------------------------------------------------------------------


async def liquidation_bars(
    db: Db, symbols: Sequence[str], bar_ms: int, start: int, end: int
) -> Rows:
    return await _fetch(
        db,
        """
        SELECT (minute / $2) * $2 AS ts, symbol, side, sum(count)::bigint AS count,
               sum(qty) AS qty, sum(notional) AS notional
        FROM liquidation_agg
        WHERE symbol = ANY($1::text[]) AND minute >= $3 AND minute < $4
        GROUP BY 1, symbol, side ORDER BY 1, symbol, side
        """,
        list(symbols),
        bar_ms,
        start,
        end,
        timeout=TIMEOUT_S,
    )


# -- signals ------------------------------------------------------------------------------------


async def signal_history(
    db: Db,
    strategy: str | None,
    symbol: str | None,
    start: int,
    end: int,
    limit: int,
) -> Rows:
    return await _fetch(
        db,
        """
        SELECT id, strategy, strategy_hash, symbol, tick, direction, score, coverage, price, atr,
               features::text AS features, contributions::text AS contributions, created_at
        FROM signal_logs
        WHERE ($1::text IS NULL OR strategy = $1) AND ($2::text IS NULL OR symbol = $2)
          AND tick >= $3 AND tick < $4
        ORDER BY tick DESC, id DESC LIMIT $5
        """,
        strategy,
        symbol,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


async def latest_evaluations(db: Db, strategy: str | None, symbol: str | None) -> Rows:
    """Newest row per (strategy, symbol) of a table that grows every tick.

    A skip scan over the primary key finds the pairs (one index probe each)
    instead of reading the whole table as DISTINCT ON would.
    """
    return await _fetch(
        db,
        """
        WITH RECURSIVE pairs AS (
            (SELECT strategy, symbol FROM signal_indicators ORDER BY strategy, symbol LIMIT 1)
            UNION ALL
            SELECT n.strategy, n.symbol FROM pairs p, LATERAL (
                SELECT strategy, symbol FROM signal_indicators
                WHERE (strategy, symbol) > (p.strategy, p.symbol)
                ORDER BY strategy, symbol LIMIT 1
            ) n
        )
        SELECT e.strategy, e.strategy_hash, e.symbol, e.tick, e.direction, e.score, e.coverage,
               e.fired, e.reason, e.features::text AS features,
               e.contributions::text AS contributions, e.gates::text AS gates, e.created_at
        FROM pairs p, LATERAL (
            SELECT * FROM signal_indicators
            WHERE strategy = p.strategy AND symbol = p.symbol ORDER BY tick DESC LIMIT 1
        ) e
        WHERE ($1::text IS NULL OR p.strategy = $1) AND ($2::text IS NULL OR p.symbol = $2)
        ORDER BY e.strategy, e.symbol
        """,
        strategy,
        symbol,
        timeout=TIMEOUT_S,
    )


async def evaluations(db: Db, strategy: str, symbol: str, start: int, end: int, limit: int) -> Rows:
    """One strategy's evaluations of one symbol, newest first, without their breakdown
    (a range scan of the primary key)."""
    return await _fetch(
        db,
        """
        SELECT tick, direction, score, coverage, fired, reason FROM signal_indicators
        WHERE strategy = $1 AND symbol = $2 AND tick >= $3 AND tick < $4
        ORDER BY tick DESC LIMIT $5
        """,
        strategy,
        symbol,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


async def evaluation_at(db: Db, strategy: str, symbol: str, at: int | None) -> Rows:
    """The evaluation at tick ``at``, else the latest before it (``None``: the latest)."""
    return await _fetch(
        db,
        """
        SELECT strategy, strategy_hash, symbol, tick, direction, score, coverage, fired, reason,
               features::text AS features, contributions::text AS contributions,
               gates::text AS gates, created_at
        FROM signal_indicators
        WHERE strategy = $1 AND symbol = $2 AND ($3::bigint IS NULL OR tick <= $3)
        ORDER BY tick DESC LIMIT 1
        """,
        strategy,
        symbol,
        at,
        timeout=TIMEOUT_S,
    )


# -- paper trading -------------------------------------------------------------------------------


async def paper_trades(
    db: Db,
    strategy: str | None,
    symbol: str | None,
    status: str | None,
    start: int,
    end: int,
    limit: int,
) -> Rows:
    return await _fetch(
        db,
        """
        SELECT id, strategy, strategy_hash, symbol, direction, entry_tick, entry_price,
               r_distance, stop_loss, take_profit_1, take_profit_2, quantity, risk_usd, status,
               exits::text AS exits, exit_reason, closed_at, result_r, result_usd, fees, funding,
               updated_at
        FROM paper_trades
        WHERE ($1::text IS NULL OR strategy = $1) AND ($2::text IS NULL OR symbol = $2)
          AND ($3::text IS NULL OR status = $3) AND entry_tick >= $4 AND entry_tick < $5
        ORDER BY entry_tick DESC, id DESC LIMIT $6
        """,
        strategy,
        symbol,
        status,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


async def paper_summary(db: Db, strategy: str | None, symbol: str | None) -> Rows:
    return await _fetch(
        db,
        """
        SELECT strategy, count(*) AS trades,
               count(*) FILTER (WHERE status = 'open') AS open,
               count(*) FILTER (WHERE status = 'closed') AS closed,
               count(*) FILTER (WHERE status = 'closed' AND result_r > 0) AS wins,
               count(*) FILTER (WHERE status = 'closed' AND result_r < 0) AS losses,
               coalesce(sum(result_r) FILTER (WHERE status = 'closed'), 0) AS total_r,
               coalesce(sum(result_usd) FILTER (WHERE status = 'closed'), 0) AS total_usd
        FROM paper_trades
        WHERE ($1::text IS NULL OR strategy = $1) AND ($2::text IS NULL OR symbol = $2)
        GROUP BY strategy ORDER BY strategy
        """,
        strategy,
        symbol,
        timeout=TIMEOUT_S,
    )


async def paper_closes(db: Db, strategy: str | None, symbol: str | None) -> Rows:
    """Closed trades in close order: the steps of each strategy's equity curve."""
    return await _fetch(
        db,
        """
        SELECT strategy, id, closed_at, result_r FROM paper_trades
        WHERE status = 'closed' AND closed_at IS NOT NULL AND result_r IS NOT NULL
          AND ($1::text IS NULL OR strategy = $1) AND ($2::text IS NULL OR symbol = $2)
        ORDER BY strategy, closed_at, id
        """,
        strategy,
        symbol,
        timeout=TIMEOUT_S,
    )


# -- live trading ----------------------------------------------------------------------------

_LIVE_TERMINAL = (
    "'FILLED', 'CANCELED', 'EXPIRED', 'EXPIRED_IN_MATCH', 'REJECTED', 'FINISHED', 'NOT_FOUND'"
)
"""Order statuses no longer on the exchange (domain/live_rows.TERMINAL_ORDER_STATUSES, and
the live_orders_open index of migration 0011)."""

_LIVE_TRADE_SELECT = """
    SELECT t.id, t.strategy, t.strategy_hash, t.symbol, t.signal_tick, t.direction, t.status,
           t.quantity, t.entry_price, t.stop_price, t.r_distance, t.risk_usd,
           t.entry_fills::text AS entry_fills, t.exit_fills::text AS exit_fills, t.fees,
           t.funding, t.realised_r, t.realised_usd, t.exit_reason,
           t.plan_differences::text AS plan_differences, t.opened_at, t.closed_at, t.updated_at,
           t.paper_entry_tick, p.entry_price AS paper_entry_price,
           CASE WHEN p.status = 'closed' THEN p.result_r END AS paper_result_r,
           p.status AS paper_status, p.r_distance AS paper_r_distance,
           p.risk_usd AS paper_risk_usd, p.exits::text AS paper_exits, p.fees AS paper_fees,
           p.funding AS paper_funding
    FROM live_trades t
    LEFT JOIN paper_trades p ON p.strategy = t.strategy AND p.symbol = t.symbol
                            AND p.entry_tick = t.paper_entry_tick
"""


async def live_trades(
    db: Db,
    strategy: str | None,
    symbol: str | None,
    status: str | None,
    start: int,
    end: int,
    limit: int,
) -> Rows:
    """Live trades with their paper twin's entry and result, newest signal first."""
    return await _fetch(
        db,
        _LIVE_TRADE_SELECT
        + """
        WHERE ($1::text IS NULL OR t.strategy = $1) AND ($2::text IS NULL OR t.symbol = $2)
          AND ($3::text IS NULL OR t.status = $3) AND t.signal_tick >= $4 AND t.signal_tick < $5
        ORDER BY t.signal_tick DESC, t.id DESC LIMIT $6
        """,
        strategy,
        symbol,
        status,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


async def live_trades_in(
    db: Db, strategy: str | None, symbol: str | None, start: int, end: int
) -> Rows:
    """Every live trade whose signal tick is in [start, end), with its paper twin, for
    the summary's comparison (live trades are few: one per traded signal)."""
    return await _fetch(
        db,
        _LIVE_TRADE_SELECT
        + """
        WHERE ($1::text IS NULL OR t.strategy = $1) AND ($2::text IS NULL OR t.symbol = $2)
          AND t.signal_tick >= $3 AND t.signal_tick < $4
        ORDER BY t.signal_tick, t.id
        """,
        strategy,
        symbol,
        start,
        end,
        timeout=TIMEOUT_S,
    )


async def live_open_trades(db: Db, strategy: str | None, symbol: str | None) -> Rows:
    """Pending and open live trades, oldest signal first."""
    return await _fetch(
        db,
        _LIVE_TRADE_SELECT
        + """
        WHERE t.status IN ('pending', 'open')
          AND ($1::text IS NULL OR t.strategy = $1) AND ($2::text IS NULL OR t.symbol = $2)
        ORDER BY t.signal_tick, t.id
        """,
        strategy,
        symbol,
        timeout=TIMEOUT_S,
    )


_LIVE_ORDER_SELECT = f"""
    SELECT o.id, o.client_order_id, o.exchange_order_id, o.kind, o.role, o.symbol, o.side,
           o.type, o.quantity, o.price, o.trigger_price, o.reduce_only, o.close_position,
           o.status, o.status_time, o.status_history::text AS status_history,
           o.filled_quantity, o.average_price, o.trade_id, t.strategy,
           o.status NOT IN ({_LIVE_TERMINAL}) AS open, o.created_at, o.updated_at
    FROM live_orders o
    LEFT JOIN live_trades t ON t.id = o.trade_id
"""


async def live_open_orders_of(db: Db, trade_ids: Sequence[int]) -> Rows:
    """The orders of these trades still open on the exchange, oldest first."""
    return await _fetch(
        db,
        _LIVE_ORDER_SELECT
        + f"""
        WHERE o.trade_id = ANY($1::bigint[]) AND o.status NOT IN ({_LIVE_TERMINAL})
        ORDER BY o.created_at, o.id
        """,
        list(trade_ids),
        timeout=TIMEOUT_S,
    )


async def live_orders(
    db: Db,
    strategy: str | None,
    symbol: str | None,
    role: str | None,
    state: str | None,
    start: int,
    end: int,
    limit: int,
) -> Rows:
    """Orders first stored in [start, end) ms, newest first; ``state`` open or done."""
    return await _fetch(
        db,
        _LIVE_ORDER_SELECT
        + f"""
        WHERE ($1::text IS NULL OR t.strategy = $1) AND ($2::text IS NULL OR o.symbol = $2)
          AND ($3::text IS NULL OR o.role = $3)
          AND ($4::text IS NULL OR (o.status NOT IN ({_LIVE_TERMINAL})) = ($4 = 'open'))
          AND o.created_at >= to_timestamp($5 / 1000.0) AND o.created_at < to_timestamp($6 / 1000.0)
        ORDER BY o.created_at DESC, o.id DESC LIMIT $7
        """,
        strategy,
        symbol,
        role,
        state,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


async def live_events(
    db: Db,
    strategy: str | None,
    symbol: str | None,
    kind: str | None,
    level: str | None,
    start: int,
    end: int,
    limit: int,
) -> Rows:
    """Executor, reconciler and admin events at [start, end) ms, newest first."""
    return await _fetch(
        db,
        """
        SELECT id, event_id::text AS event_id, at, level, kind, symbol, strategy,
               detail::text AS detail, who
        FROM live_events
        WHERE ($1::text IS NULL OR strategy = $1) AND ($2::text IS NULL OR symbol = $2)
          AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR level = $4)
          AND at >= to_timestamp($5 / 1000.0) AND at < to_timestamp($6 / 1000.0)
        ORDER BY at DESC, id DESC LIMIT $7
        """,
        strategy,
        symbol,
        kind,
        level,
        start,
        end,
        limit,
        timeout=TIMEOUT_S,
    )


async def live_summary(
    db: Db, strategy: str | None, symbol: str | None, start: int, end: int
) -> Rows:
    """Per strategy: counts, results and costs (the comparison with the paper twins is
    made per trade: ``live_trades_in``)."""
    return await _fetch(
        db,
        """
        WITH joined AS (
            SELECT * FROM live_trades
            WHERE ($1::text IS NULL OR strategy = $1) AND ($2::text IS NULL OR symbol = $2)
              AND signal_tick >= $3 AND signal_tick < $4
        )
        SELECT strategy, count(*) AS trades,
               count(*) FILTER (WHERE status IN ('pending', 'open')) AS open,
               count(*) FILTER (WHERE status = 'closed') AS closed,
               count(*) FILTER (WHERE status = 'not_opened') AS not_opened,
               count(*) FILTER (WHERE status = 'closed' AND realised_r > 0) AS wins,
               count(*) FILTER (WHERE status = 'closed' AND realised_r < 0) AS losses,
               coalesce(sum(realised_r) FILTER (WHERE status = 'closed'), 0) AS total_r,
               coalesce(sum(realised_usd) FILTER (WHERE status = 'closed'), 0) AS total_usd,
               coalesce(sum(fees), 0) AS fees,
               coalesce(sum(funding), 0) AS funding
        FROM joined
        GROUP BY strategy ORDER BY strategy
        """,
        strategy,
        symbol,
        start,
        end,
        timeout=TIMEOUT_S,
    )


_LIVE_CONFIG_RAW = "strategies, risk_per_trade_usd, max_positions, paused, changed_by, changed_at"
_LIVE_CONFIG_COLUMNS = (
    "strategies::text AS strategies, risk_per_trade_usd, max_positions, paused, changed_by, "
    "changed_at"
)


async def live_config_history(db: Db, limit: int = 100) -> Rows:
    """Run-time live configuration changes, newest first (the first is in force)."""
    return await _fetch(
        db,
        f"SELECT {_LIVE_CONFIG_COLUMNS} FROM live_config ORDER BY id DESC LIMIT $1",
        limit,
        timeout=TIMEOUT_S,
    )


@dataclass(frozen=True)
class LiveConfigChange:
    strategies: list[str]
    risk_per_trade_usd: float
    max_positions: int
    paused: bool
    changed_by: str


async def change_live_config(pool: asyncpg.Pool, change: LiveConfigChange) -> asyncpg.Record:
    """Store a change and its ``live.config_changed`` event (``before``/``after``) at once.

    Changes are serialised (the table is locked for writing until the commit), so each
    one's ``before`` is exactly the change stored ahead of it, and ids, times and events
    all agree on the order of concurrent changes.
    """
    async with pool.acquire(timeout=TIMEOUT_S) as conn, conn.transaction():
        await conn.execute("LOCK TABLE live_config IN EXCLUSIVE MODE", timeout=TIMEOUT_S)
        change_id = uuid.uuid4()
        row = await conn.fetchrow(
            f"""
            INSERT INTO live_config (change_id, strategies, risk_per_trade_usd, max_positions,
                                     paused, changed_by, changed_at)
            VALUES ($1, $2::jsonb, $3, $4, $5, $6, clock_timestamp())
            RETURNING {_LIVE_CONFIG_COLUMNS}
            """,
            change_id,
            orjson.dumps(change.strategies).decode(),
            change.risk_per_trade_usd,
            change.max_positions,
            change.paused,
            change.changed_by,
            timeout=TIMEOUT_S,
        )
        assert row is not None
        await conn.execute(
            f"""
            INSERT INTO live_events (event_id, at, level, kind, detail, who)
            SELECT $1::uuid, $2, 'info', 'live.config_changed',
                   jsonb_build_object('change_id', $1::uuid::text, 'before', (
                       SELECT to_jsonb(c) FROM (
                           SELECT {_LIVE_CONFIG_RAW} FROM live_config
                           WHERE id < (SELECT id FROM live_config WHERE change_id = $1::uuid)
                           ORDER BY id DESC LIMIT 1) c),
                       'after', (SELECT to_jsonb(c) FROM (
                           SELECT {_LIVE_CONFIG_RAW} FROM live_config
                           WHERE change_id = $1::uuid) c)),
                   $3
            """,
            change_id,
            row["changed_at"],
            f"admin:{change.changed_by}",
            timeout=TIMEOUT_S,
        )
    return row
