"""The engine waits per symbol for the history its strategies read: a symbol whose history is
in is evaluated on time while another still waits; the waiting one is evaluated once its
history is in, from its held trades, exactly as a backtest of every event would; catch-up
ticks of the warm start wait the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from arbengine.domain.market import Indicator, MarketEvent, TradeBatch
from arbengine.pipeline.replay import ReplayStats, ReplayTarget
from arbengine.pipeline.service import EngineOutput, EngineService, EngineStore
from arbengine.pipeline.signal_pipeline import SignalPipeline
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.runtime.delivered_inputs import Readiness
from arbengine.signals import StrategySet, parse_strategy
from tests.e2e.engine.conftest import write_strategy
from tests.support.waiting import eventually

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, a tick
TICK = T0 + 15_000
AAA, BBB = "AAAUSDT", "BBBUSDT"

STRATEGY = {
    "name": "two",
    "symbols": [AAA, BBB],
    "tick": "15s",
    "windows": {"fast": "5m", "mid": "20m", "day": "1h"},
    "max_staleness": "1h",
    "direction": {"feature": "flow_fast", "min": 0.0},
    "factors": [
        {"feature": "flow_fast", "weight": 1, "full": 0.5},
        {"feature": "ls_global", "weight": 1, "full": 0.3},
    ],
    "entry": {"threshold": 100},
    "exit": {"sl_atr": 1.0},
    "paper": {"enabled": False},
}


def trades(symbol: str, first_id: int, *times: int) -> TradeBatch:
    ids = list(range(first_id, first_id + len(times)))
    n = len(times)
    prices = [100.0 + i % 3 for i in range(n)]
    makers = [i % 2 == 0 for i in range(n)]
    return TradeBatch.of(symbol, ids, list(times), prices, [1.0 + i for i in range(n)], ids, ids,
                         makers)  # fmt: skip


def ls_global(symbol: str, known_at: int, value: float) -> Indicator:
    """A global long/short ratio value, fetched as history: known at its period's end."""
    return Indicator(symbol, "ls_global", known_at - 300_000, known_at, value)


def late_trades() -> float:
    return REGISTRY.get_sample_value("arb_engine_late_trades_total") or 0.0


def late_events() -> float:
    return REGISTRY.get_sample_value("arb_engine_late_events_total", {"kind": "ls_global"}) or 0.0


@dataclass
class Store:
    """The engine's store seam: what a restart finds in the database."""

    last_ticks: dict[tuple[str, str], int] = field(default_factory=dict)
    history: list[MarketEvent] = field(default_factory=list)

    def engine_store(self) -> EngineStore:
        async def last_evaluated() -> dict[tuple[str, str], int]:
            return dict(self.last_ticks)

        async def last_fired() -> dict[tuple[str, str], int]:
            return {}

        async def open_paper() -> list[dict[str, Any]]:
            return []

        async def replay(
            target: ReplayTarget, symbols: Sequence[str], from_ms: int, to_ms: int
        ) -> ReplayStats:
            for event in self.history:  # as replay_history: other events first, then trades
                if not isinstance(event, TradeBatch):
                    target.on_event(event)
            for event in self.history:
                if isinstance(event, TradeBatch):
                    target.on_trades(event)
            return ReplayStats()

        return EngineStore(last_evaluated, last_fired, open_paper, replay)


@dataclass
class Engine:
    service: EngineService
    inbox: Channel[MarketEvent]
    clock: ManualClock
    board: Readiness
    evaluations: dict[tuple[str, int], tuple[Any, ...]]

    def put(self, *events: MarketEvent) -> None:
        for event in events:
            assert self.inbox.put_nowait(event)

    async def evaluated(self, symbol: str, tick: int) -> dict[str, float]:
        """The features of ``symbol`` at ``tick`` once the engine has evaluated it."""
        for _ in range(2000):
            if (symbol, tick) in self.evaluations:
                return dict(self.evaluations[(symbol, tick)].features)
            await asyncio.sleep(0.005)
        raise AssertionError(f"{symbol} was not evaluated at {tick}")

    def ticks_of(self, symbol: str) -> list[int]:
        return sorted(t for s, t in self.evaluations if s == symbol)


