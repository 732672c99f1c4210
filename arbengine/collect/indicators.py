"""REST pollers for every market indicator the engine scores, stored for replay.

Each poller is one supervised component. Values are published on the market
channel (the writer stores them idempotently; the engine consumes them).
Binance keeps the ratio and open-interest series for only about 30 days, so
at start each series is backfilled from the last stored value (or
``history_backfill`` ago) and then followed.

Every value carries the time it became known (``known_at``): its own timestamp
for point values, the end of its period for ``/futures/data`` period series
(SIGNALS.md, Time) — and never before it reached us: a value that arrives while
we follow the series live counts from its arrival, on the exchange's clock (the
pollers' ``clock``). Only values fetched as history, long after their time,
keep their own known time. The rule holds for every series, Coinbase's ticker
included (its ``time`` is that of the last spot trade, often seconds old). A
re-polled value that has not changed (the same Coinbase trade) is not published
again, so its known time stays that of its first arrival, as stored. So the live
engine and a backtest over the stored values see the same inputs at every tick.

REST calls declare whom they serve (``exchange/budget.py``): the rounds that
follow a series are live, a series' first round (its history) is backfill,
so the 2-second premiumIndex polls never wait behind history. The live pollers
declare what they need per minute, which the client keeps free for them.
History's progress is reported per series (``progress.py``). The
``/futures/data`` series and funding weigh nothing but have request counts of
their own, which pace them (for a hundred symbols, 30 days of the five ratio
series take about an hour, README *REST arithmetic for many symbols*).

The Binance pollers start once the exchange's symbol list is known and poll
only the symbols it lists. Per symbol, a failure is that symbol's: ``-1121``
stops the symbol everywhere (``SymbolListing``), any other rejection is
logged (``poller.symbol_failed``), reported on the health board and tried
again next round, while the other symbols' polls go on. Only a failure of
every symbol is the poller's own (the supervisor's business).

Per symbol and series, the end of the first round after start (its values
published; a rejection of that symbol counts as an end too, as it would be tried
only next round) is reported on the ``Readiness`` board, under the series' kind
(``premium_index`` for premiumIndex): the engine evaluates a symbol only once
the series its strategies read are in. Retryable failures are retried within
the round, so an outage keeps the symbols waiting.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from arbengine.collect.listing import SymbolListing
from arbengine.collect.progress import BackfillProgress
from arbengine.domain.durations import parse_duration_ms
from arbengine.domain.market import PREMIUM_INDEX_INPUT, Indicator, MarketEvent, RateSnapshot
from arbengine.exchange.budget import Priority
from arbengine.exchange.coinbase import CoinbaseTicker, ProductNotFound, parse_time_ms, product_for
from arbengine.exchange.exchange_errors import (
    FatalExchangeError,
    InvalidResponse,
    InvalidSymbol,
    RetryableExchangeError,
)
from arbengine.exchange.payloads import number_or_none
from arbengine.exchange.replies import (
    FundingInfo,
    FundingRate,
    LongShortRatio,
    OpenInterest,
    OpenInterestHist,
    PremiumIndex,
    TakerVolume,
)
from arbengine.exchange.rest import BinanceRest, Params
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_REST_RETRY, RetryPolicy
from arbengine.runtime.channels import Sink
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.delivered_inputs import Readiness
from arbengine.runtime.health import HealthBoard


class PeriodRow(Protocol):
    """A row of a ``/futures/data`` series: a value per period, stamped at the period's start."""

    @property
    def timestamp(self) -> int: ...


Row = TypeVar("Row", bound=PeriodRow)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PeriodReading:
    """One period of a series, in the indicator's terms: its start, value and extra data."""

    ts: int
    value: float
    data: dict[str, float | None]


@dataclass(frozen=True)
class RatioSeries(Generic[Row]):
    kind: str
    path: str
    reply: type[list[Row]]
    value: Callable[[Row], float]
    extra: Callable[[Row], dict[str, float | None]]

    async def fetch(
        self, rest: BinanceRest, params: Params, priority: Priority
    ) -> list[PeriodReading]:
        """One call for the series' periods from ``params["startTime"]``, oldest first."""
        rows = await rest.get(
            self.path,
            params,
            reply=self.reply,
            weight=0,  # /futures/data/* has its own request count instead
            priority=priority,
        )
        readings = [PeriodReading(r.timestamp, self.value(r), self.extra(r)) for r in rows]
        return sorted(readings, key=lambda r: r.ts)


