"""SQL behind the risk guard: its state row, the day's realised result, the tape's holes."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from arbengine.domain.risk_rows import RiskState

_STATE_COLUMNS = (
    "state, rule, reason, rule_values, since_ms, resume_after_ms, breaks_day_ms, "
    "breaks_today, refusals"
)


async def load_state(conn: asyncpg.Connection) -> RiskState | None:
    record = await conn.fetchrow(f"SELECT {_STATE_COLUMNS} FROM risk_state WHERE id = 1")
    if record is None:
        return None
    fields = dict(record)
    fields["values"] = msgspec.json.decode(fields.pop("rule_values"))
    fields["refusals"] = msgspec.json.decode(fields["refusals"])
    return msgspec.convert(fields, RiskState)


async def save_state(conn: asyncpg.Connection, state: RiskState) -> None:
    await conn.execute(
        f"INSERT INTO risk_state (id, {_STATE_COLUMNS}) "
        "VALUES (1, $1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9::jsonb) "
        "ON CONFLICT (id) DO UPDATE SET state = $1, rule = $2, reason = $3, "
        "rule_values = $4::jsonb, since_ms = $5, resume_after_ms = $6, breaks_day_ms = $7, "
        "breaks_today = $8, refusals = $9::jsonb, updated_at = now()",
        state.state,
        state.rule,
        state.reason,
        msgspec.json.encode(state.values).decode(),
        state.since_ms,
        state.resume_after_ms,
        state.breaks_day_ms,
        state.breaks_today,
        msgspec.json.encode(state.refusals).decode(),
    )


async def realised_since(conn: asyncpg.Connection, since_ms: int) -> tuple[float, float]:
    """Sum of realised R and USD (fees and funding counted) of the live trades closed at
    or after ``since_ms``."""
    record = await conn.fetchrow(
        "SELECT coalesce(sum(realised_r), 0) AS r, coalesce(sum(realised_usd), 0) AS usd "
        "FROM live_trades WHERE status = 'closed' AND closed_at >= $1",
        since_ms,
    )
    assert record is not None
    return float(record["r"]), float(record["usd"])


async def holes_since(
    conn: asyncpg.Connection, symbols: Sequence[str], since_ms: int
) -> dict[str, int]:
    """Symbol → unrepaired holes (``agg_trades_gaps`` outcome ``hole``) whose ids reach
    into the trades stored since ``since_ms`` (a hole at the tape's end counts too)."""
    records = await conn.fetch(
        """
        SELECT g.symbol, count(*) AS holes
        FROM agg_trades_gaps g
        WHERE g.outcome = 'hole' AND g.symbol = ANY($1::text[])
          AND g.to_id >= coalesce(
                (SELECT min(t.agg_id) FROM agg_trades t WHERE t.symbol = g.symbol AND t.ts >= $2),
                (SELECT max(t.agg_id) + 1 FROM agg_trades t WHERE t.symbol = g.symbol),
                0)
        GROUP BY g.symbol
        """,
        list(symbols),
        since_ms,
    )
    return {r["symbol"]: int(r["holes"]) for r in records}
