"""The engine service: the thin async shell around the signal pipeline in the daemon.

Start-up (warm start): load the strategy set; restore each strategy's cooldown
and the open paper positions from the store; then replay stored history from
26 h before the first tick to evaluate — which is the tick after the last one
stored (so ticks missed while the daemon was down are evaluated now, exactly as
a backtest would) — through the very pipeline that then runs live.

Live: take market events from the engine's channel as they come, drain all
that is queued, apply every non-trade event at once and each trade once it is
``settle`` old on the exchange clock (``settle.py``: so every event before a
tick is applied before the tick is evaluated, as in a backtest), then apply
the wall-clock rule, and hand evaluations, signals and paper-trade changes to
the output channel for the signal writer. Events that still come after a tick
they belong to was evaluated are counted and logged (``engine.late_trade``,
``engine.late_event``).

Reload (SIGHUP): the strategy directory is validated as a whole; an invalid
set is rejected and the old one kept (``strategies.reload_failed``), an
unchanged one changes nothing, a changed one applies from the next tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

from arbengine.domain.market import Indicator, Liquidation, MarketEvent, RateSnapshot, TradeBatch
from arbengine.pipeline.core import PipelineOutput, SignalPipeline
from arbengine.pipeline.records import (
    evaluation_row,
    paper_row,
    position_from_row,
    signal_row,
)
from arbengine.pipeline.settle import TradeHold
from arbengine.runtime.channels import Channel, ChannelClosed
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.signals import Collected, StrategyError, StrategySet, load_strategy_set

HORIZON_MS = 26 * 3_600_000

EVALUATIONS = Counter("arb_engine_evaluations", "Strategy evaluations", ["strategy"])
SIGNALS = Counter("arb_engine_signals", "Signals fired", ["strategy", "symbol"])
LATE_TRADES = Counter("arb_engine_late_trades", "Trades that arrived after their tick")
LATE_EVENTS = Counter(
    "arb_engine_late_events",
    "Liquidations and indicator values that arrived after a tick they belong to",
    ["kind"],
)
HELD_TRADES = Gauge("arb_engine_held_trades", "Trades waiting to be settle old")
TICK_SECONDS = Histogram(
    "arb_engine_batch_seconds", "Time to apply one batch of market events",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)  # fmt: skip
TICK_DELAY = Histogram(
    "arb_engine_tick_delay_seconds",
    "How long after its time a tick was evaluated live, on the exchange clock",
    buckets=(0.5, 1.0, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0, 60.0),
)  # settle (1.5 s) and grace (2 s) are the floor; more is the engine falling behind
OPEN_POSITIONS = Gauge("arb_paper_open_positions", "Open paper positions")


@dataclass(frozen=True)
class EngineOutput:
    """One batch of rows for the signal writer."""

    evaluations: list[tuple[Any, ...]] = field(default_factory=list)
    signals: list[tuple[Any, ...]] = field(default_factory=list)
    paper: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EngineStore:
    """What the engine needs of the database, as functions (the app binds them)."""

    last_evaluated: Callable[[], Awaitable[dict[tuple[str, str], int]]]
    last_fired: Callable[[], Awaitable[dict[tuple[str, str], int]]]
    open_paper: Callable[[], Awaitable[list[dict[str, Any]]]]
    replay: Callable[[SignalPipeline, Sequence[str], int, int], Awaitable[Any]]


def to_output(out: PipelineOutput) -> EngineOutput:
    return EngineOutput(
        evaluations=[evaluation_row(e) for e in out.evaluations],
        signals=[signal_row(e) for e in out.evaluations if e.fired],
        paper=[paper_row(p) for p in out.positions.values()],
    )


class EngineService:
    def __init__(
        self,
        strategies_dir: Path,
        inbox: Channel[MarketEvent],
        outbox: Channel[EngineOutput],
        store: EngineStore,
        *,
        grace_ms: int = 2_000,
        settle_ms: int = 1_500,
        max_catch_up_ms: int = 24 * 3_600_000,
        clock: Clock | None = None,
        collectors_ready: Callable[[], Awaitable[None]] | None = None,
        ready_timeout_s: float = 120.0,
        collected: Callable[[], Collected] | None = None,
    ) -> None:
        self.strategies_dir = strategies_dir
        self._inbox = inbox
        self._outbox = outbox
        self._store = store
        if settle_ms > grace_ms:
            raise ValueError(
                "settle must not exceed grace (a tick due by the clock would "
                "miss trades still settling)"
            )
        self.grace_ms = grace_ms
        self.max_catch_up_ms = max_catch_up_ms
        self._hold = TradeHold(settle_ms)
        self._clock = clock or SystemClock()
        """The exchange's clock: ticks and settling are judged on it."""
        self._log = structlog.get_logger("engine").bind(component="engine")
        self.pipeline: SignalPipeline | None = None
        self._pending_set: StrategySet | None = None
        self._late_events: dict[str, int] = {}
        self.ready = asyncio.Event()
        self._collectors_ready = collectors_ready
        self.ready_timeout_s = ready_timeout_s
        self._collected = collected
        """The symbols collected now: a reloaded set naming any other is refused. (The set
        loaded at start was checked against ``[collect] symbols`` before anything ran.)"""

    @property
    def held_trades(self) -> int:
        """Trades received but not yet applied (settling, or waiting for the collectors)."""
        return self._hold.count

    def set_collectors_ready(self, ready: Callable[[], Awaitable[None]]) -> None:
        """The collectors' readiness (wired after the engine is built)."""
        self._collectors_ready = ready

    # -- strategies ----------------------------------------------------------------

    def load_strategies(self, collected: Collected | None = None) -> StrategySet:
        """The validated set in the directory (raises StrategyError listing every problem)."""
        return load_strategy_set(self.strategies_dir, collected)

    def reload(self) -> bool:
        """SIGHUP: validate the whole directory; apply it from the next tick if it changed."""
        try:
            new = self.load_strategies(self._collected() if self._collected else None)
        except StrategyError as exc:
            self._log.error(
                "strategies.reload_failed", problems=list(exc.problems), kept="previous set"
            )
            return False
        current = self._pending_set or (self.pipeline.core.strategies if self.pipeline else None)
        if current is not None and _hashes(current) == _hashes(new):
            self._log.info("strategies.unchanged", strategies=sorted(_hashes(new)))
            return True
        self._pending_set = new
        self._log.info("strategies.reloaded", strategies=_hashes(new), applies="next tick")
        return True

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        if self.pipeline is None:
            await self._warm_start()
        assert self.pipeline is not None
        self.ready.set()
        # Until the collectors have caught up (tape over REST, indicator history), trades are
        # held back: a tick evaluated before then would lack data a backtest would have.
        gate = (
            None
            if self._collectors_ready is None
            else asyncio.create_task(self._wait_for_collectors(), name="engine:collectors")
        )
        hold = self._hold
        try:
            while True:
                try:
                    events = await asyncio.wait_for(self._inbox.get_many(4096), timeout=0.25)
                except TimeoutError:
                    events = []
                except ChannelClosed:
                    for batch in hold.release(None):
                        self.pipeline.on_event(batch)
                    await self._emit()
                    return
                started = time.perf_counter()
                self._apply_pending_strategies()
                pipeline = self.pipeline
                while events:
                    for event in events:
                        if isinstance(event, TradeBatch):
                            hold.add(event)
                            continue
                        if gate is None:
                            self._note_if_late(event)
                        pipeline.on_event(event)
                    events = self._inbox.get_nowait_many(4096)
                if gate is not None and gate.done():
                    gate = None
                if gate is None:
                    now = self._clock.time_ms()
                    for batch in hold.release(now):
                        pipeline.on_event(batch)
                    pipeline.on_wall_clock(now)
                HELD_TRADES.set(hold.count)
                TICK_SECONDS.observe(time.perf_counter() - started)
                await self._emit()
        finally:
            if gate is not None:
                gate.cancel()

    def _note_if_late(self, event: MarketEvent) -> None:
        """Count a value that comes after a tick it belongs to was evaluated (live only)."""
        assert self.pipeline is not None
        if isinstance(event, Liquidation):
            kind, visible = "liquidation", event.ts
        elif isinstance(event, Indicator):
            kind, visible = event.kind, event.known_at
        elif isinstance(event, RateSnapshot):
            kind, visible = "premium_index", event.visible_at
        else:
            return
        if self.pipeline.evaluated_after(event.symbol, visible):
            LATE_EVENTS.labels(kind).inc()
            self._late_events[kind] = self._late_events.get(kind, 0) + 1

    async def _wait_for_collectors(self) -> None:
        assert self._collectors_ready is not None
        try:
            await asyncio.wait_for(self._collectors_ready(), self.ready_timeout_s)
            self._log.info("engine.collectors_ready")
        except TimeoutError:
            self._log.warning(
                "engine.collectors_not_ready",
                waited_s=self.ready_timeout_s,
                note="evaluating anyway; early ticks may lack history",
            )

    def _apply_pending_strategies(self) -> None:
        if self._pending_set is None or self.pipeline is None:
            return
        new, self._pending_set = self._pending_set, None
        added = self.pipeline.replace_strategies(new)
        if added:
            # New symbols start at the next tick; their history fills in from the tape.
            self.pipeline.start_ticks_at(self._clock.time_ms(), added)
            self._log.warning(
                "strategies.new_symbols",
                symbols=sorted(added),
                note="evaluated from the next tick; features fill as history accumulates",
            )

    async def _emit(self, out: PipelineOutput | None = None) -> None:
        """Hand over what the pipeline produced (``out``: the warm start's catch-up)."""
        assert self.pipeline is not None
        live = out is None
        if out is None:
            out = self.pipeline.drain()
        if self._late_events:
            late, self._late_events = self._late_events, {}
            self._log.warning("engine.late_event", **late)
        if not out:
            return
        now = self._clock.time_ms()
        for e in out.evaluations:
            EVALUATIONS.labels(e.strategy).inc()
            if live:
                TICK_DELAY.observe(max(0, now - e.tick_ms) / 1000)
            if e.fired:
                SIGNALS.labels(e.strategy, e.symbol).inc()
                self._log.info(
                    "engine.signal",
                    strategy=e.strategy,
                    symbol=e.symbol,
                    tick=e.tick_ms,
                    direction=e.direction,
                    score=round(e.score or 0.0, 3),
                    coverage=round(e.coverage, 3),
                    contributions={k: round(v, 4) for k, v in e.contributions.items()},
                )
        if out.late_trades:
            LATE_TRADES.inc(out.late_trades)
            self._log.warning("engine.late_trade", trades=out.late_trades)
        OPEN_POSITIONS.set(len(self.pipeline.book.open))
        await self._outbox.put(to_output(out))
        self.pipeline.book.forget_settled()  # stored above; the daemon runs for ever

    async def _warm_start(self) -> None:
        strategies = self.load_strategies()
        pipeline = SignalPipeline(strategies, grace_ms=self.grace_ms)
        now = self._clock.time_ms()
        last_evaluated = await self._store.last_evaluated()
        for (strategy, symbol), tick in (await self._store.last_fired()).items():
            pipeline.core.restore_last_fired(strategy, symbol, tick)
        positions = [position_from_row(r) for r in await self._store.open_paper()]
        pipeline.book.restore(positions)
        symbols = sorted(pipeline.core.symbols)
        starts: dict[str, int] = {}
        for symbol in symbols:
            done = [
                tick
                for (strategy, sym), tick in last_evaluated.items()
                if sym == symbol and strategy in strategies.names
            ]
            # After the last stored tick (ticks missed while down are evaluated now), but
            # never reaching back further than max_catch_up.
            start = max(done) + 1 if done else now
            starts[symbol] = max(start, now - self.max_catch_up_ms)
            pipeline.start_ticks_at(starts[symbol], [symbol])
        began = time.perf_counter()
        first = min(starts.values(), default=now)
        stats = await self._store.replay(pipeline, symbols, first - HORIZON_MS, now)
        self.pipeline = pipeline
        caught_up = pipeline.drain()
        self._log.info(
            "engine.warm_start",
            strategies=sorted(_hashes(strategies)),
            symbols=symbols,
            from_ms=first - HORIZON_MS,
            to_ms=now,
            trades=getattr(stats, "trades", None),
            catch_up_evaluations=len(caught_up.evaluations),
            open_positions=len(pipeline.book.open),
            seconds=round(time.perf_counter() - began, 3),
        )
        await self._emit(caught_up)


def _hashes(strategies: StrategySet) -> dict[str, str]:
    return {s.name: s.hash for s in strategies}
