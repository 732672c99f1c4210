"""The signal writer: stores what the engine produced, retrying through database outages.

Engine output is small (a row per strategy, symbol and tick) but must not be
lost: it is buffered in the engine's output channel while the database is
away (or frozen: a write not done within ``write_timeout`` is abandoned and
retried), and written in one transaction per batch when it is back.

If the shutdown deadline cancels the writer while the database is still away,
what it could not write is counted in one error line
(``signal_writer.rows_not_written``) and ``unwritten`` is set, so the process
exits non-zero. The rows come back: each batch is one transaction, so what is
stored is everything up to some tick, and at the next start the engine
evaluates every tick after the last stored one again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import asyncpg
from prometheus_client import Counter

from arbengine.domain.engine_rows import EngineOutput, PaperTradeRow
from arbengine.logs import get_logger
from arbengine.runtime.backoff import DATABASE_RETRY, RetryPolicy
from arbengine.runtime.channels import Channel, ChannelClosed
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.store.database import write_transaction
from arbengine.store.engine_sql import insert_evaluations, insert_signals, upsert_paper_trades
from arbengine.store.market_writer import DB_DOWN_ERRORS, WriterHealth, failure_reason

WRITE_FAILURES = Counter(
    "arb_signal_writer_write_failures",
    "Engine output writes that failed and will be retried (reason: timeout or unavailable)",
    ["reason"],
)


def _rows(items: list[EngineOutput]) -> dict[str, int]:
    return {
        "evaluations": sum(len(item.evaluations) for item in items),
        "signals": sum(len(item.signals) for item in items),
        "paper_updates": sum(len(item.paper) for item in items),
    }


class EngineWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: Channel[EngineOutput],
        *,
        write_timeout_s: float = 10.0,
        retry: RetryPolicy = DATABASE_RETRY,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``clock`` times the retries (as ``retry`` says) and ``rng`` jitters them."""
        self._pool = pool
        self.retry = retry
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._channel = channel
        self.write_timeout_s = write_timeout_s
        self._log = get_logger("signal-writer")
        self.batches_written = 0
        self._changed = asyncio.Event()
        self._held: list[EngineOutput] = []
        self.unavailable_since: float | None = None
        self.last_error: str | None = None
        self.writing_since: float | None = None
        self.unwritten: dict[str, int] = {}
        """Set when the writer was stopped holding rows it could not write."""

    def health(self) -> WriterHealth:
        return WriterHealth(
            unavailable_since=self.unavailable_since,
            last_error=self.last_error,
            writing_since=self.writing_since,
            buffered_rows=sum(_rows(self._held).values()),
            backpressure=False,  # it holds one batch; the engine's channel fills behind it
        )

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            self._report_unwritten()
            raise

    def _report_unwritten(self) -> None:
        """Cancelled (the shutdown deadline): count the batch held and what is still queued."""
        while queued := self._channel.get_nowait_many(1024):
            self._held.extend(queued)
        if not self._held:
            return
        self.unwritten = _rows(self._held)
        self._log.error(
            "signal_writer.rows_not_written",
            **self.unwritten,
            error=self.last_error,
            recovery=(
                "the engine evaluates every tick after the last stored one again at the next "
                "start (engine.max_catch_up back at most), paper trades as of that tick"
            ),
        )

    async def _run(self) -> None:
        while True:
            try:
                self._held = await self._channel.get_many(256)
            except ChannelClosed:
                return
            attempt = 0
            while True:
                started = self.writing_since = self._clock.time_ms() / 1000
                failed: BaseException | None = None
                try:
                    await self._write(self._held)
                except DB_DOWN_ERRORS as exc:
                    failed = exc
                finally:
                    self.writing_since = None
                if failed is None:
                    break
                attempt += 1
                reason = failure_reason(failed)
                WRITE_FAILURES.labels(reason).inc()
                self.last_error = f"{type(failed).__name__}: {failed}"[:200]
                if self.unavailable_since is None:
                    self.unavailable_since = started
                delay = self.retry.delay(attempt, self._rng)
                self._log.warning(
                    "signal_writer.db_unavailable",
                    reason=reason,
                    error=self.last_error,
                    retry_in_s=round(delay, 3),
                )
                self._notify()
                await self._clock.sleep(delay)
            self.unavailable_since = self.last_error = None
            self.batches_written += len(self._held)
            self._held = []
            self._notify()

    async def _write(self, items: list[EngineOutput]) -> None:
        evaluations = [row for item in items for row in item.evaluations]
        signals = [row for item in items for row in item.signals]
        paper: dict[tuple[str, str, int], PaperTradeRow] = {}
        for item in items:
            for row in item.paper:  # the latest state of each trade wins
                paper[(row.strategy, row.symbol, row.entry_tick)] = row
        rows = len(evaluations) + len(signals) + len(paper)
        async with write_transaction(self._pool, self.write_timeout_s, rows) as conn:
            await insert_evaluations(conn, evaluations)
            await insert_signals(conn, signals)
            await upsert_paper_trades(conn, list(paper.values()))
