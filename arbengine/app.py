"""Composition root: builds every part, owns start-up and shutdown.

Start-up: settings are already validated; open the database (embedded server
or URL, migrations), make sure partitions exist, start the HTTP API, then
run the supervised components. Shutdown (SIGTERM/SIGINT): stop intake, let
processing drain its channels, flush writers, close the API and the pool,
stop the embedded server; all within ``runtime.shutdown_deadline``. That deadline
is a hard bound: what still runs then is cancelled and named (``daemon.abandoned``),
and if the process has not ended ``FORCE_AFTER_S`` later, or at a second signal,
it is ended at once (``runtime/hard_stop.py``) with the embedded server stopped.

Live trading (``[live] enabled``): before anything trades, the account's lock is taken
(a second daemon on the account exits 2 saying who holds it), the account is checked
(``trading/live_service.py``: exit 2 with one line on a refused key, hedge mode or
multi-assets mode) and a live strategy must be loaded (exit 2 otherwise). The engine
hands the fired signals of live ticks to the executor on a channel; the user data
stream's reports go to the executor's poll loop, which drives every trade; the
reconciler compares the exchange with the records every ``reconcile_interval``.
``run --sim`` points the live endpoints at the sim.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from arbengine import __version__
from arbengine.api.context import StrategyDefinition
from arbengine.api.http_app import ApiContext, build_app, serve_http
from arbengine.collect.continuity import ContinuityCheck, ContinuityStore
from arbengine.collect.indicators import IndicatorPollers, PollerPolicy
from arbengine.collect.listing import ExchangeInfoRefresher, SymbolListing
from arbengine.collect.market_stream import CollectorPolicy, MarketStreamCollector
from arbengine.collect.progress import BackfillProgress
from arbengine.domain.errors import CannotListen, ConfigError, is_retryable
from arbengine.domain.events import Signal
from arbengine.domain.live_rows import LiveEventRow
from arbengine.domain.market import MarketEvent
from arbengine.exchange.budget import binance_groups
from arbengine.exchange.coinbase import CoinbaseTicker
from arbengine.exchange.rest import BinanceRest, RestLimits
from arbengine.exchange.streams import StreamPolicy
from arbengine.exchange.user_events import UserEvent
from arbengine.exchange.user_stream import UserStream
from arbengine.logs import get_logger
from arbengine.notify.alerts import (
    Alert,
    daemon_alert,
    given_up_alert,
    signal_alert,
    tape_hole_alert,
)
from arbengine.notify.notifier import Notifier, notifier_from_settings
from arbengine.notify.taps import AlertingSink, publish_live_event
from arbengine.pipeline.replay import ReplayStats, ReplayTarget, replay_history
from arbengine.pipeline.service import EngineOutput, EngineService, EngineStore
from arbengine.pipeline.signal_pipeline import exit_rule
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.channels import Channel, Fanout, OverflowPolicy, Sink
from arbengine.runtime.clock import Clock, RemoteClock, SystemClock
from arbengine.runtime.delivered_inputs import Readiness
from arbengine.runtime.hard_stop import FORCE_AFTER_S, HardStop
from arbengine.runtime.health import HealthBoard
from arbengine.runtime.os_signals import handle_signals
from arbengine.runtime.supervisor import (
    CANCEL_GRACE_S,
    Component,
    RestartPolicy,
    Supervisor,
    TooManyRestarts,
)
from arbengine.settings import LiveSettings, Settings, live_endpoints, shipped, strategies_dir
from arbengine.signals import Collected, StrategySet, load_strategy_set
from arbengine.store.admin_records import AdminRecords
from arbengine.store.archive_sealer import ArchiveSealer
from arbengine.store.continuity_records import ContinuityRecords
from arbengine.store.control_commands import CommandListener, CommandRow, ControlCommands
from arbengine.store.database import Database, DatabaseUnavailable, open_database
from arbengine.store.embedded import EmbeddedServer, stop_at_once
from arbengine.store.engine_records import EngineRecords
from arbengine.store.engine_writer import EngineWriter
from arbengine.store.live_lock import AccountInUse, AccountLock, acquire_account_lock
from arbengine.store.live_records import LiveRecords
from arbengine.store.market_sql import (
    last_indicator_times,
    last_stored_trade_ids,
)
from arbengine.store.market_writer import MarketWriter, WriterPolicy
from arbengine.store.partitions import maintain_partitions
from arbengine.store.risk_records import RiskRecords
from arbengine.store.tape_archive import TapeArchive
from arbengine.trading.live_controls import LiveControls
from arbengine.trading.live_executor import ExecutorSettings, LiveExecutor
from arbengine.trading.live_reconciler import LiveReconciler, ReconcileSettings
from arbengine.trading.live_service import (
    LiveConfigFollower,
    LivePolling,
    SymbolLeverage,
    check_account,
    declare_live_demand,
    executor_settings,
    trade_signals,
)
from arbengine.trading.risk_inputs import MarketFreshness, MarketTap
from arbengine.trading.risk_rules import RiskLimits
from arbengine.trading.risk_service import FlattenThroughControls, RiskService, TradedStrategy

if TYPE_CHECKING:  # the simulated exchange is imported only when `run --sim` starts it
    from arbengine.sim.server import SimConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ROWS_NOT_WRITTEN = 3
"""Stopped while the database was away, holding rows it could not write (see the writers)."""
EXIT_ABANDONED = 4
"""Stopped by force: a component still running at the shutdown deadline was cancelled, or a
second signal (or the hard bound) ended the process at once."""
LIVE_RESTART_KEYS = ("enabled", "environment", "rest_url", "private_ws_url")
"""``[live]`` keys a SIGHUP does not apply (the others are applied from the next signal)."""
LIVE_SIGNALS_CAPACITY = 64
"""Fired signals waiting for the executor; when full the oldest is dropped (stale anyway)."""


def restart_policy(settings: Settings) -> RestartPolicy:
    rt = settings.runtime
    return RestartPolicy(
        initial_s=rt.restart_initial.seconds,
        max_s=rt.restart_max.seconds,
        healthy_after_s=rt.healthy_after.seconds,
        max_restarts=rt.max_restarts,
        window_s=rt.restart_window.seconds,
    )


class Daemon:
    """The running process: its resources, components and reload hooks."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        sim: SimConfig | None = None,
        components: Sequence[Component] = (),
        reread: Callable[[], Settings] | None = None,
    ) -> None:
        """``components``: more to supervise alongside the daemon's own (a test daemon's
        misbehaving ones; the command line never passes any). ``reread``: the settings
        read again from where they came from (SIGHUP applies their ``[live]`` part)."""
        self.settings = settings
        self._reread = reread
        self._file_live = settings.live
        """``[live]`` as the file (and environment) gave it, before ``run --sim``'s URLs."""
        self._live_reload: Callable[[], Awaitable[None]] | None = None
        self._live_follower: LiveConfigFollower | None = None
        self.live_controls: LiveControls | None = None
        self.extra_components = tuple(components)
        self.sim_config = sim
        self.clock = clock or SystemClock()
        self.exchange_clock = RemoteClock(self.clock)
        """The exchange's time: our clock, its measured offset, the newest stream event time."""
        self.log = get_logger("daemon")
        self.health = HealthBoard()
        self.notifier: Notifier | None = (
            notifier_from_settings(settings.alerts, self.clock) if settings.alerts.enabled else None
        )
        """Alerts (``[alerts]``: off while no webhook URL is set)."""
        self.supervisor = Supervisor(
            restart_policy(settings),
            escalation_deadline_s=settings.runtime.shutdown_deadline.seconds * 0.75,
            retryable=is_retryable,
            health=self.health,
            on_give_up=self._alert_given_up,
        )
        self.listing: SymbolListing | None = None
        self.channels: list[Channel[Any]] = []
        self.reload_hooks: list[Callable[[], Awaitable[None]]] = []
        self.engine_inbox: Channel[MarketEvent] | None = None
        self.live_signals: Channel[Signal] | None = None
        self.live_executor: LiveExecutor | None = None
        self.risk: RiskService | None = None
        self.market_freshness = MarketFreshness(self.clock.time_ms)
        """When each symbol's inputs last arrived here (the risk guard reads it), on our
        own clock: how long ago the data came, whatever the market's clock says."""
        self.lock_lost = False
        """The account lock went while running: the daemon stopped, and exits non-zero."""
        self.engine: EngineService | None = None
        self.strategies_at_start: StrategySet | None = None
        self.writers: list[MarketWriter | EngineWriter] = []
        self.rest: BinanceRest | None = None
        self._rest_limits: dict[str, RestLimits] = {}
        """One per exchange host (``_limits_for``)."""
        self.backfill: BackfillProgress | None = None
        self.hard_stop = HardStop(EXIT_ABANDONED, running=self.supervisor.unresponsive)
        self.left_behind: list[str] = []
        """Components that did not end even when cancelled (the process exits without them)."""
        self._embedded: EmbeddedServer | None = None
        self._stop_by: float | None = None
        """When the stop must be done (monotonic), from the first SIGTERM/SIGINT."""
        self.started_monotonic = time.monotonic()
        self.started_at = time.time()

    # -- components -----------------------------------------------------------

    async def _partitions_loop(self, db: Database) -> None:
        """Keep agg_trades partitions ahead of time and apply retention, daily."""
        interval = self.settings.database.partition_check_interval.seconds
        log = get_logger("partitions")
        while True:
            async with db.acquire() as conn:
                created, dropped = await maintain_partitions(
                    conn,
                    self.clock.time_ms(),
                    months_ahead=2,
                    retention_months=self.settings.database.trade_retention_months,
                )
            if created or dropped:
                log.info("partitions.maintained", created=created, dropped=dropped)
            await asyncio.sleep(interval)

    def _add_sealer(self, db: Database, archive: TapeArchive) -> None:
        """Seal the configured symbols' complete days into the tape archive (collecting or
        not: days counted before, or imported, are sealed all the same)."""
        sealer = ArchiveSealer(
            db,
            archive,
            self.settings.collect.symbols,
            self.settings.archive.seal_interval.seconds,
        )
        self.log.info("archive.ready", location=archive.location)
        self.supervisor.add(Component("archive", sealer.run, drain=sealer.request_stop))

    async def _reload_loop(self, reload: asyncio.Event) -> None:
        """SIGHUP: run every reload hook (strategies plug in here); never stops the daemon."""
        while True:
            await reload.wait()
            if self.engine is not None:
                # Asked for during start-up: applies to the set the engine loads, once it has.
                await self.engine.ready.wait()
            reload.clear()
            self.log.info("daemon.reload_requested", hooks=len(self.reload_hooks))
            for hook in self.reload_hooks:
                await hook()
            self.log.info("daemon.reloaded")

    def _add_engine(self, db: Database) -> None:
        """The signal engine and paper trader, fed by the collectors, stored by a writer."""
        es = self.settings.engine
        capacity = self.settings.runtime.channel_capacity
        inbox: Channel[MarketEvent] = Channel("engine", capacity, OverflowPolicy.BLOCK)
        outbox: Channel[EngineOutput] = Channel("engine-out", capacity, OverflowPolicy.BLOCK)
        self.channels += [inbox, outbox]
        self.engine_inbox = inbox
        self.engine = engine = EngineService(
            strategies_dir(es),
            inbox,
            outbox,
            engine_store(db),
            grace_ms=es.grace.ms,
            settle_ms=es.settle.ms,
            max_catch_up_ms=es.max_catch_up.ms,
            clock=self.exchange_clock,
            collected=self.collected,
            signals=self._signal_sink(),
        )

        async def reload() -> None:
            engine.reload()

        self.reload_hooks.append(reload)
        self.supervisor.add(Component("engine", engine.run, stage=10, drain=inbox.close))
        writer = EngineWriter(
            db.pool, outbox, write_timeout_s=self.settings.database.write_timeout.seconds
        )
        self._watch_writer("signal-writer", writer)
        self.supervisor.add(Component("signal-writer", writer.run, stage=20, drain=outbox.close))

    def collected(self) -> Collected:
        """The symbols strategies may name: ``[collect] symbols`` (the deployment's symbols,
        whether or not it collects them), less those the exchange skipped or stopped."""
        listing = self.listing
        stopped = {s.symbol: s.reason for s in listing.skipped()} if listing is not None else {}
        directory = strategies_dir(self.settings.engine)
        return Collected.of(
            self.settings.collect.symbols, stopped, shipped=directory == shipped("strategies")
        )

    def _symbol_stopped(self, symbol: str) -> None:
        """The exchange skipped or stopped a symbol: say which strategies named it and what to
        do (a reload naming it is refused from now on)."""
        engine = self.engine
        current = engine.pipeline.core.strategies if engine and engine.pipeline else None
        strategies = current or self.strategies_at_start
        users = [s.name for s in strategies.enabled if symbol in s.symbols] if strategies else []
        if users:
            self.log.warning(
                "strategies.symbol_not_collected",
                symbol=symbol,
                strategies=users,
                reason=self.collected().problem(symbol),
                hint="remove it from these strategies and reload (SIGHUP)",
            )

    def _current_strategies(self) -> StrategySet | None:
        """The strategies the engine runs now (after any SIGHUP reload), else those loaded
        at start; None when none were loaded."""
        engine = self.engine
        current = engine.pipeline.core.strategies if engine and engine.pipeline else None
        return current or self.strategies_at_start

    def _strategy_names(self) -> list[str] | None:
        """The enabled strategies the engine runs now, else those loaded at start."""
        strategies = self._current_strategies()
        return [s.name for s in strategies.enabled] if strategies is not None else None

    def _strategy_definitions(self) -> list[StrategyDefinition]:
        """Every strategy the engine runs now (after any SIGHUP reload), as the API shows it."""
        strategies = self._current_strategies()
        return [
            StrategyDefinition(
                name=s.name,
                hash=s.hash,
                enabled=s.enabled,
                symbols=tuple(s.symbols),
                tick_ms=s.tick_ms,
                threshold=s.entry.threshold,
                min_coverage=s.entry.min_coverage,
                document=s.document(),
            )
            for s in (strategies or ())
        ]

    def _watch_writer(self, name: str, writer: MarketWriter | EngineWriter) -> None:
        """Kept for the exit status, and on the health board: failing writes, or a write that
        has run past its deadline (a stall the timeout has not caught yet)."""
        self.writers.append(writer)
        stall_after_s = self.settings.database.write_timeout.seconds
        self.health.watch(name, lambda: writer.health().trouble(time.time(), stall_after_s))

    async def _start_sim(self, stack: contextlib.AsyncExitStack) -> Settings:
        """``run --sim``: the simulated exchange in this process, every client pointed at it."""
        from arbengine.sim.server import SimServer

        config = self.sim_config
        assert config is not None, "run() starts the sim only when it was given one"
        try:
            sim = await stack.enter_async_context(SimServer(config))
        except OSError as exc:
            raise CannotListen(config.host, config.port, exc, "(--sim-port)") from None
        self.supervisor.add(Component("sim", sim.wait, stage=30))
        self.log.info("daemon.sim_started", **sim.urls())
        exchange = msgspec.structs.replace(
            self.settings.exchange,
            rest_url=sim.rest_url,
            ws_url=sim.market_ws_url,
            private_ws_url=sim.private_ws_url,
            coinbase_url=sim.coinbase_url,
            api_key=config.api_key,
            api_secret=config.api_secret,
        )
        collect = msgspec.structs.replace(
            self.settings.collect, enabled=True, symbols=list(config.symbols)
        )
        live = msgspec.structs.replace(
            self.settings.live, rest_url=sim.rest_url, private_ws_url=sim.private_ws_url
        )
        return msgspec.structs.replace(self.settings, exchange=exchange, collect=collect, live=live)

    async def _hold_lock(self, lock: AccountLock, stop: asyncio.Event) -> None:
        """Runs while the account lock is held. Its loss (the lock's connection ended: a
        database restart, a network cut) stops the daemon at once, exit status 1: another
        process may take the lock and trade the account now, so this one must not; a
        restart takes the lock again or is refused. (Cancelled at shutdown before the lock
        is released, so a return of ``wait_lost`` is a real loss.)"""
        await lock.wait_lost()
        self.lock_lost = True
        self.log.error(
            "live.lock_lost",
            lock_session=lock.session_pid,
            action="stopping the daemon: it must not trade without the account's lock",
        )
        self._stop_requested(self.settings.runtime.shutdown_deadline.seconds)
        stop.set()
        await asyncio.Event().wait()  # stopped with the others

    def _check_live_strategies(self) -> None:
        """Every ``[live] strategies`` name must be a loaded, enabled strategy (exit 2)."""
        live = self.settings.live
        if not self.settings.engine.enabled:
            raise ConfigError("live.enabled requires engine.enabled (signals come from it)")
        loaded = self.strategies_at_start
        names = {s.name for s in loaded.enabled} if loaded is not None else set()
        unknown = [n for n in live.strategies if n not in names]
        if unknown:
            raise ConfigError(
                f"live.strategies: {', '.join(unknown)} not among the loaded strategies "
                f"({', '.join(sorted(names)) or 'none'}) in {strategies_dir(self.settings.engine)}"
            )

    async def _add_live(
        self, stack: contextlib.AsyncExitStack, db: Database, stop: asyncio.Event
    ) -> bool:
        """The account lock, the account checks, the executor and its inputs; False when a
        stop came while the exchange could not be reached. Raises a FatalError (exit 2)
        when this process must not trade."""
        settings = self.settings
        live, ex = settings.live, settings.exchange
        endpoints = live_endpoints(settings)
        if live.environment == "production":
            self.log.warning(
                "live.production",
                note="LIVE TRADING WITH REAL MONEY",
                rest_url=endpoints.rest_url,
                strategies=live.strategies,
                risk_per_trade_usd=live.risk_per_trade_usd,
                max_positions=live.max_positions,
            )
        try:
            lock = await acquire_account_lock(db.url, ex.api_key)
        except AccountInUse as exc:
            self.log.error("live.account_in_use", error=str(exc))
            raise
        stack.push_async_callback(lock.release)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        rest = BinanceRest(
            session,
            endpoints.rest_url,
            api_key=ex.api_key,
            api_secret=ex.api_secret,
            recv_window_ms=ex.recv_window,
            weight_safety=ex.weight_safety,
            timeout_s=ex.request_timeout.seconds,
            forbidden_backoff_s=ex.forbidden_backoff.seconds,
            clock=self.clock,
            health=self.health,
            limits=self._limits_for(endpoints.rest_url),
        )
        shares_limits = settings.collect.enabled and _host(ex.rest_url) == _host(endpoints.rest_url)
        if not await check_account(rest, stop, clock=self.clock):
            return False
        records = self._live_records(db)
        config = await records.current_config()
        strategies = self.strategies_at_start
        assert strategies is not None, "checked by _check_live_strategies"
        traded = [s for s in strategies.enabled if s.name in live.strategies]
        executor = LiveExecutor(
            rest,
            records,
            executor_settings(live, config),
            {s.name: exit_rule(s) for s in strategies.enabled},
            clock=self.exchange_clock,
        )
        await executor.load_rules({symbol for s in traded for symbol in s.symbols})
        # Before the first signal or poll: the trades an earlier process left are driven
        # again (reconciliation leaves them alone from here, being the executor's).
        await executor.resume()
        self.live_executor = executor
        signals: Channel[Signal] = Channel(
            "live-signals", LIVE_SIGNALS_CAPACITY, OverflowPolicy.DROP_OLDEST
        )
        self.channels.append(signals)
        self.live_signals = signals
        reconcile_settings = ReconcileSettings(
            live.orphan_policy,
            executor.settings.risk_per_trade_usd,
            interval_s=live.reconcile_interval.seconds,
        )

        def settings_changed(file_live: LiveSettings, applied: ExecutorSettings) -> None:
            reconciler.settings = ReconcileSettings(
                file_live.orphan_policy,
                applied.risk_per_trade_usd,
                interval_s=file_live.reconcile_interval.seconds,
            )
            declare_demand()

        def declare_demand() -> None:
            declare_live_demand(
                rest,
                len(executor.trade_ids),
                executor.settings.poll_interval_s,
                reconciler.settings.interval_s,
            )

        follower = LiveConfigFollower(
            executor, live, records.current_config, config, on_change=settings_changed
        )
        self._live_follower = follower
        self._live_reload = functools.partial(self._reload_live, follower, executor)
        polling = LivePolling(
            executor,
            executor.settings.poll_interval_s,
            clock=self.exchange_clock,
            follower=follower,
            after_poll=declare_demand,
        )
        controls = self._add_live_controls(stack, db, rest, executor, follower, records)
        risk = await self._add_risk(db, rest, executor, records, controls)

        async def on_user_event(event: UserEvent) -> None:
            await polling.on_event(event)
            await risk.on_event(event)

        stream = UserStream(
            rest,
            endpoints.private_ws_url,
            on_user_event,
            session=session,
            clock=self.clock,
            health=self.health,
        )
        add = self.supervisor.add
        add(Component("live.lock", functools.partial(self._hold_lock, lock, stop), stage=40))
        add(Component("live.user-stream", stream.run, stage=0, drain=stream.request_stop))
        risk.stream_connected = lambda: stream.connected
        add(
            Component(
                "live.signals",
                functools.partial(
                    trade_signals, signals, executor, follower, SymbolLeverage(rest), risk
                ),
                stage=20,
                drain=signals.close,
            )
        )
        add(Component("live.executor", polling.run, stage=30, drain=polling.request_stop))
        reconciler = LiveReconciler(
            rest,
            records,
            reconcile_settings,
            driven=lambda: executor.trade_ids,
            clock=self.exchange_clock,
        )
        # Its own stop: at shutdown a round under way finishes (an order it placed is
        # recorded) instead of being cancelled between the placing and the recording.
        reconciler_stop = asyncio.Event()
        add(
            Component(
                "live.reconciler",
                functools.partial(reconciler.run, reconciler_stop),
                stage=30,
                drain=reconciler_stop.set,
            )
        )
        self.log.info(
            "live.started",
            environment=live.environment,
            rest_url=endpoints.rest_url,
            strategies=sorted(executor.settings.strategies),
            paused=executor.settings.paused,
            from_live_config=config is not None,
            rest_limits="shared with the collectors" if shares_limits else "its own",
            lock_session=lock.session_pid,
        )
        return True

    async def _add_risk(
        self,
        db: Database,
        rest: BinanceRest,
        executor: LiveExecutor,
        records: LiveRecords,
        controls: LiveControls,
    ) -> RiskService:
        """The risk guard (always with live trading): its state read back before the first
        signal (a restart never resets a breaker), its monitor supervised."""
        rs = self.settings.risk

        def traded() -> list[TradedStrategy]:
            strategies = self._current_strategies()
            live = executor.settings.strategies
            return [
                TradedStrategy(
                    s.name,
                    frozenset(s.symbols),
                    s.inputs,
                    max(s.windows.fast_ms, s.windows.mid_ms, s.windows.day_ms),
                )
                for s in (strategies.enabled if strategies is not None else ())
                if s.name in live
            ]

        risk = RiskService(
            rest,
            executor,
            records,
            RiskRecords(db, write_timeout_s=self.settings.database.write_timeout.seconds),
            RiskLimits.of(rs),
            strategies=traded,
            paused=lambda: executor.settings.paused,
            freshness=self.market_freshness,
            check_interval_s=rs.check_interval.seconds,
            rest_check_interval_s=rs.rest_check_interval.seconds,
            # Our own clock, as the freshness board's (the market's jumps with each
            # event's time: a sim run faster than real time would age data falsely).
            clock=self.clock,
            health=self.health,
            actions=FlattenThroughControls(controls),
        )
        await risk.load()
        self.risk = risk
        self.supervisor.add(Component("live.risk", risk.run, stage=30, drain=risk.request_stop))
        return risk

    def _live_file(self) -> LiveSettings | None:
        """The file's ``[live]`` in force (reloaded by SIGHUP), for the API."""
        return self._live_follower.live if self._live_follower is not None else None

    def _add_live_controls(
        self,
        stack: contextlib.AsyncExitStack,
        db: Database,
        rest: BinanceRest,
        executor: LiveExecutor,
        follower: LiveConfigFollower,
        records: LiveRecords,
    ) -> LiveControls:
        """Emergency controls: the API's commands in-process, the CLI's through
        ``live_commands`` (LISTEN/NOTIFY); verifications under way end with the daemon."""
        controls = LiveControls(
            rest,
            executor,
            follower,
            records,
            ControlCommands(db, write_timeout_s=self.settings.database.write_timeout.seconds),
            clock=self.clock,
        )
        self.live_controls = controls
        stack.push_async_callback(controls.stop)

        async def handle(row: CommandRow) -> None:
            await controls.execute(row.request())

        listener = CommandListener(db.url, handle)
        self.supervisor.add(Component("live.controls", listener.run, stage=0))
        return controls

    def _limits_for(self, rest_url: str) -> RestLimits:
        """The limits of the exchange at ``rest_url``'s host. Binance counts request weight
        per IP: the collectors' and the live executor's clients share one when they talk
        to the same host (production); the testnet is another exchange with its own."""
        host = _host(rest_url)
        limits = self._rest_limits.get(host)
        if limits is None:
            ex = self.settings.exchange
            groups = binance_groups(
                ex.futures_data_limit,
                ex.futures_data_window.ms,
                ex.funding_limit,
                ex.funding_window.ms,
            )
            limits = self._rest_limits[host] = RestLimits(safety=ex.weight_safety, groups=groups)
        return limits

    async def _reload_live(self, follower: LiveConfigFollower, executor: LiveExecutor) -> None:
        """SIGHUP: ``[live]`` read again and applied from the next signal (``live_config``
        still overrides its run-time part); after the engine's reload, so a strategy
        loaded by it may be named. A file that does not load, or names a strategy the
        engine does not run, is refused and the previous ``[live]`` kept."""
        if self._reread is None:
            return
        try:
            fresh = self._reread().live
        except ConfigError as exc:
            self.log.error("live.reload_failed", error=str(exc), kept="the previous [live]")
            return
        restart = [k for k in LIVE_RESTART_KEYS if getattr(fresh, k) != getattr(self._file_live, k)]
        if restart:
            self.log.warning(
                "live.reload_needs_restart",
                keys=restart,
                hint="these [live] keys apply at the next start; to stop new entries now, "
                "pause through PUT /api/live/config",
            )
        strategies = self._current_strategies()
        loaded = {s.name: s for s in strategies.enabled} if strategies is not None else {}
        unknown = [n for n in fresh.strategies if n not in loaded]
        if unknown:
            self.log.error(
                "live.reload_failed",
                error=f"live.strategies: {', '.join(unknown)} not among the loaded strategies "
                f"({', '.join(sorted(loaded)) or 'none'})",
                kept="the previous [live]",
            )
            return
        executor.set_exit_rules({name: exit_rule(s) for name, s in loaded.items()})
        follower.reload_file(fresh)

    async def _add_collection(self, stack: contextlib.AsyncExitStack, db: Database) -> None:
        """Exchange clients, collectors and the market writer, wired by channels."""
        cs = self.settings.collect
        ex = self.settings.exchange
        session = await stack.enter_async_context(aiohttp.ClientSession())
        rest = BinanceRest(
            session,
            ex.rest_url,
            api_key=ex.api_key,
            api_secret=ex.api_secret,
            recv_window_ms=ex.recv_window,
            weight_safety=ex.weight_safety,
            timeout_s=ex.request_timeout.seconds,
            forbidden_backoff_s=ex.forbidden_backoff.seconds,
            clock=self.clock,
            health=self.health,
            limits=self._limits_for(ex.rest_url),
        )
        self.rest = rest
        self.backfill = progress = BackfillProgress()
        self.listing = listing = SymbolListing(cs.symbols, health=self.health)
        # What each symbol has had delivered since start: the engine waits on it per symbol.
        readiness = Readiness(listing.configured)

        def stopped(symbol: str) -> None:
            why = next((s.reason for s in listing.skipped() if s.symbol == symbol), "")
            readiness.stop(symbol, f"not followed by the collectors: {why}".rstrip(": "))

        listing.on_stop(stopped)
        listing.on_stop(self._symbol_stopped)
        exchange_retry = RetryPolicy(
            initial_s=cs.reconnect_initial.seconds, max_s=cs.reconnect_max.seconds
        )
        refresher = ExchangeInfoRefresher(
            rest,
            listing,
            interval_s=cs.symbols_refresh_interval.seconds,
            retry=exchange_retry,
            on_time_synced=self.exchange_clock.set_offset,
        )
        market: Channel[MarketEvent] = Channel(
            "market", self.settings.runtime.channel_capacity, OverflowPolicy.BLOCK
        )
        self.channels.append(market)
        sink: Sink[MarketEvent] = market
        if self.engine_inbox is not None:
            sink = Fanout([market, self.engine_inbox])
        if self.risk is not None:
            sink = MarketTap(sink, self.market_freshness)
        async with db.pool.acquire() as conn:
            last_trades = await last_stored_trade_ids(conn, cs.symbols)
            last_indicators = await last_indicator_times(conn, cs.symbols)
        collector = MarketStreamCollector(
            cs.symbols,
            rest,
            ex.ws_url,
            sink,
            last_stored=last_trades,
            policy=CollectorPolicy(
                repair_grace_s=cs.repair_grace.seconds,
                max_backfill_ms=cs.max_backfill.ms,
                initial_backfill_ms=cs.initial_backfill.ms,
                flush_interval_s=cs.stream_flush_interval.seconds,
                streams_per_connection=cs.streams_per_connection,
                stream=StreamPolicy(
                    max_age_s=cs.max_connection_age.seconds,
                    silence_s=cs.silence_timeout.seconds,
                    reconnect=exchange_retry,
                ),
            ),
            clock=self.clock,
            exchange_clock=self.exchange_clock,
            listing=listing,
            health=self.health,
            progress=progress,
            readiness=readiness,
            on_hole=self._alert_tape_hole if self.notifier is not None else None,
        )
        pollers = IndicatorPollers(
            cs.symbols,
            rest,
            CoinbaseTicker(session, ex.coinbase_url),
            sink,
            last_known=last_indicators,
            policy=PollerPolicy(
                premium_index_interval_s=cs.premium_index_interval.seconds,
                open_interest_interval_s=cs.open_interest_interval.seconds,
                ratios_interval_s=cs.ratios_interval.seconds,
                ratio_period=cs.ratio_period,
                funding_history_interval_s=cs.funding_history_interval.seconds,
                coinbase_interval_s=cs.coinbase_interval.seconds,
                history_backfill_ms=cs.history_backfill.ms,
            ),
            clock=self.exchange_clock,
            listing=listing,
            health=self.health,
            progress=progress,
            readiness=readiness,
        )
        writer = MarketWriter(
            db.pool,
            market,
            WriterPolicy(
                batch_rows=cs.writer_batch_rows,
                flush_interval_s=cs.writer_flush_interval.seconds,
                max_buffer_rows=cs.writer_max_buffer_rows,
                write_timeout_s=self.settings.database.write_timeout.seconds,
            ),
            clock=self.clock,
        )
        self._watch_writer("writer", writer)

        add = self.supervisor.add
        # exchangeInfo (limits, time, listed symbols) first; the collectors wait for it.
        add(Component("exchange-info", refresher.run, stage=0, drain=refresher.request_stop))
        add(Component("market-stream", collector.run, stage=0, drain=collector.request_stop))
        for name, loop in (
            ("poll.premium-index", pollers.premium_index_loop),
            ("poll.open-interest", pollers.open_interest_loop),
            ("poll.ratios", pollers.ratios_loop),
            ("poll.funding", pollers.funding_history_loop),
            ("poll.coinbase", pollers.coinbase_loop),
        ):
            add(Component(name, loop, stage=0, drain=pollers.request_stop))
        continuity = ContinuityCheck(
            cs.symbols,
            rest,
            continuity_store(db),
            interval_s=cs.continuity_check_interval.seconds,
            clock=self.clock,
            listing=listing,
        )
        add(Component("continuity", continuity.run, stage=0, drain=continuity.request_stop))
        add(Component("writer", writer.run, stage=20, drain=market.close))

        if self.engine is not None:
            self.engine.set_readiness(readiness)
        self.collector = collector
        self.writer = writer

    # -- alerts ---------------------------------------------------------------

    def _add_notify(self) -> None:
        """The notifier, stopped last: what the others report while stopping is sent."""
        if self.notifier is not None:
            notifier = self.notifier
            self.supervisor.add(
                Component("notify", notifier.run, stage=90, drain=notifier.request_stop)
            )

    def _alert(self, alert: Alert) -> None:
        if self.notifier is not None:
            self.notifier.publish(alert)

    def _alert_given_up(self, component: str, error: str) -> None:
        self._alert(given_up_alert(component, error, self.clock.time_ms()))

    def _alert_tape_hole(self, symbol: str, from_id: int, to_id: int, reason: str) -> None:
        self._alert(tape_hole_alert(symbol, from_id, to_id, reason, self.clock.time_ms()))

    def _signal_sink(self) -> Sink[Signal] | None:
        """Where the engine hands fired signals of live ticks: the live executor's channel
        (if live), each also published as an alert (if signal alerts are on)."""
        if self.notifier is None or not self.settings.alerts.signals:
            return self.live_signals
        return AlertingSink(self.notifier, signal_alert, self.live_signals)

    def _live_records(self, db: Database) -> LiveRecords:
        """The live records every live part writes through: with alerts on, each
        ``live_events`` row written is also published (fills, exits, breaker, commands)."""
        write_timeout_s = self.settings.database.write_timeout.seconds
        if self.notifier is None:
            return LiveRecords(db, write_timeout_s=write_timeout_s)
        return _AlertedLiveRecords(db, self.notifier, write_timeout_s)

    # -- API view -------------------------------------------------------------

    def _tasks_view(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.supervisor.status()]

    def _degradations_view(self) -> list[dict[str, Any]]:
        return [d.as_dict() for d in self.health.current()]

    def _symbols_view(self) -> dict[str, Any] | None:
        return self.listing.view() if self.listing is not None else None

    def _backfill_view(self) -> list[dict[str, Any]] | None:
        return self.backfill.view() if self.backfill is not None else None

    def _rest_view(self) -> dict[str, Any] | None:
        return self.rest.budget_view() if self.rest is not None else None

    def _engine_view(self) -> dict[str, Any] | None:
        return self.engine.view() if self.engine is not None else None

    def _channels_view(self) -> list[dict[str, Any]]:
        return [
            {
                "name": ch.name,
                "depth": len(ch),
                "capacity": ch.capacity,
                "policy": ch.policy.value,
                "put_total": ch.put_total,
                "waits_total": ch.waits_total,
                "dropped_total": ch.dropped_total,
            }
            for ch in self.channels
        ]

    # -- lifecycle ------------------------------------------------------------

    async def run(self) -> int:
        settings = self.settings
        deadline_s = settings.runtime.shutdown_deadline.seconds
        self.log.info("daemon.starting", version=__version__)
        with handle_signals(
            on_signal=lambda name: self.log.info("daemon.signal", signal=name),
            on_stop=lambda _name: self._stop_requested(deadline_s),
            on_force=lambda name: self.hard_stop.force(f"a second signal ({name})"),
        ) as sig:
            if settings.engine.enabled:
                directory = strategies_dir(settings.engine)
                self.log.info(
                    "engine.strategies_dir",
                    path=str(directory.resolve()),
                    shipped=directory == shipped("strategies"),
                )
                # Fail fast, before anything starts: an invalid strategy set at start-up has no
                # previous set to fall back to. (StrategyError is a ConfigError: exit 2.) What
                # the exchange lists is not known yet: a configured symbol it skips is reported
                # by the collectors (and by _symbol_stopped), a reload naming it refused.
                self.strategies_at_start = load_strategy_set(directory, self.collected())
            if settings.live.enabled:
                self._check_live_strategies()
            # A URL pyarrow has no filesystem for is a configuration error: exit 2 now.
            archive = TapeArchive(settings.archive.dir) if settings.archive.dir else None
            async with contextlib.AsyncExitStack() as stack:
                if self.sim_config is not None:
                    settings = self.settings = await self._start_sim(stack)
                # Unwound after the server's own stop: a forced exit then has nothing to stop.
                stack.callback(functools.partial(setattr, self, "_embedded", None))
                try:
                    db = await stack.enter_async_context(
                        open_database(settings.database, wait=self._database_waiter(sig.stop))
                    )
                except DatabaseUnavailable:
                    if not sig.stop.is_set():
                        raise
                    self.log.info("daemon.stopped_waiting_for_database")
                    return EXIT_OK
                if db.embedded is not None:
                    self._embedded = db.embedded
                    self.hard_stop.add_last_resort(self._stop_embedded_at_once)
                # Unwound after the API has closed, before the pool's own (unbounded) close.
                stack.push_async_callback(self._close_pool, db)
                self.log.info(
                    "database.ready",
                    embedded=db.embedded is not None,
                    data_dir=str(db.embedded.data_dir) if db.embedded else None,
                    server_pid=db.embedded.pid if db.embedded else None,
                    migrations_applied=db.migrations_applied,
                )
                async with db.pool.acquire() as conn:
                    created, dropped = await maintain_partitions(
                        conn,
                        self.clock.time_ms(),
                        months_ahead=2,
                        retention_months=settings.database.trade_retention_months,
                    )
                if created or dropped:
                    self.log.info("partitions.maintained", created=created, dropped=dropped)

                self.supervisor.add(Component("partitions", lambda: self._partitions_loop(db)))
                if archive is not None:
                    self._add_sealer(db, archive)
                self._add_notify()
                self.supervisor.add(Component("reload", lambda: self._reload_loop(sig.reload)))
                if settings.live.enabled and not await self._add_live(stack, db, sig.stop):
                    self.log.info("daemon.stopped_waiting_for_exchange")
                    return EXIT_OK
                if settings.engine.enabled:
                    self._add_engine(db)
                if settings.collect.enabled:
                    await self._add_collection(stack, db)
                if self._live_reload is not None:
                    self.reload_hooks.append(self._live_reload)  # after the engine's
                for component in self.extra_components:
                    self.supervisor.add(component)

                ctx = ApiContext(
                    version=__version__,
                    started_monotonic=self.started_monotonic,
                    started_at=self.started_at,
                    db_ping=db.ping,
                    db_size=db.size_bytes,
                    tasks=self._tasks_view,
                    channels=self._channels_view,
                    degradations=self._degradations_view,
                    symbols=self._symbols_view,
                    backfill=self._backfill_view,
                    rest=self._rest_view,
                    engine=self._engine_view,
                    pool=db.pool,
                    settings=settings,
                    strategies=self._strategy_names,
                    strategy_definitions=self._strategy_definitions,
                    live_control=self.live_controls.submit if self.live_controls else None,
                    live_file=self._live_file,
                    risk=self.risk.snapshot if self.risk is not None else None,
                    admin=AdminRecords(db),
                )
                port = await stack.enter_async_context(
                    serve_http(build_app(ctx), settings.http.host, settings.http.port)
                )
                self.log.info(
                    "daemon.started", http=f"http://{settings.http.host}:{port}", pid=os.getpid()
                )
                self._alert(
                    daemon_alert(
                        "daemon.started",
                        self.clock.time_ms(),
                        version=__version__,
                        pid=os.getpid(),
                        symbols=settings.collect.symbols if settings.collect.enabled else [],
                        strategies=self._strategy_names() or [],
                        live=settings.live.environment if settings.live.enabled else "off",
                    )
                )
                code = await self._run_until_stopped(sig.stop, deadline_s, db)
                return EXIT_FAILED if self.lock_lost and code == EXIT_OK else code

    def _database_waiter(
        self, stop: asyncio.Event
    ) -> Callable[[DatabaseUnavailable, int], Awaitable[bool]]:
        """At start-up, PostgreSQL being away is waited out (a line per attempt) until a stop."""
        policy = restart_policy(self.settings)

        async def wait(exc: DatabaseUnavailable, attempt: int) -> bool:
            delay = policy.delay(attempt)
            self.log.warning(
                "database.unavailable", attempt=attempt, error=str(exc), retry_in_s=round(delay, 3)
            )
            return await self.clock.sleep(delay, stop)

        return wait

    def _stop_requested(self, deadline_s: float) -> None:
        self._stop_by = time.monotonic() + deadline_s
        self.hard_stop.arm(deadline_s + FORCE_AFTER_S)

    async def _close_pool(self, db: Database) -> None:
        """Close the pool within what is left of the deadline (keeping a second for the
        server); a connection the frozen database never lets go of is closed under it."""
        budget = 5.0 if self._stop_by is None else self._stop_by - time.monotonic() - 1.0
        try:
            await asyncio.wait_for(db.pool.close(), max(0.1, budget))
        except TimeoutError:
            db.pool.terminate()
            self.log.warning("database.pool_terminated", waited_s=round(max(0.1, budget), 3))

    def _stop_embedded_at_once(self) -> None:
        embedded = self._embedded
        if embedded is not None:
            stopped = stop_at_once(embedded)
            self.log.warning(
                "database.stopped_at_once",
                server_pid=embedded.pid,
                stopped=stopped,
                lost="open transactions (committed data is recovered at the next start)",
            )

    async def _run_until_stopped(self, stop: asyncio.Event, deadline_s: float, db: Database) -> int:
        supervised = asyncio.create_task(self.supervisor.run(), name="supervisor")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        giving_up = asyncio.create_task(self.supervisor.given_up.wait(), name="gave-up")
        try:
            await asyncio.wait(
                {supervised, stopping, giving_up}, return_when=asyncio.FIRST_COMPLETED
            )
            if giving_up.done() and not supervised.done():
                # The supervisor has stopped the others (bounded); its task group now waits
                # for every task to end, which one that ignores its cancellation never does.
                await asyncio.wait({supervised}, timeout=2 * CANCEL_GRACE_S)
            if supervised.done():
                supervised.result()  # raises TooManyRestarts when the supervisor gave up
                return EXIT_OK
            if giving_up.done():
                self.left_behind = self.supervisor.unresponsive()
                self.log.error(
                    "daemon.abandoned",
                    components=self.left_behind,
                    still_running=self.left_behind,
                    note="a component gave up; these ignored their cancellation",
                )
                assert self.supervisor.gave_up is not None
                raise self.supervisor.gave_up
            self.log.info("daemon.stopping", deadline_s=deadline_s)
            self._alert(daemon_alert("daemon.stopping", self.clock.time_ms()))
            started = time.monotonic()
            # Leave a quarter of the budget for closing the API, the pool and the server.
            late = await self.supervisor.stop(max(0.0, deadline_s * 0.75 - CANCEL_GRACE_S))
            self.left_behind = self.supervisor.unresponsive()
            if not self.left_behind:
                # Every component has ended: the supervisor's task group follows at once.
                await asyncio.wait({supervised}, timeout=CANCEL_GRACE_S)
            if late:
                self.log.error(
                    "daemon.abandoned",
                    components=late,
                    still_running=self.left_behind,
                    deadline_s=deadline_s,
                    note="cancelled at the shutdown deadline; still_running ignored it",
                )
            if self.left_behind:
                # They may hold connections the pool would wait for: close them under them.
                db.pool.terminate()
            self.log.info(
                "daemon.components_stopped", elapsed_s=round(time.monotonic() - started, 3)
            )
            if any(writer.unwritten for writer in self.writers):
                code = EXIT_ROWS_NOT_WRITTEN
            else:
                code = EXIT_ABANDONED if late else EXIT_OK
            if code != EXIT_OK:
                self.hard_stop.code = code  # what a forced exit after this reports too
            return code
        finally:
            for task in (giving_up, stopping, supervised):
                if not task.done():
                    task.cancel()
                    # Bounded: a component that ignores cancellation keeps the group open.
                    await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
                if task.done() and not task.cancelled():
                    task.exception()  # raised above already, or moot once stopping


