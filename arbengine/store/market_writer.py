"""The market writer: the one consumer that turns market events into rows.

Batches events from the market channel and writes them in one transaction
per flush: when ``batch_rows`` trades are waiting, when the oldest waiting
event is ``flush_interval`` old, or as soon as the channel runs dry (so a
quiet market is written within milliseconds, a busy one in large COPYs).

Database outage: the flush is retried as ``policy.retry`` says (waiting on the
writer's clock, jittered by its rng) while events keep
being buffered, up to ``max_buffer_rows``; past that the writer stops taking
from the channel, so the channel fills and producers wait (backpressure),
which is logged (``writer.backpressure``) and visible in metrics. Nothing is
dropped. A frozen database is an outage too: a flush not done within
``write_timeout`` is abandoned (its connection closed) and retried the same way.
``health()`` tells how it is going.

At shutdown the channel is closed and everything left is flushed. If the
database is still away when the shutdown deadline cancels the writer, what it
holds is counted in one error line (``writer.rows_not_written``) and
``unwritten`` is set, so the process exits non-zero. The trades come back:
the next start resumes the tape over REST from the last *stored* id.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from arbengine.domain.market import (
    Indicator,
    Liquidation,
    MarketEvent,
    RateSnapshot,
    TapeGap,
    TradeBatch,
)
from arbengine.logs import get_logger
from arbengine.runtime.backoff import DATABASE_RETRY, RetryPolicy
from arbengine.runtime.channels import Channel, ChannelClosed
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.store.database import WriteTimeout, write_transaction
from arbengine.store.market_sql import (
    insert_indicators,
    insert_liquidations,
    insert_rate_snapshots,
    insert_trades,
    record_gaps,
    update_trade_meta,
)
from arbengine.store.partitions import ensure_partitions_covering, month_of_ms

ROWS_WRITTEN = Counter("arb_writer_trades_written", "Trades committed to agg_trades")
FLUSHES = Counter("arb_writer_flushes", "Committed flushes")
FLUSH_FAILURES = Counter(
    "arb_writer_flush_failures",
    "Flushes that failed and will be retried (reason: timeout or unavailable)",
    ["reason"],
)
BUFFERED = Gauge("arb_writer_buffered_rows", "Trades waiting to be written")
BACKPRESSURE = Gauge("arb_writer_backpressure", "1 while the writer refuses new events")
COMMIT_LATENCY = Histogram(
    "arb_writer_trade_commit_latency_seconds",
    "Trade time to commit, for the newest trade of each flush",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)

DB_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.InternalClientError,
    TimeoutError,
)


def failure_reason(exc: BaseException) -> str:
    """``timeout`` (the database did not answer in time) or ``unavailable``."""
    return "timeout" if isinstance(exc, WriteTimeout) else "unavailable"


@dataclass(frozen=True)
class WriterHealth:
    """A writer's state for the health report; times are epoch seconds."""

    unavailable_since: float | None
    """First failed write of the current outage (None: the last write succeeded)."""
    last_error: str | None
    """The latest failure of the current outage."""
    writing_since: float | None
    """When the write in progress began: a write that has run long is a stall."""
    buffered_rows: int
    """Rows held, waiting to be written."""
    backpressure: bool
    """The writer refuses new events (its buffer is full), so producers wait."""

    def trouble(self, now_s: float, stall_after_s: float) -> tuple[str, float] | None:
        """What is wrong for a health report, and since when; None while it writes fine."""
        held = f"{self.buffered_rows} rows held"
        if self.unavailable_since is not None:
            pressure = ", producers wait (backpressure)" if self.backpressure else ""
            return (f"database writes failing: {self.last_error}; {held}{pressure}",
                    self.unavailable_since)  # fmt: skip
        if self.writing_since is not None and now_s - self.writing_since >= stall_after_s:
            waited = round(now_s - self.writing_since, 1)
            return f"a write has not finished for {waited} s; {held}", self.writing_since
        return None


@dataclass(frozen=True)
class WriterPolicy:
    batch_rows: int = 20_000
    flush_interval_s: float = 0.25
    max_buffer_rows: int = 1_000_000
    retry: RetryPolicy = DATABASE_RETRY
    write_timeout_s: float = 10.0


