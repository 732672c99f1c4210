"""The live executor's place in the daemon: start-up checks, its settings, its inputs.

Start-up refuses to trade (``LiveRefused``, a fatal error: one line, exit 2) when the
account cannot be traded safely by the executor as built: the API key refused
(-2014/-2015), hedge mode on (the executor trades one-way mode: one position per
symbol), or multi-assets margin on (sizing reads the USDT balance alone). A network
error or a 5xx while asking is waited out (capped, jittered), never fatal.

Settings: ``LiveConfigFollower`` keeps the executor on the file's ``[live]`` (reloaded
at SIGHUP) overridden by the admin's latest ``live_config`` row, read before each
signal and at each poll round.

Inputs: fired signals arrive on a channel from the engine (``trade_signals``); the
user data stream's order reports and position changes (``live_stream``) are queued for
the executor's poll loop (``LivePolling``), which hands them over and then asks the
exchange by REST about every order it still drives, so a resync after a gap and the
regular polls catch whatever the stream missed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import msgspec

from arbengine.domain.errors import FatalError, RetryableError
from arbengine.domain.events import Signal
from arbengine.domain.live_rows import LiveConfigRow
from arbengine.exchange.exchange_errors import ExchangeError, FatalExchangeError
from arbengine.exchange.replies import ExchangeInfo
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
POLL_WEIGHT_PER_TRADE = 3 * 1 + 5
"""A poll of one open trade: its open orders asked for by client id (a stop and two
take-profits, 1 each) and its position (``/fapi/v3/positionRisk``, 5)."""
RECONCILE_WEIGHT = 5 + 40 + 40
"""A reconciliation round: positions, open orders and open algo orders of every symbol."""


class LiveRefused(FatalError):
    """The account cannot be traded live as it is; the message says what to change."""


class _Dual(msgspec.Struct, frozen=True):
    dualSidePosition: bool


class _MultiAssets(msgspec.Struct, frozen=True):
    multiAssetsMargin: bool


class _Leverage(msgspec.Struct, frozen=True):
    symbol: str
    leverage: int


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
            # Its limits (REQUEST_WEIGHT, ORDERS) as the exchange states them.
            rest.apply_exchange_info(
                await rest.get("/fapi/v1/exchangeInfo", reply=ExchangeInfo, weight=1)
            )
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
    (a row holds every run-time value: strategies, risk per trade, max positions, pause).
    Paused: no new entry; open trades are still driven to their end."""
    if config is None:
        strategies, risk, max_positions, paused = (
            live.strategies,
            live.risk_per_trade_usd,
            live.max_positions,
            False,
        )
    else:
        strategies, risk = config.strategies, config.risk_per_trade_usd
        max_positions, paused = config.max_positions, config.paused
    return ExecutorSettings(
        strategies=frozenset(strategies),
        risk_per_trade_usd=Decimal(str(risk)),
        max_positions=max_positions,
        leverage=live.leverage,
        paused=paused,
    )


class SettingsHolder(Protocol):
    """What the follower changes: the executor's settings (``LiveExecutor``)."""

    settings: ExecutorSettings


class LiveConfigFollower:
    """Keeps the executor's settings those in force: the file's ``[live]`` (replaced at
    SIGHUP by ``reload_file``) overridden by the latest ``live_config`` row.

    The row is read (one indexed row, ``latest``) before each signal and at each poll
    round, so an admin's change is in force from the next signal after it was stored,
    and applied within a poll interval when no signal comes. A notification would save
    the reads but not the first one after a reconnect; a read per round is cheap. The
    database being away keeps the settings in force (``live.config_unreadable``, once
    per outage; the executor's own writes wait the outage out)."""

    def __init__(
        self,
        executor: SettingsHolder,
        live: LiveSettings,
        latest: Callable[[], Awaitable[LiveConfigRow | None]],
        config: LiveConfigRow | None,
        *,
        on_change: Callable[[LiveSettings, ExecutorSettings], None] | None = None,
    ) -> None:
        self._executor = executor
        self._latest = latest
        self._on_change = on_change
        self.live = live
        """The file's ``[live]`` in force (the one at start, or the last reloaded)."""
        self.config = config
        """The ``live_config`` row in force, if any."""
        self._unreadable = False
        self._log = get_logger("live")

    async def refresh(self) -> None:
        """Read the latest ``live_config`` row; apply it if it is a new one."""
        try:
            row = await self._latest()
        except RetryableError as exc:
            if not self._unreadable:
                self._unreadable = True
                self._log.warning(
                    "live.config_unreadable",
                    error=str(exc)[:200],
                    kept=_described(self._executor.settings),
                )
            return
        self._unreadable = False
        current = self.config.change_id if self.config is not None else None
        if row is not None and row.change_id != current:
            self.config = row
            self._apply("live_config")

    def reload_file(self, live: LiveSettings) -> None:
        """SIGHUP: the file's ``[live]`` anew (``live_config`` still overrides it)."""
        self.live = live
        self._apply("file")

    def _apply(self, cause: str) -> None:
        settings = executor_settings(self.live, self.config)
        settings = dataclasses.replace(
            settings,
            poll_interval_s=self._executor.settings.poll_interval_s,
            max_entry_attempts=self._executor.settings.max_entry_attempts,
        )
        changed = settings != self._executor.settings
        self._executor.settings = settings
        config = self.config
        self._log.info(
            "live.config_applied",
            cause=cause,
            changed=changed,
            source="live_config" if config is not None else "file",
            changed_by=config.changed_by if config is not None else None,
            change_id=str(config.change_id) if config is not None else None,
            **_described(settings),
        )
        if self._on_change is not None:
            self._on_change(self.live, settings)