def _long_short(row: LongShortRatio) -> dict[str, float | None]:
    return {"long": number_or_none(row.longAccount), "short": number_or_none(row.shortAccount)}


AnyRatioSeries = (
    RatioSeries[OpenInterestHist] | RatioSeries[LongShortRatio] | RatioSeries[TakerVolume]
)
RATIO_SERIES: tuple[AnyRatioSeries, ...] = (
    RatioSeries(
        "open_interest_hist",
        "/futures/data/openInterestHist",
        list[OpenInterestHist],
        lambda r: r.sumOpenInterest,
        lambda r: {"value_usd": number_or_none(r.sumOpenInterestValue)},
    ),
    RatioSeries(
        "ls_global",
        "/futures/data/globalLongShortAccountRatio",
        list[LongShortRatio],
        lambda r: r.longShortRatio,
        _long_short,
    ),
    RatioSeries(
        "ls_top_position",
        "/futures/data/topLongShortPositionRatio",
        list[LongShortRatio],
        lambda r: r.longShortRatio,
        _long_short,
    ),
    RatioSeries(
        "ls_top_account",
        "/futures/data/topLongShortAccountRatio",
        list[LongShortRatio],
        lambda r: r.longShortRatio,
        _long_short,
    ),
    RatioSeries(
        "taker_ratio",
        "/futures/data/takerlongshortRatio",
        list[TakerVolume],
        lambda r: r.buySellRatio,
        lambda r: {"buy_vol": number_or_none(r.buyVol), "sell_vol": number_or_none(r.sellVol)},
    ),
)


def premium_snapshot(row: PremiumIndex, received: int) -> RateSnapshot:
    """A followed (perpetual) symbol's premiumIndex; one without a funding rate is invalid."""
    funding_rate = number_or_none(row.lastFundingRate)
    if funding_rate is None:
        raise InvalidResponse(f"premiumIndex of {row.symbol}: no lastFundingRate")
    return RateSnapshot(
        symbol=row.symbol,
        ts=row.time,
        mark_price=row.markPrice,
        index_price=row.indexPrice,
        estimated_settle_price=number_or_none(row.estimatedSettlePrice),
        funding_rate=funding_rate,
        interest_rate=number_or_none(row.interestRate),
        next_funding_time=row.nextFundingTime or None,
        known_at=max(row.time, received),
    )


def known_time(own: int, received: int, *, live: bool) -> int:
    """When a value became usable: ``own`` known time, or its arrival if it came live later.

    A value is live once its series is followed: every round after the first, which
    fetches the history the daemon was not there for (at start, after a downtime). History
    keeps its own time (a live engine could not have evaluated on it anyway: the engine
    holds its ticks until every poller's first round is done); a live value that reached us
    after its own time counts from its arrival, which is when the live engine had it.
    """
    return max(own, received) if live else own


class _Stopped(Exception):
    """Raised inside a poll when the daemon asked the pollers to stop."""


POLLERS = ("premium_index", "open_interest", "ratios", "funding", "coinbase")
DELIVERS: dict[str, tuple[str, ...]] = {
    "premium_index": (PREMIUM_INDEX_INPUT,),
    "open_interest": ("open_interest",),
    "ratios": tuple(series.kind for series in RATIO_SERIES),
    "funding": ("funding_rate",),
    "coinbase": ("coinbase_price",),
}
"""The inputs (``Readiness``) each poller's per-symbol polls deliver."""
RATIO_LIMIT = 500
FUNDING_LIMIT = 1000
PREMIUM_INDEX_ALL_WEIGHT = 10
"""premiumIndex without a symbol answers for every symbol at weight 10 (1 with a symbol): from
10 symbols on, one call for all is the cheaper. A round so costs min(N, 10): at 2 s, at most
300 weight a minute for any number of symbols."""