async def start_engine(
    tmp_path: Path, store: Store, now_ms: int
) -> tuple[Engine, Channel[EngineOutput], asyncio.Task, asyncio.Task]:
    write_strategy(tmp_path, STRATEGY, "two.json")
    inbox: Channel[MarketEvent] = Channel("engine", 1000, OverflowPolicy.BLOCK)
    outbox: Channel[EngineOutput] = Channel("engine-out", 1000, OverflowPolicy.BLOCK)
    clock = ManualClock(now_ms)
    board = Readiness([AAA, BBB])
    service = EngineService(tmp_path, inbox, outbox, store.engine_store(), grace_ms=2_000,
                            settle_ms=1_500, clock=clock, readiness=board)  # fmt: skip
    evaluations: dict[tuple[str, int], tuple[Any, ...]] = {}

    async def collect() -> None:
        async for out in outbox:
            for row in out.evaluations:
                assert (row.symbol, row.tick) not in evaluations, "a tick evaluated twice"
                evaluations[(row.symbol, row.tick)] = row

    engine = Engine(service, inbox, clock, board, evaluations)
    running = asyncio.create_task(service.run())
    collecting = asyncio.create_task(collect())
    await asyncio.wait_for(service.ready.wait(), 10)
    return engine, outbox, running, collecting


@dataclass
class Engines:
    directory: Path
    started: list[tuple[Engine, Channel[EngineOutput], asyncio.Task, asyncio.Task]] = field(
        default_factory=list
    )

    async def start(self, store: Store, now_ms: int) -> Engine:
        self.started.append(await start_engine(self.directory, store, now_ms))
        return self.started[-1][0]


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[Engines]:
    """Engines started by a test; each is stopped at the end."""
    engines = Engines(tmp_path)
    yield engines
    for engine, outbox, running, collecting in engines.started:
        engine.inbox.close()
        await asyncio.wait_for(running, 10)
        outbox.close()
        await asyncio.wait_for(collecting, 10)


def reference(events: Sequence[MarketEvent], symbol: str, tick: int) -> dict[str, float]:
    """The features a backtest computes: every event of the store, then the run's end."""
    pipeline = SignalPipeline(StrategySet((parse_strategy(STRATEGY),)))
    pipeline.start_ticks_at(tick, [symbol])
    for event in events:
        if not isinstance(event, TradeBatch):
            pipeline.on_event(event)
    for event in events:
        if isinstance(event, TradeBatch):
            pipeline.on_event(event)
    pipeline.finish(tick + 1)
    (evaluation,) = [
        e for e in pipeline.drain().evaluations if e.tick_ms == tick and e.symbol == symbol
    ]
    return evaluation.features.as_dict()