@dataclass
class _Pending:
    trades: list[TradeBatch] = field(default_factory=list)
    rates: list[RateSnapshot] = field(default_factory=list)
    indicators: list[Indicator] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)
    gaps: list[TapeGap] = field(default_factory=list)
    trade_rows: int = 0
    events: int = 0
    oldest: float = 0.0
    monotonic: Callable[[], float] = time.monotonic
    """The writer's clock: when the oldest event arrived decides when it is flushed."""

    def add(self, event: MarketEvent) -> None:
        if not self.events:
            self.oldest = self.monotonic()
        self.events += 1
        if isinstance(event, TradeBatch):
            self.trades.append(event)
            self.trade_rows += len(event)
        elif isinstance(event, RateSnapshot):
            self.rates.append(event)
        elif isinstance(event, Indicator):
            self.indicators.append(event)
        elif isinstance(event, Liquidation):
            self.liquidations.append(event)
        elif isinstance(event, TapeGap):
            self.gaps.append(event)
        # MarkPrice updates are live-only (the engine uses stored premiumIndex snapshots).

    def rows(self) -> int:
        return (
            self.trade_rows
            + len(self.rates)
            + len(self.indicators)
            + len(self.liquidations)
            + len(self.gaps)
        )


class MarketWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: Channel[MarketEvent],
        policy: WriterPolicy | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_committed: Callable[[list[TradeBatch]], Awaitable[None] | None] | None = None,
    ) -> None:
        """``clock`` times flushes and retries (and stamps commits: the exchange's clock
        gives the commit latency); ``rng`` jitters the retries."""
        self._pool = pool
        self._channel = channel
        self.policy = policy or WriterPolicy()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._pending = self._new_pending()
        self._months: set[tuple[int, int]] = set()
        self._on_committed = on_committed
        self._log = get_logger("writer")
        self.trades_written = 0
        self.latencies_ms: list[float] = []
        self.record_latency = False
        self.backpressured = False
        self.unavailable_since: float | None = None
        self.last_error: str | None = None
        self.writing_since: float | None = None
        self.unwritten: dict[str, int] = {}
        """Set when the writer was stopped holding rows it could not write."""
        self._changed = asyncio.Event()

    def _new_pending(self) -> _Pending:
        return _Pending(monotonic=self._clock.monotonic)

    def health(self) -> WriterHealth:
        return WriterHealth(
            unavailable_since=self.unavailable_since,
            last_error=self.last_error,
            writing_since=self.writing_since,
            buffered_rows=self._pending.rows(),
            backpressure=self.backpressured,
        )

    def _notify(self) -> None:
        """Wake everyone waiting in ``wait_until`` (after a flush or a backpressure change)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, re-checking after every change of state."""
        while not predicate():
            await self._changed.wait()

    async def run(self) -> None:
        """Consume until the channel is closed and empty, then flush and return."""
        try:
            await self._run()
        except asyncio.CancelledError:
            self._report_unwritten()
            raise

    def _report_unwritten(self) -> None:
        """Cancelled (the shutdown deadline): count what is held and still queued."""
        self._take_queued(float("inf"))
        pending = self._pending
        if not pending.events:
            return
        self.unwritten = {
            "trades": pending.trade_rows,
            "rate_snapshots": len(pending.rates),
            "indicators": len(pending.indicators),
            "liquidations": len(pending.liquidations),
            "gaps": len(pending.gaps),
        }
        self._log.error(
            "writer.rows_not_written",
            **self.unwritten,
            error=self.last_error,
            recovery=(
                "trades are fetched again over REST at the next start, from the last stored "
                "id (collect.max_backfill back at most); funding, open-interest and ratio "
                "history is fetched again; snapshots, point values and liquidations are lost"
            ),
        )

    async def _run(self) -> None:
        failures = 0
        closed = False
        while True:
            if not closed:
                if failures:
                    # The database is down: keep taking what is queued, up to the bound.
                    closed = self._take_queued(self.policy.max_buffer_rows)
                    if self._pending.trade_rows >= self.policy.max_buffer_rows:
                        self._set_backpressure(True)
                else:
                    closed = await self._collect()
            if not self._pending.events:
                if closed:
                    return
                continue
            started = self.writing_since = self._clock.time_ms() / 1000
            failed: BaseException | None = None
            try:
                await self._flush()
            except DB_DOWN_ERRORS as exc:
                failed = exc
            finally:
                self.writing_since = None
            if failed is not None:
                failures += 1
                reason = failure_reason(failed)
                FLUSH_FAILURES.labels(reason).inc()
                self.last_error = f"{type(failed).__name__}: {failed}"[:200]
                if self.unavailable_since is None:
                    self.unavailable_since = started
                delay = self.policy.retry.delay(failures, self._rng)
                self._log.warning(
                    "writer.db_unavailable",
                    reason=reason,
                    error=self.last_error,
                    buffered_rows=self._pending.trade_rows,
                    retry_in_s=round(delay, 3),
                    attempt=failures,
                )
                self._notify()
                await self._clock.sleep(delay)
                continue
            if failures:
                self._log.info("writer.db_recovered", attempts=failures)
                failures = 0
                self.unavailable_since = self.last_error = None
            self._set_backpressure(False)

    def _set_backpressure(self, on: bool) -> None:
        if on == self.backpressured:
            return
        self.backpressured = on
        BACKPRESSURE.set(1 if on else 0)
        self._notify()
        if on:
            self._log.warning(
                "writer.backpressure",
                buffered_rows=self._pending.trade_rows,
                limit=self.policy.max_buffer_rows,
            )
        else:
            self._log.info("writer.backpressure_released")

    def _take_queued(self, limit_rows: float, deadline: float = float("inf")) -> bool:
        """Take queued events without waiting, up to ``limit_rows`` trades buffered (or the
        deadline); True once the channel is closed and empty."""
        pending = self._pending
        monotonic = self._clock.monotonic
        while pending.trade_rows < limit_rows and monotonic() < deadline:
            items = self._channel.get_nowait_many(1024)
            if not items:
                break
            for item in items:
                pending.add(item)
        BUFFERED.set(pending.trade_rows)
        return self._channel.closed and not len(self._channel)

    async def _collect(self) -> bool:
        """Gather events until a flush is due; True once the channel is closed and empty."""
        pending = self._pending
        try:
            if not pending.events:
                pending.add(await self._channel.get())
        except ChannelClosed:
            return True
        return self._take_queued(
            self.policy.batch_rows, deadline=pending.oldest + self.policy.flush_interval_s
        )

    async def _flush(self) -> None:
        pending = self._pending
        async with write_transaction(
            self._pool, self.policy.write_timeout_s, pending.rows()
        ) as conn:
            await self._ensure_partitions(conn, pending.trades)
            inserted = await insert_trades(conn, pending.trades)
            await update_trade_meta(conn, pending.trades, inserted)
            await insert_rate_snapshots(conn, pending.rates)
            await insert_indicators(conn, pending.indicators)
            await insert_liquidations(conn, pending.liquidations)
            await record_gaps(conn, pending.gaps)
        written = sum(inserted.values())
        self.trades_written += written
        ROWS_WRITTEN.inc(written)
        FLUSHES.inc()
        if pending.trades:
            now_ms = self._clock.time_ms()
            newest = max(int(b.ts[-1]) for b in pending.trades if len(b))
            COMMIT_LATENCY.observe(max(0.0, (now_ms - newest) / 1000))
            if self.record_latency:
                for b in pending.trades:
                    self.latencies_ms.extend((now_ms - b.ts).tolist())
        committed = pending.trades
        self._pending = self._new_pending()
        BUFFERED.set(0)
        self._notify()
        if self._on_committed is not None and committed:
            result = self._on_committed(committed)
            if result is not None:
                await result

    async def _ensure_partitions(self, conn: asyncpg.Connection, batches: list[TradeBatch]) -> None:
        months = {month_of_ms(int(t)) for b in batches for t in (b.ts[0], b.ts[-1]) if len(b)}
        missing = months - self._months
        if not missing:
            return
        lo = min(int(b.ts.min()) for b in batches if len(b))
        hi = max(int(b.ts.max()) for b in batches if len(b))
        await ensure_partitions_covering(conn, lo, hi)
        self._months |= missing
