"""The engine service: the thin async shell around the signal pipeline in the daemon.

Start-up (warm start): load the strategy set; restore each strategy's cooldown
and the open paper positions from the store; then replay stored history from
26 h before the first tick to evaluate — which is the tick after the last one
stored (so ticks missed while the daemon was down are evaluated too, exactly as
a backtest would) — into the very pipeline that then runs live. Stored trades
from a symbol's first tick to evaluate on are held with its live ones: the
catch-up ticks are evaluated once the symbol's history is in.

Readiness (``readiness.py``): a symbol is evaluated only once the collectors
have delivered the history its strategies read (its tape caught up over REST,
the first round of each indicator series); until then its trades are held and
its ticks are not due, however long that takes, and the reason is shown in
``/api/server`` and ``/api/signals/latest``. Other symbols do not wait for it.

Live: take market events from the engine's channel as they come, drain all
that is queued, apply every non-trade event at once and each trade of a ready
symbol once it is ``settle`` old on the exchange clock (``settle.py``: so every event before a
tick is applied before the tick is evaluated, as in a backtest), then apply
the wall-clock rule, and hand evaluations, signals and paper-trade changes to
the output channel for the signal writer. Events that still come after a tick
they belong to was evaluated are counted and logged (``engine.late_trade``,
``engine.late_event``).

Fired signals for trading (``signals``, the live executor's channel): only those of
ticks at or after the exchange's time when the warm start began (``live_from_ms``).
A tick before it was missed while the daemon was down and is evaluated now only to
catch the records up (from the warm start's replay or from the trades held for it);
its market has moved on, so it is stored and paper-traded as a backtest would, never
traded live. The engine never waits for the executor: the channel drops its oldest
signal when full (counted in ``/api/server`` channels).

Reload (SIGHUP): the strategy directory is validated as a whole; an invalid
set is rejected and the old one kept (``strategies.reload_failed``), an
unchanged one changes nothing, a changed one applies from the next tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from arbengine.domain.engine_rows import EngineOutput as EngineOutput
from arbengine.domain.engine_rows import PaperTradeRow
from arbengine.domain.events import Signal
from arbengine.domain.market import (
    PREMIUM_INDEX_INPUT,
    Indicator,
    Liquidation,
    MarketEvent,
    RateSnapshot,
    TradeBatch,
)
from arbengine.logs import get_logger
from arbengine.pipeline.readiness import SymbolGate
from arbengine.pipeline.records import (
    evaluation_row,
    paper_row,
    position_from_row,
    signal_row,
)
from arbengine.pipeline.replay import ReplayStats, ReplayTarget
from arbengine.pipeline.settle import TradeHold
from arbengine.pipeline.signal_pipeline import PipelineOutput, SignalPipeline
from arbengine.runtime.channels import Channel, ChannelClosed, Sink
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.delivered_inputs import Readiness
from arbengine.signals import (
    Collected,
    StrategyError,
    StrategySet,
    load_strategy_set,
)

HORIZON_MS = 26 * 3_600_000

EVALUATIONS = Counter("arb_engine_evaluations", "Strategy evaluations", ["strategy"])
SIGNALS = Counter("arb_engine_signals", "Signals fired", ["strategy", "symbol"])
LATE_TRADES = Counter("arb_engine_late_trades", "Trades that arrived after their tick")
LATE_EVENTS = Counter(
    "arb_engine_late_events",
    "Liquidations and indicator values that arrived after a tick they belong to",
    ["kind"],
)
HELD_TRADES = Gauge(
    "arb_engine_held_trades", "Trades waiting to be settle old, or for their symbol's history"
)
WAITING_SYMBOLS = Gauge(
    "arb_engine_symbols_waiting", "Symbols not evaluated yet: their history is not in"
)
WAITING_REMINDER_S = 60.0
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
class EngineStore:
    """What the engine needs of the database, as functions (the app binds them)."""

    last_evaluated: Callable[[], Awaitable[dict[tuple[str, str], int]]]
    last_fired: Callable[[], Awaitable[dict[tuple[str, str], int]]]
    open_paper: Callable[[], Awaitable[list[PaperTradeRow]]]
    replay: Callable[[ReplayTarget, Sequence[str], int, int], Awaitable[ReplayStats]]


@dataclass
class WarmStartFeed:
    """The warm start's replay target.

    History before each symbol's first tick to evaluate goes into the pipeline at once.
    Its stored trades from that tick on wait in the hold, ahead of the live ones, so the
    catch-up ticks are evaluated once the symbol's history is in: with what the collectors
    fetch after the start (the tape since the last stored trade, each indicator series
    since its last stored value), as a backtest over the store will have it.
    """

    pipeline: SignalPipeline
    hold: TradeHold

    def on_event(self, event: MarketEvent) -> None:
        self.pipeline.on_event(event)

    def on_rate_columns(
        self, symbol: str, known_ms: list[int], funding_rate: list[float], index: list[float]
    ) -> None:
        self.pipeline.on_rate_columns(symbol, known_ms, funding_rate, index)

    def on_trades(self, trades: TradeBatch) -> None:
        start = self.pipeline.next_tick(trades.symbol)
        n = len(trades)
        cut = n if start is None else int(np.searchsorted(trades.ts, start, side="left"))
        if cut:
            self.pipeline.on_trades(trades if cut == n else trades.take(slice(0, cut)))
        if cut < n:
            self.hold.add(trades.take(slice(cut, n)))


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
        readiness: Readiness | None = None,
        wall: Callable[[], float] = time.time,
        collected: Callable[[], Collected] | None = None,
        signals: Sink[Signal] | None = None,
    ) -> None:
        """``signals``: where fired signals of live ticks go (the live executor's channel)."""
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
        self._log = get_logger("engine")
        self.pipeline: SignalPipeline | None = None
        self._pending_set: StrategySet | None = None
        self._late_events: dict[str, int] = {}
        self.ready = asyncio.Event()
        self.gate = SymbolGate(readiness, wall=wall)
        """Which symbols may be evaluated (their history is in), and what the others wait for."""
        self._wall = wall
        self._started = wall()
        self._all_ready = False
        self._reminded: float | None = None
        self._collected = collected
        self._signals = signals
        self.live_from_ms: int | None = None
        """The exchange's time when the warm start began: a tick before it is catch-up."""
        """The symbols collected now: a reloaded set naming any other is refused. (The set
        loaded at start was checked against ``[collect] symbols`` before anything ran.)"""

    @property
    def held_trades(self) -> int:
        """Trades received but not yet applied (settling, or waiting for their history)."""
        return self._hold.count

    def set_readiness(self, readiness: Readiness) -> None:
        """The collectors' board of delivered history (wired after the engine is built).
        Without one, nothing is waited for."""
        self.gate.set_board(readiness)

    def view(self) -> dict[str, Any]:
        """What ``/api/server`` shows: per symbol, ready or what it waits for (and since)."""
        states = self.gate.states()
        return {
            "ready": sum(s.state != "waiting" for s in states),
            "waiting": sum(s.state == "waiting" for s in states),
            "held_trades": self._hold.count,
            "symbols": [{**s.as_dict(), "held_trades": self._hold.held(s.symbol)} for s in states],
        }

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
        hold = self._hold
        self._check_readiness()
        while True:
            try:
                # (asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives with the result, and the stop would wait for the hard bound.)
                async with asyncio.timeout(0.25):
                    events = await self._inbox.get_many(4096)
            except TimeoutError:
                events = []
            except ChannelClosed:
                # Nothing more is coming: a ready symbol's trades are all applied. A symbol
                # still waiting for its history stays unevaluated; the next start catches its
                # ticks up from the store.
                self._check_readiness()
                for trades in hold.release(None, self.gate.ready):
                    self.pipeline.on_trades(trades)
                await self._emit()
                return
            started = time.perf_counter()
            self._apply_pending_strategies()
            pipeline = self.pipeline
            evaluated = self.gate.symbols
            while events:
                for event in events:
                    if isinstance(event, TradeBatch):
                        # Only the strategies' symbols: the trades of the others the
                        # collectors follow would never be released.
                        if event.symbol in evaluated:
                            hold.add(event)
                        continue
                    self._note_if_late(event)
                    pipeline.on_event(event)
                events = self._inbox.get_nowait_many(4096)
            # After taking everything queued: a symbol seen ready here has had its history
            # (delivered to the channel before it was marked) taken in above.
            self._check_readiness()
            ready = self.gate.ready
            now = self._clock.time_ms()
            for trades in hold.release(now, ready):
                pipeline.on_trades(trades)
            pipeline.on_wall_clock(now, ready)
            HELD_TRADES.set(hold.count)
            TICK_SECONDS.observe(time.perf_counter() - started)
            await self._emit()

    def _check_readiness(self) -> None:
        """Take in what the collectors delivered; say which symbols became ready, and now and
        then which still wait."""
        gate = self.gate
        for symbol in gate.update():
            state = gate.state(symbol)
            assert state is not None
            self._log.info(
                "engine.symbol_ready",
                symbol=symbol,
                state=state.state,
                waited_s=round(state.since - self._started, 3),
                held_trades=self._hold.held(symbol),
                note=state.note,
            )
        waiting = gate.waiting
        WAITING_SYMBOLS.set(len(waiting))
        if not waiting:
            if not self._all_ready and gate.states():
                self._all_ready = True
                self._log.info(
                    "engine.collectors_ready",
                    symbols=len(gate.states()),
                    waited_s=round(self._wall() - self._started, 3),
                )
            return
        self._all_ready = False
        now = self._wall()
        if self._reminded is None or now - self._reminded >= WAITING_REMINDER_S:
            self._reminded = now
            self._log.info(
                "engine.symbols_waiting",
                waiting=len(waiting),
                ready=len(gate.ready),
                symbols={s.symbol: list(s.waiting_for) for s in waiting[:20]},
                note="not evaluated until their history is in; see /api/server",
            )

    def _note_if_late(self, event: MarketEvent) -> None:
        """Count a value that comes after a tick it belongs to was evaluated (live only).

        Only a value the symbol's strategies read can be late (a series nobody reads, such
        as the rest of a ratio history still coming in, changes no evaluation), and only
        for a symbol being evaluated (one waiting for its history has no tick done)."""
        assert self.pipeline is not None
        if event.symbol not in self.gate.ready:
            return
        if isinstance(event, Liquidation):
            kind, visible = "liquidation", event.ts
        elif isinstance(event, Indicator):
            kind, visible = event.kind, event.known_at
        elif isinstance(event, RateSnapshot):
            kind, visible = PREMIUM_INDEX_INPUT, event.visible_at
        else:
            return
        if kind != "liquidation" and not self.gate.reads(event.symbol, kind):
            return
        if self.pipeline.evaluated_after(event.symbol, visible):
            LATE_EVENTS.labels(kind).inc()
            self._late_events[kind] = self._late_events.get(kind, 0) + 1

    def _apply_pending_strategies(self) -> None:
        if self._pending_set is None or self.pipeline is None:
            return
        new, self._pending_set = self._pending_set, None
        added = self.pipeline.replace_strategies(new)
        self.gate.set_strategies(new)
        self._hold.keep_only(self.gate.symbols)  # a symbol dropped is not evaluated any more
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
        if live and self._signals is not None:
            await self._hand_over_signals(out)
        self.pipeline.book.forget_settled()  # stored above; the daemon runs for ever

    async def _hand_over_signals(self, out: PipelineOutput) -> None:
        """Fired signals of live ticks to the ``signals`` sink; catch-up ones are logged."""
        assert self._signals is not None
        assert self.live_from_ms is not None
        for e in out.evaluations:
            if not e.fired:
                continue
            if e.tick_ms < self.live_from_ms:
                self._log.info(
                    "engine.signal_not_live",
                    strategy=e.strategy,
                    symbol=e.symbol,
                    tick=e.tick_ms,
                    live_from=self.live_from_ms,
                    reason="catch-up tick (missed while the daemon was down)",
                )
                continue
            await self._signals.put(e.to_signal())

    async def _warm_start(self) -> None:
        strategies = self.load_strategies()
        pipeline = SignalPipeline(strategies, grace_ms=self.grace_ms)
        self.gate.set_strategies(strategies)
        now = self._clock.time_ms()
        self.live_from_ms = now
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
        feed = WarmStartFeed(pipeline, self._hold)
        stats = await self._store.replay(feed, symbols, first - HORIZON_MS, now)
        self.pipeline = pipeline
        caught_up = pipeline.drain()  # paper positions restored and walked up to their ticks
        self._log.info(
            "engine.warm_start",
            strategies=sorted(_hashes(strategies)),
            symbols=symbols,
            from_ms=first - HORIZON_MS,
            to_ms=now,
            trades=stats.trades,
            catch_up_trades=self._hold.count,
            restored_positions=len(positions),
            open_positions=len(pipeline.book.open),
            seconds=round(time.perf_counter() - began, 3),
        )
        await self._emit(caught_up)


def _hashes(strategies: StrategySet) -> dict[str, str]:
    return {s.name: s.hash for s in strategies}
