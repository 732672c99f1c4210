"""Reading stored market inputs back, in the order the engine consumes them.

Each reader returns the events whose visible time lies in ``[from_ms, to_ms)``:
indicator values by ``known_at``, liquidations by order time (trades and the
premiumIndex readings are read as columns, see ``trade_reader``).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson

from arbengine.domain.market import Indicator, Liquidation


async def read_indicators(
    conn: asyncpg.Connection, symbols: Sequence[str], from_ms: int, to_ms: int
) -> list[Indicator]:
    rows = await conn.fetch(
        "SELECT symbol, kind, ts, known_at, value, data FROM market_indicators "
        "WHERE symbol = ANY($1::text[]) AND known_at >= $2 AND known_at < $3 "
        "ORDER BY known_at, symbol, kind, ts",
        list(symbols),
        from_ms,
        to_ms,
    )
    return [
        Indicator(r["symbol"], r["kind"], int(r["ts"]), int(r["known_at"]), r["value"],
                  orjson.loads(r["data"]))
        for r in rows
    ]  # fmt: skip


async def read_liquidations(
    conn: asyncpg.Connection, symbols: Sequence[str], from_ms: int, to_ms: int
) -> list[Liquidation]:
    rows = await conn.fetch(
        "SELECT * FROM liquidation_events WHERE symbol = ANY($1::text[]) "
        "AND ts >= $2 AND ts < $3 ORDER BY ts, symbol, side",
        list(symbols),
        from_ms,
        to_ms,
    )
    return [
        Liquidation(
            symbol=r["symbol"],
            ts=int(r["ts"]),
            event_time=int(r["event_time"]),
            side=r["side"],
            order_type=r["order_type"],
            time_in_force=r["time_in_force"],
            qty=r["qty"],
            price=r["price"],
            avg_price=r["avg_price"],
            status=r["status"],
            last_qty=r["last_qty"],
            filled_qty=r["filled_qty"],
        )
        for r in rows
    ]
