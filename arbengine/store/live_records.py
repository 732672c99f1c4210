"""Live trading's records, each read or write on its own pooled connection.

What the live executor, the reconciler and the API need of ``live_orders``,
``live_trades``, ``live_events`` and ``live_config`` (SQL in ``store/live_sql.py``),
bound to a ``Database`` by the composition root. PostgreSQL being away surfaces as
``DatabaseUnavailable`` (retryable); a write that gets no answer within the write
timeout too, its connection closed (``write_transaction``), so a frozen server never
holds the executor: every write is idempotent and may simply be made again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from arbengine.domain.live_parity import PaperTwin
from arbengine.domain.live_rows import (
    LiveConfigRow,
    LiveEventRow,
    LiveOrderRow,
    LiveTradeRow,
    TradeClose,
)
from arbengine.store import live_sql
from arbengine.store.database import OUTAGE_ERRORS, Database, outage_error, write_transaction


class LiveRecords:
    def __init__(self, db: Database, write_timeout_s: float = 10.0) -> None:
        self._db = db
        self._write_timeout_s = write_timeout_s

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with write_transaction(self._db.pool, self._write_timeout_s) as conn:
                yield conn
        except OUTAGE_ERRORS as exc:  # WriteTimeout is a TimeoutError
            raise outage_error(exc, "live records") from exc

    # -- orders

    async def upsert_order(self, order: LiveOrderRow, note: str | None = None) -> LiveOrderRow:
        """Store an order or its new status (see ``live_sql.upsert_order``)."""
        async with self._writing() as conn:
            return await live_sql.upsert_order(conn, order, note)

    async def order(self, client_order_id: str) -> LiveOrderRow | None:
        async with self._db.acquire() as conn:
            return await live_sql.order_by_client_id(conn, client_order_id)

    async def open_orders(self, symbol: str | None = None) -> list[LiveOrderRow]:
        async with self._db.acquire() as conn:
            return await live_sql.open_orders(conn, symbol)

    async def orders_of_trade(self, trade_id: int) -> list[LiveOrderRow]:
        async with self._db.acquire() as conn:
            return await live_sql.orders_of_trade(conn, trade_id)

    async def orders_between(
        self, start: datetime, end: datetime, symbol: str | None = None, limit: int | None = None
    ) -> list[LiveOrderRow]:
        async with self._db.acquire() as conn:
            return await live_sql.orders_between(conn, start, end, symbol, limit)

    # -- trades

    async def upsert_trade(self, trade: LiveTradeRow) -> int:
        """Store a trade or its new state; its id."""
        async with self._writing() as conn:
            return await live_sql.upsert_trade(conn, trade)

    async def close_trade(self, trade_id: int, close: TradeClose) -> bool:
        """Close a trade; False when it was closed already (the first close stands)."""
        async with self._writing() as conn:
            return await live_sql.close_trade(conn, trade_id, close)

    async def trade(self, trade_id: int) -> LiveTradeRow | None:
        async with self._db.acquire() as conn:
            return await live_sql.trade_by_id(conn, trade_id)

    async def trade_for_signal(
        self, strategy: str, symbol: str, signal_tick: int
    ) -> LiveTradeRow | None:
        async with self._db.acquire() as conn:
            return await live_sql.trade_by_signal(conn, strategy, symbol, signal_tick)

    async def open_trades(self) -> list[LiveTradeRow]:
        async with self._db.acquire() as conn:
            return await live_sql.open_trades(conn)

    async def trades_between(
        self, start_ms: int, end_ms: int, symbol: str | None = None, limit: int | None = None
    ) -> list[LiveTradeRow]:
        async with self._db.acquire() as conn:
            return await live_sql.trades_between(conn, start_ms, end_ms, symbol, limit)

    async def trades_with_twins(
        self, start_ms: int, end_ms: int
    ) -> list[tuple[LiveTradeRow, PaperTwin | None]]:
        async with self._db.acquire() as conn:
            return await live_sql.trades_with_twins(conn, start_ms, end_ms)

    # -- events

    async def append_event(self, event: LiveEventRow) -> None:
        async with self._writing() as conn:
            await live_sql.append_event(conn, event)

    async def events_between(
        self, start: datetime, end: datetime, symbol: str | None = None, limit: int | None = None
    ) -> list[LiveEventRow]:
        async with self._db.acquire() as conn:
            return await live_sql.events_between(conn, start, end, symbol, limit)

    # -- run-time configuration

    async def current_config(self) -> LiveConfigRow | None:
        async with self._db.acquire() as conn:
            return await live_sql.current_live_config(conn)

    async def set_config(self, config: LiveConfigRow) -> LiveConfigRow:
        async with self._writing() as conn:
            return await live_sql.set_live_config(conn, config)

    async def config_history(self, limit: int = 100) -> list[LiveConfigRow]:
        async with self._db.acquire() as conn:
            return await live_sql.live_config_history(conn, limit)