def _described(settings: ExecutorSettings) -> dict[str, object]:
    return {
        "strategies": sorted(settings.strategies),
        "risk_per_trade_usd": float(settings.risk_per_trade_usd),
        "max_positions": settings.max_positions,
        "leverage": settings.leverage,
        "paused": settings.paused,
    }


def declare_live_demand(
    rest: BinanceRest, open_trades: int, poll_interval_s: float, reconcile_interval_s: float
) -> None:
    """What live trading needs of the request weight per minute now (each open trade
    polled every ``poll_interval_s``, a reconciliation each interval): kept free of the
    collectors' repair and backfill in the budget it shares with them (or in its own),
    and warned about (``rest.live_demand_high``) when it does not fit. Declared as trades
    open and close, so a flat account leaves repair its share."""
    rest.declare_live("live.executor", open_trades * POLL_WEIGHT_PER_TRADE * 60 / poll_interval_s)
    rest.declare_live("live.reconciler", RECONCILE_WEIGHT * 60 / reconcile_interval_s)


class SymbolLeverage:
    """``[live] leverage`` set on a symbol (``POST /fapi/v1/leverage``) before its first
    entry, and again when the leverage in force changes (a SIGHUP): the exchange's own
    setting is whatever the account last chose, not ours. A refusal (a leverage the
    symbol does not allow) is reported once per symbol and value; the entry then goes
    at the account's leverage (sizing still checks the margin at ours)."""

    def __init__(self, rest: BinanceRest) -> None:
        self._rest = rest
        self._set: dict[str, int] = {}
        self._log = get_logger("live")

    async def ensure(self, symbol: str, leverage: int) -> None:
        if self._set.get(symbol) == leverage:
            return
        try:
            reply = await self._rest.post(
                "/fapi/v1/leverage",
                {"symbol": symbol, "leverage": leverage},
                reply=_Leverage,
                signed=True,
                weight=1,
            )
        except FatalExchangeError as exc:
            if exc.code is None:
                raise
            self._log.error(
                "live.leverage_refused", symbol=symbol, leverage=leverage, error=str(exc)[:200]
            )
        else:
            self._log.info("live.leverage_set", symbol=symbol, leverage=reply.leverage)
        self._set[symbol] = leverage


class EntryGate(Protocol):
    """The risk guard's gate (``risk_service.RiskService``): False when the entry is
    refused (the refusal recorded)."""

    async def admit(self, signal: Signal) -> bool: ...


async def trade_signals(
    signals: Channel[Signal],
    executor: LiveExecutor,
    follower: LiveConfigFollower | None = None,
    leverage: SymbolLeverage | None = None,
    gate: EntryGate | None = None,
) -> None:
    """Hand each fired signal to the executor, in order, until the channel closes, under
    the settings in force when it is handed over (``follower``), its symbol at the
    leverage in force (``leverage``), once the risk guard's ``gate`` has let it through
    (the executor's own checks stay a second line). A signal the exchange or the database could not
    take now is reported and left (the executor's records make a later one of the same
    tick a no-op)."""
    log = get_logger("live")
    while True:
        try:
            signal = await signals.get()
        except ChannelClosed:
            return
        try:
            if follower is not None:
                await follower.refresh()
            settings = executor.settings
            traded = signal.strategy in settings.strategies and not settings.paused
            if gate is not None and traded and not await gate.admit(signal):
                continue
            if leverage is not None and traded:
                await leverage.ensure(signal.symbol, settings.leverage)
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
        follower: LiveConfigFollower | None = None,
        after_poll: Callable[[], None] | None = None,
    ) -> None:
        """``after_poll``: called after each poll (the trades open may have changed)."""
        self._executor = executor
        self._follower = follower
        self._after_poll = after_poll
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
                if self._follower is not None:
                    await self._follower.refresh()
                await self._hand_over()
                await self._executor.poll_once()
                self.polls += 1
                if self._after_poll is not None:
                    self._after_poll()
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