async def test_a_symbol_waiting_for_its_history_does_not_hold_back_another(
    engines: Engines,
) -> None:
    engine = await engines.start(Store(), T0 + 1)
    late, late_values = late_trades(), late_events()
    a_before, a_after = trades(AAA, 1, T0 + 2_000, T0 + 9_000), trades(AAA, 3, TICK + 100)
    b_before, b_after = trades(BBB, 1, T0 + 3_000, T0 + 8_000), trades(BBB, 3, TICK + 200)
    a_ratio = ls_global(AAA, T0 - 60_000, 1.2)
    engine.put(a_ratio)
    engine.board.done_all([AAA, BBB], "tape")
    engine.board.done(AAA, "ls_global")  # AAA's ratio history is in; BBB's is not yet
    engine.put(a_before, b_before, a_after, b_after)
    engine.clock.set_ms(TICK + 200 + 1_500)

    features = await engine.evaluated(AAA, TICK)

    assert features == reference([a_ratio, a_before, a_after], AAA, TICK)
    assert engine.ticks_of(BBB) == []
    assert engine.service.held_trades == 3  # BBB's, however old
    view = engine.service.view()
    assert (view["ready"], view["waiting"]) == (1, 1)
    (bbb,) = [s for s in view["symbols"] if s["symbol"] == BBB]
    assert (bbb["state"], bbb["waiting_for"], bbb["held_trades"]) == ("waiting", ["ls_global"], 3)

    # Time passes: AAA's next tick is due by the clock; BBB still waits.
    engine.clock.set_ms(TICK + 15_000 + 2_100)
    await engine.evaluated(AAA, TICK + 15_000)
    assert engine.ticks_of(BBB) == []

    # BBB's ratio history arrives (a value known before its first tick), and is marked in.
    b_ratio = ls_global(BBB, T0 - 30_000, 0.8)
    engine.put(b_ratio)
    engine.board.done(BBB, "ls_global")

    features = await engine.evaluated(BBB, TICK)

    assert features["ls_global"] != 0
    assert features == reference([b_ratio, b_before, b_after], BBB, TICK)
    await engine.evaluated(BBB, TICK + 15_000)  # and then due by the clock, like AAA
    assert late_trades() == late
    assert late_events() == late_values


async def test_catch_up_ticks_of_a_warm_start_wait_for_the_history_fetched_after_it(
    engines: Engines,
) -> None:
    # Stored: the last evaluated tick T0, and trades past the next two ticks (the daemon was
    # killed before evaluating them). Not stored yet: a ratio value known in between, which
    # the pollers fetch as history after the restart.
    stored = [
        trades(AAA, 1, T0 - 20_000, T0 + 5_000, TICK + 3_000, TICK + 16_000),
        trades(BBB, 1, T0 - 10_000, T0 + 4_000, TICK + 15_500),
    ]
    store = Store({("two", AAA): T0, ("two", BBB): T0}, list(stored))
    engine = await engines.start(store, TICK + 20_000)
    late = late_trades()
    assert engine.service.held_trades == 3  # every stored trade from the first catch-up tick on

    backfilled = ls_global(AAA, T0 + 7_000, 1.5)
    engine.put(backfilled)
    engine.board.done_all([AAA, BBB], "tape")
    engine.board.done(AAA, "ls_global")
    engine.clock.set_ms(TICK + 20_001)

    for tick in (TICK, TICK + 15_000):
        features = await engine.evaluated(AAA, tick)
        assert features == reference([*stored, backfilled], AAA, tick)
    assert features["ls_global"] != 0  # the value fetched after the start counts
    assert engine.ticks_of(BBB) == []
    assert late_trades() == late


async def test_only_the_strategies_symbols_trades_are_held_and_a_dropped_symbol_lets_go(
    engines: Engines,
) -> None:
    # The collectors follow more symbols than the strategies evaluate: the others' trades
    # would never be released, so they are not kept.
    engine = await engines.start(Store(), T0 + 1)
    engine.put(trades("CCCUSDT", 1, T0 + 1_000, T0 + 2_000, T0 + 3_000))
    engine.put(trades(BBB, 1, T0 + 3_000, T0 + 8_000))  # BBB waits for its history

    async def taken_in() -> bool:
        return engine.service.held_trades >= 2

    await eventually(taken_in, 10, what="BBB's trades held")
    assert engine.service.held_trades == 2  # BBB's alone, none of CCCUSDT's

    # A reload that drops BBB: its trades held so far are let go, not kept for ever.
    write_strategy(engines.directory, {**STRATEGY, "symbols": [AAA]}, "two.json")
    assert engine.service.reload()
    engine.put(trades(AAA, 1, T0 + 9_000))  # the next batch applies the new set

    async def let_go() -> bool:
        return engine.service.held_trades == 1  # AAA's, waiting for its history

    await eventually(let_go, 10, what="BBB's held trades let go after the reload")
    assert [s["symbol"] for s in engine.service.view()["symbols"]] == [AAA]
