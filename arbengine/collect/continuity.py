"""The continuity check: the stored tape, not just the live one, must be complete.

Every ``interval`` it looks for id ranges missing between stored trades (a
crash between two writes cannot cause one, but an import, a manual delete
or a hole accepted at start-up can), fetches them over REST, stores them,
and records the outcome; then it refreshes the per-day completeness ratio.
It also keeps the bookkeeping true to the table: gaps seen but never given
an outcome (the daemon stopped mid-repair) are settled once their ids are
all stored, and finding rows missing makes it recount ``agg_trades_meta.rows``
(rows deleted behind the counter's back would otherwise be counted twice once
repaired). It needs the store only through the functions it is given, so the
collectors stay independent of the storage package. It checks only the
symbols the exchange lists; ``-1121`` stops a symbol, not the check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from arbengine.collect.listing import SymbolListing
from arbengine.collect.rest_trades import AGG_TRADES_LIMIT, fetch_agg_trades, rows_to_batch
from arbengine.domain.market import TapeGap, TradeBatch
from arbengine.exchange.budget import Priority
from arbengine.exchange.exchange_errors import InvalidSymbol
from arbengine.exchange.rest import BinanceRest
from arbengine.logs import get_logger
from arbengine.runtime.clock import Clock, SystemClock

DAY_MS = 86_400_000


@dataclass(frozen=True)
class ContinuityStore:
    find_holes: Callable[[str, int], Awaitable[list[tuple[int, int]]]]
    known_holes: Callable[[str], Awaitable[list[tuple[int, int]]]]
    first_id_since: Callable[[str, int], Awaitable[int | None]]
    save: Callable[[list[TradeBatch], list[TapeGap]], Awaitable[None]]
    refresh_daily: Callable[[str, int, int], Awaitable[None]]
    settle_gaps: Callable[[str], Awaitable[list[tuple[int, int]]]]
    """Record ``repaired`` for open gaps whose ids are all stored; return them."""
    recount_rows: Callable[[str], Awaitable[int]]
    """Make the meta row count equal the table's; return the correction."""


class ContinuityCheck:
    def __init__(
        self,
        symbols: Sequence[str],
        rest: BinanceRest,
        store: ContinuityStore,
        *,
        interval_s: float = 600.0,
        lookback_ms: int = 7 * DAY_MS,
        clock: Clock | None = None,
        listing: SymbolListing | None = None,
    ) -> None:
        self.symbols = list(symbols)
        self._listing = listing
        self._rest = rest
        self._store = store
        self.interval_s = interval_s
        self.lookback_ms = lookback_ms
        self._clock = clock or SystemClock()
        self._checked_from: dict[str, int] = {}
        self._log = get_logger("continuity")
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        listing = self._listing
        if listing is not None and not await listing.wait_checked(self._stop):
            return
        while not self._stop.is_set():
            for symbol in self.symbols:
                if listing is not None and not listing.is_active(symbol):
                    continue
                try:
                    await self.check(symbol)
                except InvalidSymbol as exc:
                    if listing is None:
                        raise
                    listing.stop(symbol, f"the exchange answered {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    async def check(self, symbol: str) -> list[TapeGap]:
        """One pass for one symbol; returns the outcomes it recorded."""
        now = self._clock.time_ms()
        since = self._checked_from.get(symbol)
        if since is None:
            since = await self._store.first_id_since(symbol, now - self.lookback_ms)
            if since is None:
                return []
        settled = await self._store.settle_gaps(symbol)
        if settled:
            self._log.info("continuity.gaps_settled", symbol=symbol, gaps=settled)
        known = await self._store.known_holes(symbol)
        outcomes: list[TapeGap] = []
        for hole in await self._store.find_holes(symbol, since):
            if any(k[0] <= hole[0] and hole[1] <= k[1] for k in known):
                continue
            outcomes += await self._repair(symbol, hole)
        if outcomes:
            # Rows were missing: maybe never written, maybe deleted after being counted.
            corrected = await self._store.recount_rows(symbol)
            if corrected:
                self._log.warning("continuity.rows_recounted", symbol=symbol, correction=corrected)
        day_start = now - now % DAY_MS
        await self._store.refresh_daily(symbol, day_start - DAY_MS, day_start + DAY_MS)
        self._checked_from[symbol] = max(since, await self._frontier(symbol, since))
        return outcomes

    async def _frontier(self, symbol: str, since: int) -> int:
        """Where the next pass starts: a little before the newest stored trade."""
        newest = await self._store.first_id_since(symbol, self._clock.time_ms() - 3_600_000)
        return since if newest is None else newest

    async def _repair(self, symbol: str, hole: tuple[int, int]) -> list[TapeGap]:
        low, high = hole
        self._log.info("continuity.hole_found", symbol=symbol, from_id=low, to_id=high)
        outcomes = [TapeGap(symbol, low, high, "seen")]
        batches: list[TradeBatch] = []
        next_id = low
        missing: list[tuple[int, int]] = []
        while next_id <= high:
            rows = await fetch_agg_trades(
                self._rest,
                symbol,
                {"symbol": symbol, "fromId": next_id, "limit": AGG_TRADES_LIMIT},
                Priority.BACKFILL,  # the past: after the live tape's repairs
                self._stop,
            )
            rows = [r for r in rows if r.a <= high]
            if not rows:
                missing.append((next_id, high))
                break
            first = rows[0].a
            if first > next_id:
                missing.append((next_id, first - 1))
            batches.append(rows_to_batch(symbol, rows))
            next_id = rows[-1].a + 1
            if len(rows) < AGG_TRADES_LIMIT and next_id <= high:
                missing.append((next_id, high))
                break
        outcomes += [TapeGap(symbol, a, b, "hole") for a, b in missing]
        if not missing:
            outcomes.append(TapeGap(symbol, low, high, "repaired"))
        await self._store.save(batches, outcomes)
        self._log.info(
            "continuity.hole_repaired" if not missing else "continuity.hole_left",
            symbol=symbol,
            from_id=low,
            to_id=high,
            fetched=sum(len(b) for b in batches),
            missing=missing,
        )
        return outcomes