class _AlertedLiveRecords(LiveRecords):
    """``LiveRecords`` whose ``append_event`` publishes the row once it is written (a write
    retried after an outage is published once, when it succeeds)."""

    def __init__(self, db: Database, notifier: Notifier, write_timeout_s: float) -> None:
        super().__init__(db, write_timeout_s=write_timeout_s)
        self._notifier = notifier

    async def append_event(self, event: LiveEventRow) -> None:
        await super().append_event(event)
        publish_live_event(self._notifier, event)


def _host(url: str) -> str:
    """Host and port: what one set of exchange limits belongs to."""
    return urllib.parse.urlsplit(url).netloc.lower()


def engine_store(db: Database) -> EngineStore:
    """What the engine reads of the database: its restart state and the stored history."""
    records = EngineRecords(db)
    return EngineStore(
        records.last_evaluated,
        records.last_fired,
        records.open_paper,
        functools.partial(_replay_stored, db),
    )


async def _replay_stored(
    db: Database, target: ReplayTarget, symbols: Sequence[str], from_ms: int, to_ms: int
) -> ReplayStats:
    async with db.acquire() as conn:
        return await replay_history(target, conn, symbols, from_ms, to_ms)


def continuity_store(db: Database) -> ContinuityStore:
    records = ContinuityRecords(db)
    return ContinuityStore(
        records.find_holes,
        records.known_holes,
        records.first_id_since,
        records.save,
        records.refresh_daily,
        records.settle_gaps,
        records.recount_rows,
    )


async def run_daemon(
    settings: Settings,
    sim: SimConfig | None = None,
    components: Sequence[Component] = (),
    reread: Callable[[], Settings] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; ``sim`` (a SimConfig) runs the simulated exchange inside;
    ``reread`` reads the settings again at SIGHUP (their ``[live]`` part is applied)."""
    daemon = Daemon(settings, sim=sim, components=components, reread=reread)
    try:
        code = await daemon.run()
    except TooManyRestarts as exc:
        # One line naming the component and the real cause (never "ExceptionGroup …").
        daemon.log.error(
            "daemon.giving_up", reason=str(exc), task=exc.component, error=exc.last_error
        )
        code = EXIT_FAILED
    daemon.log.info("daemon.stopped", exit_code=code)
    if daemon.left_behind:
        # The interpreter's teardown would wait for them for ever: exit without it.
        daemon.hard_stop.exit_now(code)
    return code
