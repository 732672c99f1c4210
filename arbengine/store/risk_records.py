"""The risk guard's records, each read or write on its own pooled connection (bound to a
``Database`` by the composition root). PostgreSQL being away surfaces as
``DatabaseUnavailable`` (retryable): the guard keeps its state in memory and writes it
again at its next round."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg

from arbengine.domain.risk_rows import RiskState
from arbengine.store import risk_sql
from arbengine.store.database import OUTAGE_ERRORS, Database, outage_error, write_transaction


class RiskRecords:
    def __init__(self, db: Database, write_timeout_s: float = 10.0) -> None:
        self._db = db
        self._write_timeout_s = write_timeout_s

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with write_transaction(self._db.pool, self._write_timeout_s) as conn:
                yield conn
        except OUTAGE_ERRORS as exc:
            raise outage_error(exc, "risk records") from exc

    async def load_state(self) -> RiskState | None:
        async with self._db.acquire() as conn:
            return await risk_sql.load_state(conn)

    async def save_state(self, state: RiskState) -> None:
        async with self._writing() as conn:
            await risk_sql.save_state(conn, state)

    async def realised_since(self, since_ms: int) -> tuple[float, float]:
        async with self._db.acquire() as conn:
            return await risk_sql.realised_since(conn, since_ms)

    async def holes_since(self, symbols: Sequence[str], since_ms: int) -> dict[str, int]:
        async with self._db.acquire() as conn:
            return await risk_sql.holes_since(conn, symbols, since_ms)
