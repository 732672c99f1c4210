"""The continuity check's reads and writes, each on its own pooled connection.

What ``ContinuityCheck`` (``collect/continuity.py``) needs of the database,
bound to a ``Database`` by the composition root; the SQL is in
``store/continuity_sql.py`` and ``store/market_sql.py``. An outage surfaces as
``DatabaseUnavailable`` (``Database.acquire``), which the supervisor retries.
"""

from __future__ import annotations

from arbengine.domain.market import TapeGap, TradeBatch
from arbengine.store import continuity_sql
from arbengine.store.database import Database
from arbengine.store.market_sql import insert_trades, record_gaps, update_trade_meta
from arbengine.store.partitions import ensure_partitions_covering


class ContinuityRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_holes(self, symbol: str, from_id: int) -> list[tuple[int, int]]:
        async with self._db.acquire() as conn:
            return await continuity_sql.find_holes(conn, symbol, from_id)

    async def known_holes(self, symbol: str) -> list[tuple[int, int]]:
        async with self._db.acquire() as conn:
            return await continuity_sql.known_holes(conn, symbol)

    async def first_id_since(self, symbol: str, since_ms: int) -> int | None:
        async with self._db.acquire() as conn:
            return await continuity_sql.first_id_since(conn, symbol, since_ms)

    async def save(self, batches: list[TradeBatch], gaps: list[TapeGap]) -> None:
        """Repaired trades and the gaps' outcomes, in one transaction."""
        async with self._db.acquire() as conn, conn.transaction():
            nonempty = [b for b in batches if len(b)]
            if nonempty:
                await ensure_partitions_covering(
                    conn,
                    min(int(b.ts[0]) for b in nonempty),
                    max(int(b.ts[-1]) for b in nonempty),
                )
            inserted = await insert_trades(conn, nonempty)
            await update_trade_meta(conn, nonempty, inserted)
            await record_gaps(conn, gaps)

    async def refresh_daily(self, symbol: str, from_ms: int, to_ms: int) -> None:
        async with self._db.acquire() as conn:
            await continuity_sql.refresh_daily_completeness(conn, symbol, from_ms, to_ms)

    async def settle_gaps(self, symbol: str) -> list[tuple[int, int]]:
        async with self._db.acquire() as conn, conn.transaction():
            return await continuity_sql.settle_open_gaps(conn, symbol)

    async def recount_rows(self, symbol: str) -> int:
        async with self._db.acquire() as conn:
            return await continuity_sql.recount_trade_rows(conn, symbol)
