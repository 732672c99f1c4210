"""SQL for the engine's outputs (evaluations, signals, paper trades) and its restart state.

Idempotent like every write: an evaluation or a signal is stored once per
(strategy, symbol, tick); a paper trade is one row per (strategy, symbol,
entry tick), updated as it fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


async def insert_evaluations(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    await conn.executemany(
        """
        INSERT INTO signal_indicators (strategy, strategy_hash, symbol, tick, direction, score,
                                       coverage, fired, reason, features, contributions, gates)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb)
        ON CONFLICT (strategy, symbol, tick) DO NOTHING
        """,
        [(*r[:9], _json(r[9]), _json(r[10]), _json(r[11])) for r in rows],
    )


async def insert_signals(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    await conn.executemany(
        """
        INSERT INTO signal_logs (strategy, strategy_hash, symbol, tick, direction, score,
                                 coverage, price, atr, features, contributions)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb)
        ON CONFLICT (strategy, symbol, tick) DO NOTHING
        """,
        [(*r[:9], _json(r[9]), _json(r[10])) for r in rows],
    )


_PAPER_COLUMNS = (
    "strategy", "strategy_hash", "symbol", "direction", "entry_tick", "entry_price",
    "r_distance", "stop_loss", "take_profit_1", "take_profit_2", "quantity", "risk_usd",
    "status", "exits", "exit_reason", "closed_at", "last_agg_id", "result_r", "result_usd",
    "fees", "funding",
)  # fmt: skip


async def upsert_paper_trades(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    placeholders = ", ".join(
        f"${i + 1}::jsonb" if c == "exits" else f"${i + 1}" for i, c in enumerate(_PAPER_COLUMNS)
    )
    updates = ", ".join(
        f"{c} = EXCLUDED.{c}"
        for c in _PAPER_COLUMNS
        if c not in ("strategy", "symbol", "entry_tick")
    )
    await conn.executemany(
        f"""
        INSERT INTO paper_trades ({", ".join(_PAPER_COLUMNS)}) VALUES ({placeholders})
        ON CONFLICT (strategy, symbol, entry_tick) DO UPDATE SET {updates}, updated_at = now()
        """,
        [tuple(_json(r[c]) if c == "exits" else r[c] for c in _PAPER_COLUMNS) for r in rows],
    )


async def last_evaluated_ticks(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT strategy, symbol, max(tick) AS tick FROM signal_indicators GROUP BY 1, 2"
    )
    return {(r["strategy"], r["symbol"]): int(r["tick"]) for r in rows}


async def last_fired_ticks(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT strategy, symbol, max(tick) AS tick FROM signal_logs GROUP BY 1, 2"
    )
    return {(r["strategy"], r["symbol"]): int(r["tick"]) for r in rows}


async def open_paper_trades(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {', '.join(_PAPER_COLUMNS)} FROM paper_trades WHERE status = 'open' "
        "ORDER BY entry_tick"
    )
    out = []
    for r in rows:
        record = dict(r)
        record["exits"] = orjson.loads(record["exits"])
        out.append(record)
    return out