@dataclass(frozen=True)
class PollerPolicy:
    premium_index_interval_s: float = 2.0
    open_interest_interval_s: float = 30.0
    ratios_interval_s: float = 300.0
    ratio_period: str = "5m"
    funding_history_interval_s: float = 3600.0
    coinbase_interval_s: float = 5.0
    history_backfill_ms: int = 30 * 86_400_000


@dataclass
class IndicatorPollers:
    symbols: Sequence[str]
    rest: BinanceRest
    coinbase: CoinbaseTicker | None
    out: Sink[MarketEvent]
    last_known: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Latest stored ``ts`` per (symbol, kind): where each backfill resumes."""
    policy: PollerPolicy = field(default_factory=PollerPolicy)
    clock: Clock = field(default_factory=SystemClock)
    """The exchange's clock (a ``RemoteClock`` in the daemon): arrivals are stamped on it."""
    listing: SymbolListing | None = None
    """The symbols the exchange lists (None: every configured symbol is polled)."""
    health: HealthBoard | None = None
    progress: BackfillProgress = field(default_factory=BackfillProgress)
    """How far the history of each series is (shared with the trade collector)."""
    readiness: Readiness | None = None
    """Where each symbol's first round of each series is reported as delivered."""
    retry: RetryPolicy = EXCHANGE_REST_RETRY
    """Waits between tries of a call that failed for a retryable reason."""
    rng: random.Random = field(default_factory=random.Random)
    """Jitters those waits."""

    def __post_init__(self) -> None:
        self._log = get_logger("pollers")
        self._declare_live_demand(len(self.symbols))
        self._check_ratio_rounds(len(self.symbols))
        if self.listing is not None:
            self.listing.on_stop(self.progress.drop)
        self._last: dict[tuple[str, str], int] = dict(self.last_known)
        self._products = {s: p for s in self.symbols if (p := product_for(s)) is not None}
        self._stop = asyncio.Event()
        self._calling: set[asyncio.Task[Any]] = set()
        """Tasks waiting for a REST call: a stop request cancels them (see ``_retrying``)."""
        self.ready = asyncio.Event()
        """Set once every poller has completed its first round (history backfilled)."""
        self._first_rounds: set[str] = set()
        self._failing: set[tuple[str, str]] = set()

    def _symbols(self) -> list[str]:
        """The symbols to poll now."""
        if self.listing is None:
            return list(self.symbols)
        return [s for s in self.symbols if self.listing.is_active(s)]

    async def _each_symbol(
        self,
        poller: str,
        poll: Callable[[str], Awaitable[None]],
        symbols: Sequence[str],
        *,
        report_each: bool = False,
    ) -> None:
        """``poll(symbol)`` for each symbol; one symbol's failure never stops the others.

        ``report_each``: ``poll`` publishes what it fetched, so each symbol's round is
        reported delivered as soon as its poll ends (else the caller reports, once it has
        published)."""
        failures: list[FatalExchangeError] = []
        for symbol in symbols:
            key = (poller, symbol)
            try:
                await poll(symbol)
            except InvalidSymbol as exc:
                if self.listing is None:
                    raise
                self.listing.stop(symbol, f"the exchange answered {exc}")
                continue
            except FatalExchangeError as exc:
                failures.append(exc)
                self._failing.add(key)
                error = f"{type(exc).__name__}: {exc}"[:300]
                self._log.error("poller.symbol_failed", poller=poller, symbol=symbol, error=error)
                if self.health is not None:
                    self.health.report(
                        "pollers", f"{poller} failed: {error}", subject=f"{poller}:{symbol}"
                    )
                if report_each:  # tried again next round, as live values
                    self._delivered(poller, [symbol])
                continue
            if report_each:
                self._delivered(poller, [symbol])
            if key in self._failing:
                self._failing.discard(key)
                if self.health is not None:
                    self.health.clear("pollers", subject=f"{poller}:{symbol}")
        if failures and len(failures) == len(symbols):
            raise failures[0]  # the same for every symbol: the poller's failure, not a symbol's

    def _declare_live_demand(self, symbols: int) -> None:
        """Tell the client what the live polls need per minute (it keeps that free for them)."""
        policy = self.policy
        premium_round = symbols if symbols < PREMIUM_INDEX_ALL_WEIGHT else PREMIUM_INDEX_ALL_WEIGHT
        self.rest.declare_live(
            "premium_index", premium_round * 60 / max(policy.premium_index_interval_s, 0.001)
        )
        self.rest.declare_live(
            "open_interest", symbols * 60 / max(policy.open_interest_interval_s, 0.001)
        )

    def _check_ratio_rounds(self, symbols: int) -> None:
        """Warn when a round of the ratio series cannot fit its request count: the rounds then
        take longer than ``ratios_interval`` and their values arrive that much later."""
        budget = self.rest.budget
        group = budget.group_for(RATIO_SERIES[0].path)
        if group is None:
            return
        allowed, window_ms = budget.group_allowance(group)
        per_round = len(RATIO_SERIES) * symbols  # one call per series and symbol once followed
        round_s = per_round * window_ms / 1000 / allowed
        if round_s <= self.policy.ratios_interval_s:
            return
        self._log.warning(
            "pollers.ratios_interval_short",
            symbols=symbols,
            calls_per_round=per_round,
            allowed=allowed,
            window_s=window_ms / 1000,
            ratios_interval_s=self.policy.ratios_interval_s,
            round_takes_s=round(round_s),
            hint=f"set collect.ratios_interval to {math.ceil(round_s / 60)}m or more, "
            "or follow fewer symbols",
        )

    def _delivered(self, poller: str, symbols: Sequence[str], inputs: Sequence[str] = ()) -> None:
        if self.readiness is not None:
            for name in inputs or DELIVERS[poller]:
                self.readiness.done_all(symbols, name)

    def _round_done(self, name: str) -> None:
        self._first_rounds.add(name)
        if len(self._first_rounds) >= len(POLLERS) and not self.ready.is_set():
            self.ready.set()
            self._log.info("pollers.ready")

    def request_stop(self) -> None:
        self._stop.set()
        for task in self._calling:
            task.cancel()

    async def _pause(self, seconds: float) -> bool:
        """Sleep until the next poll; False when asked to stop meanwhile."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _publish(self, events: Sequence[MarketEvent]) -> None:
        for event in events:
            await self.out.put(event)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One REST call, retried on retryable errors (the client waits out limits itself).

        Abandoned when the pollers are asked to stop: a call may wait up to a minute for
        the weight budget (or a 429's Retry-After), and at shutdown nothing is lost by not
        sending it, while waiting would hold the daemon's stop (``request_stop`` cancels it).
        """
        attempt = 0
        task = asyncio.current_task()
        assert task is not None
        while True:
            if self._stop.is_set():
                raise _Stopped
            self._calling.add(task)
            try:
                return await call()
            except asyncio.CancelledError:
                # Ours (the stop) when no other cancellation is pending: then stop quietly.
                if self._stop.is_set() and task.uncancel() == 0:
                    raise _Stopped from None
                raise
            except RetryableExchangeError as exc:
                error = exc
            finally:
                self._calling.discard(task)
            attempt += 1
            delay = self.retry.delay(attempt, self.rng)
            self._log.warning("poller.retry", what=what, error=str(error)[:200], retry_in_s=delay)
            if not await self._pause(delay):
                raise _Stopped from None

    async def _every(
        self, interval_s: float, body: Any, name: str, *, listed_only: bool = True
    ) -> None:
        """Run ``body`` now and then every ``interval_s`` until asked to stop.

        Rounds start ``interval_s`` apart (the time a round takes is not added to it); one that
        overran starts the next at once, without making up for the rounds it missed.
        """
        listing = self.listing if listed_only else None
        if listing is not None and not await listing.wait_checked(self._stop):
            return
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                await body()
                self._round_done(name)
                if not await self._pause(max(0.0, started + interval_s - loop.time())):
                    return
        except _Stopped:
            return

    # -- premiumIndex (every 2 s) -------------------------------------------

    async def premium_index_loop(self) -> None:
        async def once() -> None:
            symbols = self._symbols()
            await self._publish(await self.poll_premium_index())
            self._delivered("premium_index", symbols)

        await self._every(self.policy.premium_index_interval_s, once, "premium_index")

    async def poll_premium_index(self) -> list[RateSnapshot]:
        symbols = self._symbols()
        wanted = set(symbols)
        self._declare_live_demand(len(symbols))
        rows: list[PremiumIndex]
        if len(wanted) < PREMIUM_INDEX_ALL_WEIGHT:
            rows = []

            async def one(symbol: str) -> None:
                row = await self._retrying(
                    "premiumIndex",
                    lambda: self.rest.get(
                        "/fapi/v1/premiumIndex", {"symbol": symbol}, reply=PremiumIndex, weight=1
                    ),
                )
                rows.append(row)

            await self._each_symbol("premium_index", one, symbols)
        else:
            every = await self._retrying(
                "premiumIndex",
                lambda: self.rest.get(
                    "/fapi/v1/premiumIndex",
                    reply=list[PremiumIndex],
                    weight=PREMIUM_INDEX_ALL_WEIGHT,
                ),
            )
            rows = [r for r in every if r.symbol in wanted]
        received = self._received()
        return [premium_snapshot(r, received) for r in rows]

    def _received(self) -> int:
        """Now, on the exchange's clock."""
        return self.clock.time_ms()

    # -- open interest (point value) -----------------------------------------

    async def open_interest_loop(self) -> None:
        await self._every(
            self.policy.open_interest_interval_s, self.poll_open_interest, "open_interest"
        )

    async def poll_open_interest(self) -> None:
        values = []

        async def one(symbol: str) -> None:
            row = await self._retrying(
                "openInterest",
                lambda: self.rest.get(
                    "/fapi/v1/openInterest", {"symbol": symbol}, reply=OpenInterest, weight=1
                ),
            )
            known = max(row.time, self._received())
            values.append(Indicator(symbol, "open_interest", row.time, known, row.openInterest))

        symbols = self._symbols()
        await self._each_symbol("open_interest", one, symbols)
        await self._publish(values)
        self._delivered("open_interest", symbols)

    # -- /futures/data period series -----------------------------------------

    async def ratios_loop(self) -> None:
        async def one(symbol: str) -> None:
            for series in RATIO_SERIES:
                await self.follow_series(symbol, series)
                self.progress.done(series.kind, symbol)
                self._delivered("ratios", [symbol], [series.kind])

        async def once() -> None:
            symbols = self._symbols()
            for series in RATIO_SERIES:
                self.progress.begin(series.kind, symbols)
            # Symbol by symbol, every series of one before the next: each symbol has all its
            # history as early as the limits allow, in the configured order.
            await self._each_symbol("ratios", one, symbols, report_each=True)

        await self._every(self.policy.ratios_interval_s, once, "ratios")

    async def follow_series(self, symbol: str, series: AnyRatioSeries) -> int:
        """Fetch every period since the last known one; return how many values were new."""
        period_ms = parse_duration_ms(self.policy.ratio_period)
        now = self.clock.time_ms()
        key = (symbol, series.kind)
        start = self._last.get(key, now - self.policy.history_backfill_ms - 1) + 1
        start = max(start, now - self.policy.history_backfill_ms)
        published = 0
        live = "ratios" in self._first_rounds
        priority = Priority.LIVE if live else Priority.BACKFILL
        while start <= now:
            if not live:
                self.progress.request(series.kind)
            params = {
                "symbol": symbol,
                "period": self.policy.ratio_period,
                "limit": RATIO_LIMIT,
                "startTime": start,
            }
            rows = await self._retrying(
                series.path, partial(series.fetch, self.rest, params, priority)
            )
            if not rows:
                break
            values = []
            received = self._received()
            for row in rows:
                ts = row.ts  # documented as a string, sent as a number: both decode
                if ts < start:
                    continue
                known = known_time(ts + period_ms, received, live=live)
                values.append(Indicator(symbol, series.kind, ts, known, row.value, row.data))
                self._last[key] = max(self._last.get(key, 0), ts)
            await self._publish(values)
            published += len(values)
            if len(rows) < RATIO_LIMIT or key not in self._last:
                break
            start = self._last[key] + 1
        return published

    # -- funding history and intervals ---------------------------------------

    async def funding_history_loop(self) -> None:
        async def one(symbol: str) -> None:
            await self.follow_funding(symbol)
            self.progress.done("funding_rate", symbol)

        async def once() -> None:
            symbols = self._symbols()
            self.progress.begin("funding_rate", symbols)
            await self.poll_funding_info()
            await self._each_symbol("funding", one, symbols, report_each=True)

        await self._every(self.policy.funding_history_interval_s, once, "funding")

    async def poll_funding_info(self) -> None:
        rows = await self._retrying(
            "fundingInfo",
            lambda: self.rest.get("/fapi/v1/fundingInfo", reply=list[FundingInfo], weight=0),
        )
        now = self.clock.time_ms()
        intervals = {r.symbol: r.fundingIntervalHours for r in rows}
        symbols = self._symbols()
        await self._publish(
            [
                Indicator(s, "funding_interval_hours", now, now, float(intervals.get(s, 8)))
                for s in symbols
            ]
        )
        self._delivered("funding", symbols, ["funding_interval_hours"])

    async def follow_funding(self, symbol: str) -> None:
        now = self.clock.time_ms()
        key = (symbol, "funding_rate")
        start = max(self._last.get(key, 0) + 1, now - self.policy.history_backfill_ms)
        live = "funding" in self._first_rounds
        priority = Priority.LIVE if live else Priority.BACKFILL
        while True:
            if not live:
                self.progress.request("funding_rate")
            rows = await self._retrying(
                "fundingRate",
                partial(
                    self.rest.get,
                    "/fapi/v1/fundingRate",
                    {"symbol": symbol, "startTime": start, "limit": FUNDING_LIMIT},
                    reply=list[FundingRate],
                    weight=0,  # it shares a request count with fundingInfo instead
                    priority=priority,
                ),
            )
            values = []
            received = self._received()
            for row in rows:
                ts = row.fundingTime
                if ts < start:
                    continue
                values.append(
                    Indicator(
                        symbol,
                        "funding_rate",
                        ts,
                        known_time(ts, received, live=live),
                        row.fundingRate,
                        {"mark_price": number_or_none(row.markPrice)},
                    )
                )
                self._last[key] = max(self._last.get(key, 0), ts)
            await self._publish(values)
            if len(rows) < FUNDING_LIMIT or not values:
                return
            start = self._last[key] + 1

    # -- Coinbase spot ----------------------------------------------------------

    async def coinbase_loop(self) -> None:
        if self.coinbase is None or not self._products:
            self._round_done("coinbase")
            self._delivered("coinbase", self.symbols)  # nothing will ever come
            return
        await self._every(
            self.policy.coinbase_interval_s, self.poll_coinbase, "coinbase", listed_only=False
        )

    async def poll_coinbase(self) -> None:
        assert self.coinbase is not None
        values = []
        for symbol, product in list(self._products.items()):
            if self.listing is not None and not self.listing.is_active(symbol):
                continue
            try:
                ticker = await self.coinbase.ticker(product)
            except ProductNotFound:
                self._log.warning("poller.coinbase_no_product", symbol=symbol, product=product)
                del self._products[symbol]
                continue
            except (RetryableExchangeError, FatalExchangeError) as exc:
                self._log.warning("poller.coinbase_failed", product=product, error=str(exc)[:200])
                continue
            ts = parse_time_ms(ticker.time)
            key = (symbol, "coinbase_price")
            if ts <= self._last.get(key, -1):
                continue  # no spot trade since the last poll: nothing new is known
            self._last[key] = ts
            values.append(
                Indicator(
                    symbol,
                    "coinbase_price",
                    ts,
                    max(ts, self._received()),  # a ticker is never history: always live
                    ticker.price,
                    {"bid": number_or_none(ticker.bid), "ask": number_or_none(ticker.ask)},
                )
            )
        await self._publish(values)
        # Every symbol's round has ended: with a price, a failure (a live value only: nothing
        # is fetched as history) or no Coinbase product at all.
        self._delivered("coinbase", self.symbols)
