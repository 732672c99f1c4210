"""The signal writer: stores what the engine produced, retrying through database outages.

Engine output is small (a row per strategy, symbol and tick) but must not be
lost: it is buffered in the engine's output channel while the database is
away, and written in one transaction per batch when it is back.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Protocol

import asyncpg
import structlog

from arbengine.runtime.channels import Channel, ChannelClosed
from arbengine.store.signal_writes import insert_evaluations, insert_signals, upsert_paper_trades
from arbengine.store.writer import DB_DOWN_ERRORS


class EngineRows(Protocol):
    evaluations: list[tuple[Any, ...]]
    signals: list[tuple[Any, ...]]
    paper: list[dict[str, Any]]


class SignalWriter:
    def __init__(self, pool: asyncpg.Pool, channel: Channel[Any]) -> None:
        self._pool = pool
        self._channel = channel
        self._log = structlog.get_logger("signal-writer").bind(component="signal-writer")
        self.batches_written = 0
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Any) -> None:
        while not predicate():
            await self._changed.wait()

    async def run(self) -> None:
        while True:
            try:
                items: list[EngineRows] = await self._channel.get_many(256)
            except ChannelClosed:
                return
            attempt = 0
            while True:
                try:
                    await self._write(items)
                    break
                except DB_DOWN_ERRORS as exc:
                    attempt += 1
                    delay = min(5.0, 0.2 * 2 ** min(attempt, 5)) * (0.5 + random.random() / 2)
                    self._log.warning(
                        "signal_writer.db_unavailable",
                        error=f"{type(exc).__name__}: {exc}"[:200],
                        retry_in_s=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
            self.batches_written += len(items)
            self._changed.set()
            self._changed = asyncio.Event()

    async def _write(self, items: list[EngineRows]) -> None:
        evaluations = [row for item in items for row in item.evaluations]
        signals = [row for item in items for row in item.signals]
        paper: dict[tuple[str, str, int], dict[str, Any]] = {}
        for item in items:
            for row in item.paper:  # the latest state of each trade wins
                paper[(row["strategy"], row["symbol"], row["entry_tick"])] = row
        async with self._pool.acquire(timeout=5.0) as conn, conn.transaction():
            await insert_evaluations(conn, evaluations)
            await insert_signals(conn, signals)
            await upsert_paper_trades(conn, list(paper.values()))
