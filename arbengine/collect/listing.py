"""Which configured symbols the exchange lists: the collectors follow only those.

A symbol is followed when ``exchangeInfo`` lists it as a ``PERPETUAL``
contract with status ``TRADING``. Anything else (a typo, a delivery contract,
a symbol settling or delisted) is skipped and reported — logged
(``collect.symbol_unknown`` at start, ``collect.symbol_stopped`` later), on
the health board and in ``/api/server`` — and never stops the other symbols.

The list is checked at start and on every refresh (``symbols_refresh_interval``);
a collector that meets ``-1121 Invalid symbol`` for a symbol stops it at once
instead of waiting for the refresh. A stopped symbol stays stopped until the
daemon restarts: following it again mid-run would splice its tape around an
unknown stretch, and a restart resumes from the stored tape exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from arbengine.exchange.exchange_errors import InvalidResponse, RetryableExchangeError
from arbengine.exchange.replies import ExchangeInfo, SymbolInfo
from arbengine.exchange.rest import BinanceRest
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_REST_RETRY, RetryPolicy
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.health import HealthBoard

HEALTH_COMPONENT = "collect"
CONTRACT_TYPE = "PERPETUAL"
STATUS = "TRADING"
T = TypeVar("T")


def listed_symbols(info: ExchangeInfo) -> dict[str, SymbolInfo]:
    """exchangeInfo's entries by symbol; a reply without any is an invalid response."""
    if not info.symbols:
        # A proxy's page or a truncated reply must not read as "every symbol delisted".
        raise InvalidResponse("exchangeInfo lists no symbols")
    return {entry.symbol: entry for entry in info.symbols}


def listing_problems(info: ExchangeInfo, symbols: Sequence[str]) -> dict[str, str]:
    """Why each of ``symbols`` that cannot be followed cannot (absent when it can)."""
    listed = listed_symbols(info)
    problems: dict[str, str] = {}
    for symbol in symbols:
        entry = listed.get(symbol)
        if entry is None:
            problems[symbol] = "not listed by the exchange"
        elif entry.contractType != CONTRACT_TYPE:
            problems[symbol] = f"not a perpetual contract (contractType {entry.contractType})"
        elif entry.status != STATUS:
            problems[symbol] = f"not trading (status {entry.status})"
    return problems


@dataclass(frozen=True, slots=True)
class SkippedSymbol:
    symbol: str
    reason: str
    since: float
    """Epoch seconds."""

    def as_dict(self) -> dict[str, object]:
        return {"symbol": self.symbol, "reason": self.reason, "since": round(self.since, 3)}


