"""The live executor's place in the daemon: start-up checks, its settings, its inputs.

Start-up refuses to trade (``LiveRefused``, a fatal error: one line, exit 2) when the
account cannot be traded safely by the executor as built: the API key refused
(-2014/-2015), hedge mode on (the executor trades one-way mode: one position per
symbol), or multi-assets margin on (sizing reads the USDT balance alone). A network
error or a 5xx while asking is waited out (capped, jittered), never fatal.

Inputs: fired signals arrive on a channel from the engine (``trade_signals``); the
user data stream's order reports and position changes (``live_stream``) are queued for
the executor's poll loop (``LivePolling``), which hands them over and then asks the
exchange by REST about every order it still drives, so a resync after a gap and the
regular polls catch whatever the stream missed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from arbengine.domain.errors import FatalError, RetryableError
from arbengine.domain.events import Signal
from arbengine.domain.live_rows import LiveConfigRow
from arbengine.exchange.exchange_errors import ExchangeError, FatalExchangeError
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.user_events import (
    AccountUpdate,
    AlgoUpdate,
    OrderTradeUpdate,
    Resync,
    UserEvent,
)
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_REST_RETRY, RetryPolicy
from arbengine.runtime.channels import Channel, ChannelClosed
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.settings import LiveSettings
from arbengine.trading.live_executor import ExecutorSettings, LiveExecutor
from arbengine.trading.live_trade import PositionChanged
from arbengine.trading.live_wire import OrderReport

KEY_REFUSED = (-2014, -2015)


class LiveRefused(FatalError):
    """The account cannot be traded live as it is; the message says what to change."""


class _Dual(msgspec.Struct, frozen=True):
    dualSidePosition: bool


class _MultiAssets(msgspec.Struct, frozen=True):
    multiAssetsMargin: bool


async def check_account(
    rest: BinanceRest,
    stop: asyncio.Event,
    *,
    retry: RetryPolicy = EXCHANGE_REST_RETRY,
    clock: Clock | None = None,
) -> bool:
    """Raise ``LiveRefused`` if the account must not be traded; False if ``stop`` came
    while the exchange could not be reached."""
    clock = clock or SystemClock()
    log = get_logger("live")
    attempt = 0
    while True:
        try:
            await rest.sync_time()
            dual = await rest.get("/fapi/v1/positionSide/dual", reply=_Dual, weight=30, signed=True)
            multi = await rest.get(
                "/fapi/v1/multiAssetsMargin", reply=_MultiAssets, weight=30, signed=True
            )
            break
        except FatalExchangeError as exc:
            if exc.code in KEY_REFUSED:
                raise LiveRefused(
                    f"live: the exchange refused the API key ({exc.code}): check "
                    "[exchange] api_key/api_secret, the key's futures permission and its IP list"
                ) from None
            raise
        except (ExchangeError, RetryableError) as exc:
            attempt += 1
            delay = retry.delay(attempt)
            log.warning("live.check_failed", error=str(exc)[:200], retry_in_s=round(delay, 2))
            if not await clock.sleep(delay, stop):
                return False
    if dual.dualSidePosition:
        raise LiveRefused(
            "live: hedge mode is on for this account (dualSidePosition true); the executor "
            "trades one-way mode: turn hedge mode off, then start again"
        )
    if multi.multiAssetsMargin:
        raise LiveRefused(
            "live: multi-assets margin mode is on for this account; the executor sizes "
            "from the USDT balance alone: turn it off, then start again"
        )
    return True


def executor_settings(live: LiveSettings, config: LiveConfigRow | None) -> ExecutorSettings:
    """``[live]``, overridden by the admin's latest ``live_config`` row when there is one
    (paused: no strategy is traded; open trades are still driven to their end)."""
    if config is None:
        strategies, risk, max_positions = (
            live.strategies,
            live.risk_per_trade_usd,
            live.max_positions,
        )
    else:
        strategies = [] if config.paused else config.strategies
        risk, max_positions = config.risk_per_trade_usd, config.max_positions
    return ExecutorSettings(
        strategies=frozenset(strategies),
        risk_per_trade_usd=Decimal(str(risk)),
        max_positions=max_positions,
        leverage=live.leverage,
    )


async def trade_signals(signals: Channel[Signal], executor: LiveExecutor) -> None:
    """Hand each fired signal to the executor, in order, until the channel closes. A
    signal the exchange or the database could not take now is reported and left (the
    executor's records make a later one of the same tick a no-op)."""
    log = get_logger("live")
    while True:
        try:
            signal = await signals.get()
        except ChannelClosed:
            return
        try:
            await executor.on_signal(signal)
        except RetryableError as exc:
            log.error(
                "live.signal_failed",
                strategy=signal.strategy,
                symbol=signal.symbol,
                tick=signal.tick_ms,
                error=str(exc)[:200],
            )


class LivePolling:
    """The executor's one poll loop: every ``interval_s``, and at once when woken by the
    user stream (any account event, or a resync after a gap). Polls never overlap, so a
    trade is never driven by two polls at the same moment."""

    def __init__(
        self,
        executor: LiveExecutor,
        interval_s: float,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy = EXCHANGE_REST_RETRY,
    ) -> None:
        self._executor = executor
        self._interval_s = interval_s
        self._clock = clock or SystemClock()
        self._retry = retry
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._reports: deque[StreamReport] = deque()
        self._log = get_logger("live")
        self.polls = 0

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def on_event(self, event: UserEvent) -> None:
        """The user stream's consumer: what it reports is queued for the poll loop (the
        stream's reader never waits on a trade), which hands it over before polling."""
        if isinstance(event, Resync):
            self._log.info("live.resync", reason=event.reason, connection=event.connection)
        self._reports.extend(stream_reports(event))
        self._wake.set()

    async def _hand_over(self) -> None:
        while self._reports:
            report = self._reports.popleft()
            if isinstance(report, StreamedOrder):
                await self._executor.on_order_report(report.report, algo=report.algo)
            else:
                await self._executor.on_exchange_event(
                    PositionChanged(report.amount),
                    report.symbol,
                    reported_at=report.reported_at,
                )

    async def run(self) -> None:
        """Poll until ``request_stop``; an exchange outage is reported and waited out."""
        attempt = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                await self._hand_over()
                await self._executor.poll_once()
                self.polls += 1
                attempt = 0
                delay = self._interval_s
            except RetryableError as exc:
                attempt += 1
                delay = self._retry.delay(attempt)
                self._log.warning(
                    "live.poll_failed", error=str(exc)[:200], retry_in_s=round(delay, 2)
                )
            await self._clock.sleep(delay, self._wake)


# -- the user data stream's reports ----------------------------------------------------
# ORDER_TRADE_UPDATE, ALGO_UPDATE and ACCOUNT_UPDATE as order reports (by client id) and
# position changes (by symbol), so that a fill or a vanished position reaches its trade
# when the exchange says so rather than at the next poll. A FINISHED algo order without
# its execution is left out: the poll the event wakes reads it from the order it placed.


@dataclass(frozen=True, slots=True)
class StreamedOrder:
    report: OrderReport
    algo: bool


@dataclass(frozen=True, slots=True)
class StreamedPosition:
    symbol: str
    amount: Decimal
    reported_at: int
    """The exchange's transaction time (ms)."""


StreamReport = StreamedOrder | StreamedPosition


def stream_reports(event: UserEvent) -> list[StreamReport]:
    """What ``event`` tells the executor (nothing for balances, margin calls, resyncs)."""
    if isinstance(event, OrderTradeUpdate):
        o = event.order
        report = OrderReport(
            client_id=o.client_id,
            status=o.status,
            executed_qty=o.filled_qty,
            avg_price=o.avg_price,
            exchange_id=o.order_id,
            time_ms=event.transaction_time_ms,
        )
        return [StreamedOrder(report, algo=False)]
    if isinstance(event, AlgoUpdate):
        a = event.order
        if a.status == "FINISHED" and a.executed_qty <= 0:
            return []
        report = OrderReport(
            client_id=a.client_algo_id,
            status=a.status,
            executed_qty=a.executed_qty,
            avg_price=a.avg_price,
            exchange_id=a.algo_id,
            time_ms=event.transaction_time_ms,
        )
        return [StreamedOrder(report, algo=True)]
    if isinstance(event, AccountUpdate):
        return [
            StreamedPosition(p.symbol, p.amount, event.transaction_time_ms)
            for p in event.account.positions
            if p.position_side == "BOTH"
        ]
    return []
