"""The engine's restart state, read from the store: each read on its own pooled connection.

What the engine service needs of the database at a warm start (``EngineStore``
in ``pipeline/service.py``), bound to a ``Database`` by the composition root.
An outage during a read surfaces as ``DatabaseUnavailable`` (``Database.acquire``),
which the supervisor retries.
"""

from __future__ import annotations

from arbengine.domain.engine_rows import PaperTradeRow
from arbengine.store import engine_sql
from arbengine.store.database import Database


class EngineRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def last_evaluated(self) -> dict[tuple[str, str], int]:
        """The last stored tick of each (strategy, symbol)."""
        async with self._db.acquire() as conn:
            return await engine_sql.last_evaluated_ticks(conn)

    async def last_fired(self) -> dict[tuple[str, str], int]:
        """The tick each (strategy, symbol) last fired at (its cooldown)."""
        async with self._db.acquire() as conn:
            return await engine_sql.last_fired_ticks(conn)

    async def open_paper(self) -> list[PaperTradeRow]:
        async with self._db.acquire() as conn:
            return await engine_sql.open_paper_trades(conn)