class SymbolListing:
    """The configured symbols, split into followed and skipped; shared by every collector."""

    def __init__(
        self,
        configured: Sequence[str],
        *,
        health: HealthBoard | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.configured = [s.upper() for s in configured]
        self._health = health
        self._wall = wall
        self._skipped: dict[str, SkippedSymbol] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._listed_again: set[str] = set()
        self._log = get_logger("collect")
        self.ready = asyncio.Event()
        """Set once the first exchangeInfo has been checked: collectors start after it."""

    def active(self) -> list[str]:
        """The symbols to follow, in configured order."""
        return [s for s in self.configured if s not in self._skipped]

    def is_active(self, symbol: str) -> bool:
        return symbol not in self._skipped

    def skipped(self) -> list[SkippedSymbol]:
        return list(self._skipped.values())

    def view(self) -> dict[str, object]:
        """What ``/api/server`` shows."""
        return {
            "configured": list(self.configured),
            "collecting": self.active() if self.ready.is_set() else [],
            "checked": self.ready.is_set(),
            "skipped": [s.as_dict() for s in self._skipped.values()],
        }

    async def wait_checked(self, stop: asyncio.Event) -> bool:
        """Wait until the symbol list is known (True) or ``stop`` is set (False)."""
        if not self.ready.is_set():
            ready = asyncio.ensure_future(self.ready.wait())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                stopping.cancel()
        return self.ready.is_set()

    def on_stop(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(symbol)`` whenever a symbol stops being followed."""
        self._listeners.append(listener)

    def apply(self, info: ExchangeInfo) -> list[str]:
        """Check the configured symbols against ``info``; return the ones newly skipped."""
        problems = listing_problems(info, self.configured)
        starting = not self.ready.is_set()
        newly = [s for s in self.configured if s in problems and self.stop(s, problems[s])]
        for symbol in self._skipped:
            if symbol not in problems and symbol not in self._listed_again:
                self._listed_again.add(symbol)
                self._log.warning(
                    "collect.symbol_listed_again",
                    symbol=symbol,
                    hint="restart the daemon to collect it again",
                )
        if starting:
            self.ready.set()
            if self._health is not None:
                self._health.clear(HEALTH_COMPONENT)
            self._log.info("collect.symbols_checked", collecting=self.active(), skipped=newly)
        return newly

    def stop(self, symbol: str, reason: str) -> bool:
        """Stop following ``symbol`` (every collector is told); False if it was not followed."""
        if symbol in self._skipped or symbol not in self.configured:
            return False
        starting = not self.ready.is_set()
        self._skipped[symbol] = SkippedSymbol(symbol, reason, self._wall())
        if starting:
            self._log.error(
                "collect.symbol_unknown",
                symbol=symbol,
                reason=reason,
                hint="check [collect] symbols; this symbol is skipped, the others are collected",
            )
        else:
            self._log.warning("collect.symbol_stopped", symbol=symbol, reason=reason)
        if self._health is not None:
            state = "skipped" if starting else "stopped"
            self._health.report(HEALTH_COMPONENT, f"{state}: {reason}", subject=symbol)
        for listener in self._listeners:
            listener(symbol)
        return True

    def waiting(self, reason: str) -> None:
        """Say that nothing is collected yet because the symbol list is not known."""
        if self._health is not None and not self.ready.is_set():
            self._health.report(HEALTH_COMPONENT, f"not collecting yet: {reason}")


class ExchangeInfoRefresher:
    """Reads ``exchangeInfo`` at start and every ``interval_s``: rate limits, time, listing.

    Retryable failures are waited out here, for as long as they last, with a
    capped jittered backoff: the exchange being away at start is an outage,
    not a reason to exit.
    """

    def __init__(
        self,
        rest: BinanceRest,
        listing: SymbolListing,
        *,
        interval_s: float = 3600.0,
        retry: RetryPolicy = EXCHANGE_REST_RETRY,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        on_time_synced: Callable[[int], None] | None = None,
    ) -> None:
        self._rest = rest
        self._on_time_synced = on_time_synced
        """Told each newly measured offset of the exchange's clock to ours."""
        self._listing = listing
        self.interval_s = interval_s
        self.retry = retry
        self._rng = rng or random.Random()
        self._clock = clock or SystemClock()
        self._stop = asyncio.Event()
        self._log = get_logger("exchange-info")

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            info = await self._retrying("exchangeInfo", self._exchange_info)
            if info is None:
                return
            self._rest.apply_exchange_info(info)
            offset = await self._retrying("time", self._rest.sync_time)
            if offset is None:
                return
            if self._on_time_synced is not None:
                self._on_time_synced(offset)
            self._listing.apply(info)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    async def _exchange_info(self) -> ExchangeInfo:
        info = await self._rest.get("/fapi/v1/exchangeInfo", reply=ExchangeInfo, weight=1)
        listed_symbols(info)  # a reply without symbols is retried, not applied
        return info

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """``call()`` until it succeeds; None when asked to stop meanwhile."""
        attempt = 0
        while not self._stop.is_set():
            try:
                return await call()
            except RetryableExchangeError as exc:
                attempt += 1
                delay = self.retry.delay(attempt, self._rng)
                self._log.warning(
                    "collect.exchange_info_retry",
                    what=what,
                    attempt=attempt,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    retry_in_s=round(delay, 3),
                )
                self._listing.waiting(f"the exchange did not answer {what}: {exc}")
                await self._clock.sleep(delay, self._stop)
        return None
