"""SQL for live trading's records: orders, trades, events, the run-time configuration.

Idempotent like every write, because a write whose commit went unanswered is written
again: an order is one row per client id, whose status only moves forward in time
(a report older than the stored status, or one that would leave a final status, is
ignored) and whose history grows only when the status changes; a trade is one row per
(strategy, symbol, signal tick) and stays closed once closed, keeping its first close;
an event and a configuration change carry their own uuid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import msgspec

from arbengine.domain.engine_rows import PaperTradeExits
from arbengine.domain.live_parity import PaperTwin
from arbengine.domain.live_rows import (
    FINAL_ORDER_STATUSES,
    TERMINAL_ORDER_STATUSES,
    LiveConfigRow,
    LiveEventRow,
    LiveOrderRow,
    LiveTradeRow,
    TradeClose,
)

Row = TypeVar("Row", bound=msgspec.Struct)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _decode(record: asyncpg.Record, row_type: type[Row], json_columns: tuple[str, ...]) -> Row:
    fields = dict(record)
    for column in json_columns:
        if fields[column] is not None:  # a nullable column (live_trades.signal)
            fields[column] = msgspec.json.decode(fields[column])
    return msgspec.convert(fields, row_type)


def _quoted(statuses: frozenset[str]) -> str:
    return ", ".join(f"'{s}'" for s in sorted(statuses))


# -- orders -----------------------------------------------------------------------------------

_ORDER_COLUMNS = (
    "client_order_id, exchange_order_id, kind, role, symbol, side, type, quantity, price, "
    "trigger_price, reduce_only, close_position, status, status_time, status_history, "
    "filled_quantity, average_price, trade_id, created_at, updated_at"
)
_ORDER_JSON = ("status_history",)

_UPSERT_ORDER = f"""
INSERT INTO live_orders (
    client_order_id, exchange_order_id, kind, role, symbol, side, type, quantity, price,
    trigger_price, reduce_only, close_position, status, status_time, status_history,
    filled_quantity, average_price, trade_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
        jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'status', $13::text, 'time', $14::bigint, 'note', $18::text,
            'written_us', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint))),
        $15, $16, $17)
ON CONFLICT (client_order_id) DO UPDATE SET
    exchange_order_id = COALESCE(EXCLUDED.exchange_order_id, live_orders.exchange_order_id),
    status = EXCLUDED.status,
    status_time = EXCLUDED.status_time,
    status_history = CASE WHEN live_orders.status = EXCLUDED.status
                          THEN live_orders.status_history
                          ELSE live_orders.status_history || EXCLUDED.status_history END,
    filled_quantity = EXCLUDED.filled_quantity,
    average_price = COALESCE(EXCLUDED.average_price, live_orders.average_price),
    trade_id = COALESCE(EXCLUDED.trade_id, live_orders.trade_id),
    updated_at = now()
WHERE EXCLUDED.status_time >= live_orders.status_time
  AND NOT (live_orders.status IN ({_quoted(FINAL_ORDER_STATUSES)})
           AND EXCLUDED.status <> live_orders.status)
RETURNING {_ORDER_COLUMNS}
"""


async def upsert_order(
    conn: asyncpg.Connection, order: LiveOrderRow, note: str | None = None
) -> LiveOrderRow:
    """Store an order (its parameters are kept from the first write) or a new status of it,
    ``note`` saying why in its history entry; return the order as stored, which is the
    earlier state when this report was stale."""
    record = await conn.fetchrow(
        _UPSERT_ORDER,
        order.client_order_id,
        order.exchange_order_id,
        order.kind,
        order.role,
        order.symbol,
        order.side,
        order.type,
        order.quantity,
        order.price,
        order.trigger_price,
        order.reduce_only,
        order.close_position,
        order.status,
        order.status_time,
        order.filled_quantity,
        order.average_price,
        order.trade_id,
        note,
    )
    if record is None:  # stale: the stored status stands
        stored = await order_by_client_id(conn, order.client_order_id)
        assert stored is not None, "a conflicting row exists"
        return stored
    return _decode(record, LiveOrderRow, _ORDER_JSON)


async def order_by_client_id(conn: asyncpg.Connection, client_order_id: str) -> LiveOrderRow | None:
    record = await conn.fetchrow(
        f"SELECT {_ORDER_COLUMNS} FROM live_orders WHERE client_order_id = $1", client_order_id
    )
    return None if record is None else _decode(record, LiveOrderRow, _ORDER_JSON)


async def open_orders(conn: asyncpg.Connection, symbol: str | None = None) -> list[LiveOrderRow]:
    """Orders that may still be on the exchange (status not terminal), oldest first."""
    records = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM live_orders "
        f"WHERE status NOT IN ({_quoted(TERMINAL_ORDER_STATUSES)}) "
        "AND ($1::text IS NULL OR symbol = $1) ORDER BY id",
        symbol,
    )
    return [_decode(r, LiveOrderRow, _ORDER_JSON) for r in records]


async def orders_of_trade(conn: asyncpg.Connection, trade_id: int) -> list[LiveOrderRow]:
    records = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM live_orders WHERE trade_id = $1 ORDER BY id", trade_id
    )
    return [_decode(r, LiveOrderRow, _ORDER_JSON) for r in records]


async def orders_between(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    symbol: str | None = None,
    limit: int | None = None,
) -> list[LiveOrderRow]:
    """Orders first stored in ``[start, end)``, oldest first."""
    records = await conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM live_orders WHERE created_at >= $1 AND created_at < $2 "
        "AND ($3::text IS NULL OR symbol = $3) ORDER BY created_at, id LIMIT $4",
        start,
        end,
        symbol,
        limit,
    )
    return [_decode(r, LiveOrderRow, _ORDER_JSON) for r in records]


# -- trades -----------------------------------------------------------------------------------

_TRADE_FIELDS = (
    "strategy",
    "strategy_hash",
    "symbol",
    "signal_tick",
    "direction",
    "status",
    "quantity",
    "entry_price",
    "stop_price",
    "r_distance",
    "risk_usd",
    "entry_fills",
    "exit_fills",
    "fees",
    "funding",
    "realised_r",
    "realised_usd",
    "exit_reason",
    "plan_differences",
    "paper_entry_tick",
    "opened_at",
    "closed_at",
    "signal",
)
_TRADE_JSON = ("entry_fills", "exit_fills", "plan_differences", "signal")
_TRADE_KEY = ("strategy", "symbol", "signal_tick")
_TRADE_COLUMNS = "id, " + ", ".join(_TRADE_FIELDS)

_UPSERT_TRADE = (
    f"INSERT INTO live_trades ({', '.join(_TRADE_FIELDS)}) VALUES ("
    + ", ".join(
        f"${i}::jsonb" if f in _TRADE_JSON else f"${i}" for i, f in enumerate(_TRADE_FIELDS, 1)
    )
    + f") ON CONFLICT ({', '.join(_TRADE_KEY)}) DO UPDATE SET "
    + ", ".join(
        # The signal is written once, with the trade; a later write without it keeps it.
        "signal = COALESCE(EXCLUDED.signal, live_trades.signal)"
        if f == "signal"
        else f"{f} = EXCLUDED.{f}"
        for f in _TRADE_FIELDS
        if f not in _TRADE_KEY
    )
    + ", updated_at = now() WHERE live_trades.status <> 'closed' RETURNING id"
)


def _trade_values(trade: LiveTradeRow) -> list[Any]:
    values = [getattr(trade, f) for f in _TRADE_FIELDS]
    return [
        _json(v) if f in _TRADE_JSON and v is not None else v
        for f, v in zip(_TRADE_FIELDS, values, strict=True)
    ]


async def upsert_trade(conn: asyncpg.Connection, trade: LiveTradeRow) -> int:
    """Store a trade by (strategy, symbol, signal tick), or its new state unless it is
    already closed; return its id (``trade.id`` is not read)."""
    trade_id = await conn.fetchval(_UPSERT_TRADE, *_trade_values(trade))
    if trade_id is None:  # closed: it stays as it closed
        trade_id = await conn.fetchval(
            "SELECT id FROM live_trades WHERE strategy = $1 AND symbol = $2 AND signal_tick = $3",
            trade.strategy,
            trade.symbol,
            trade.signal_tick,
        )
    return int(trade_id)


async def close_trade(conn: asyncpg.Connection, trade_id: int, close: TradeClose) -> bool:
    """Close a pending or open trade; False (and nothing changed) when it was closed before
    (its first close stands) or is not there."""
    closed = await conn.fetchval(
        "UPDATE live_trades SET status = 'closed', closed_at = $2, exit_reason = $3, "
        "exit_fills = $4::jsonb, fees = $5, funding = $6, realised_r = $7, realised_usd = $8, "
        "updated_at = now() WHERE id = $1 AND status IN ('pending', 'open') RETURNING id",
        trade_id,
        close.closed_at,
        close.exit_reason,
        _json(close.exit_fills),
        close.fees,
        close.funding,
        close.realised_r,
        close.realised_usd,
    )
    return closed is not None


async def trade_by_id(conn: asyncpg.Connection, trade_id: int) -> LiveTradeRow | None:
    record = await conn.fetchrow(
        f"SELECT {_TRADE_COLUMNS} FROM live_trades WHERE id = $1", trade_id
    )
    return None if record is None else _decode(record, LiveTradeRow, _TRADE_JSON)


async def trade_by_signal(
    conn: asyncpg.Connection, strategy: str, symbol: str, signal_tick: int
) -> LiveTradeRow | None:
    record = await conn.fetchrow(
        f"SELECT {_TRADE_COLUMNS} FROM live_trades "
        "WHERE strategy = $1 AND symbol = $2 AND signal_tick = $3",
        strategy,
        symbol,
        signal_tick,
    )
    return None if record is None else _decode(record, LiveTradeRow, _TRADE_JSON)


async def open_trades(conn: asyncpg.Connection) -> list[LiveTradeRow]:
    """Pending and open trades, by signal tick: what the executor resumes and reconciles."""
    records = await conn.fetch(
        f"SELECT {_TRADE_COLUMNS} FROM live_trades WHERE status IN ('pending', 'open') "
        "ORDER BY signal_tick, id"
    )
    return [_decode(r, LiveTradeRow, _TRADE_JSON) for r in records]


async def trades_between(
    conn: asyncpg.Connection,
    start_ms: int,
    end_ms: int,
    symbol: str | None = None,
    limit: int | None = None,
) -> list[LiveTradeRow]:
    """Trades whose signal tick lies in ``[start_ms, end_ms)``, by signal tick."""
    records = await conn.fetch(
        f"SELECT {_TRADE_COLUMNS} FROM live_trades WHERE signal_tick >= $1 AND signal_tick < $2 "
        "AND ($3::text IS NULL OR symbol = $3) ORDER BY signal_tick, id LIMIT $4",
        start_ms,
        end_ms,
        symbol,
        limit,
    )
    return [_decode(r, LiveTradeRow, _TRADE_JSON) for r in records]


async def trades_with_twins(
    conn: asyncpg.Connection, start_ms: int, end_ms: int
) -> list[tuple[LiveTradeRow, PaperTwin | None]]:
    """Trades whose signal tick lies in ``[start_ms, end_ms)``, each with its paper twin
    (``paper_trades`` at its ``paper_entry_tick``; None without one), by signal tick."""
    records = await conn.fetch(
        f"SELECT {', '.join('t.' + c for c in _TRADE_COLUMNS.split(', '))}, "
        "p.status AS p_status, p.entry_price AS p_entry_price, p.r_distance AS p_r_distance, "
        "p.risk_usd AS p_risk_usd, p.exits AS p_exits, p.fees AS p_fees, "
        "p.funding AS p_funding, p.result_r AS p_result_r "
        "FROM live_trades t LEFT JOIN paper_trades p ON p.strategy = t.strategy "
        "AND p.symbol = t.symbol AND p.entry_tick = t.paper_entry_tick "
        "WHERE t.signal_tick >= $1 AND t.signal_tick < $2 ORDER BY t.signal_tick, t.id",
        start_ms,
        end_ms,
    )
    out: list[tuple[LiveTradeRow, PaperTwin | None]] = []
    for record in records:
        fields = dict(record)
        paper = {k[2:]: fields.pop(k) for k in list(fields) if k.startswith("p_")}
        trade = _decode(fields, LiveTradeRow, _TRADE_JSON)
        twin = None
        if paper["status"] is not None:
            exits = msgspec.json.decode(paper["exits"], type=PaperTradeExits)
            twin = PaperTwin(
                entry_price=paper["entry_price"],
                r_distance=paper["r_distance"],
                risk_usd=paper["risk_usd"],
                fills=exits.fills,
                fees=paper["fees"],
                funding=paper["funding"],
                result_r=paper["result_r"],
                closed=paper["status"] == "closed",
            )
        out.append((trade, twin))
    return out


# -- events -----------------------------------------------------------------------------------

_EVENT_COLUMNS = "event_id, at, level, kind, symbol, strategy, detail, who"


async def append_event(conn: asyncpg.Connection, event: LiveEventRow) -> None:
    await conn.execute(
        f"INSERT INTO live_events ({_EVENT_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) ON CONFLICT (event_id) DO NOTHING",
        event.event_id,
        event.at,
        event.level,
        event.kind,
        event.symbol,
        event.strategy,
        _json(event.detail),
        event.who,
    )


async def events_between(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    symbol: str | None = None,
    limit: int | None = None,
) -> list[LiveEventRow]:
    """Events at ``[start, end)``, oldest first."""
    records = await conn.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM live_events WHERE at >= $1 AND at < $2 "
        "AND ($3::text IS NULL OR symbol = $3) ORDER BY at, id LIMIT $4",
        start,
        end,
        symbol,
        limit,
    )
    return [_decode(r, LiveEventRow, ("detail",)) for r in records]


# -- run-time configuration -------------------------------------------------------------------

_CONFIG_COLUMNS = (
    "change_id, strategies, risk_per_trade_usd, max_positions, paused, changed_by, changed_at"
)


async def set_live_config(conn: asyncpg.Connection, config: LiveConfigRow) -> LiveConfigRow:
    """Store a change (``changed_at`` now, unless given); return it as stored."""
    await conn.execute(
        "INSERT INTO live_config (change_id, strategies, risk_per_trade_usd, max_positions, "
        "paused, changed_by, changed_at) VALUES ($1, $2::jsonb, $3, $4, $5, $6, "
        "COALESCE($7, now())) ON CONFLICT (change_id) DO NOTHING",
        config.change_id,
        _json(config.strategies),
        config.risk_per_trade_usd,
        config.max_positions,
        config.paused,
        config.changed_by,
        config.changed_at,
    )
    record = await conn.fetchrow(
        f"SELECT {_CONFIG_COLUMNS} FROM live_config WHERE change_id = $1", config.change_id
    )
    return _decode(record, LiveConfigRow, ("strategies",))


async def current_live_config(conn: asyncpg.Connection) -> LiveConfigRow | None:
    """The change in force; None when none was made (the settings file's values apply)."""
    record = await conn.fetchrow(
        f"SELECT {_CONFIG_COLUMNS} FROM live_config ORDER BY id DESC LIMIT 1"
    )
    return None if record is None else _decode(record, LiveConfigRow, ("strategies",))


async def live_config_history(conn: asyncpg.Connection, limit: int = 100) -> list[LiveConfigRow]:
    """The latest ``limit`` changes, newest first."""
    records = await conn.fetch(
        f"SELECT {_CONFIG_COLUMNS} FROM live_config ORDER BY id DESC LIMIT $1", limit
    )
    return [_decode(r, LiveConfigRow, ("strategies",)) for r in records]
