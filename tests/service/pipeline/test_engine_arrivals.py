"""The engine service applies everything before a tick before evaluating it, whatever the
order of arrival: a liquidation received after a trade past the tick still counts, and one
that comes after its tick was evaluated is counted as late."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from arbengine.domain.market import Liquidation, MarketEvent, TradeBatch
from arbengine.pipeline.replay import ReplayStats
from arbengine.pipeline.service import EngineOutput, EngineService, EngineStore
from arbengine.pipeline.signal_pipeline import SignalPipeline
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.signals import StrategySet, parse_strategy
from tests.e2e.engine.conftest import write_strategy

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, a tick
TICK = T0 + 15_000
SYMBOL = "AAAUSDT"

STRATEGY = {
    "name": "liq",
    "symbols": [SYMBOL],
    "tick": "15s",
    "windows": {"fast": "5m", "mid": "20m", "day": "1h"},
    "direction": {"feature": "flow_fast", "min": 0.0},
    "factors": [{"feature": "liq_imbalance_fast", "weight": 1, "full": 0.5}],
    "entry": {"threshold": 100},
    "exit": {"sl_atr": 1.0},
    "paper": {"enabled": False},
}


def trades(*times: int, first_id: int = 1) -> TradeBatch:
    ids = list(range(first_id, first_id + len(times)))
    n = len(times)
    return TradeBatch.of(SYMBOL, ids, list(times), [100.0] * n, [1.0] * n, ids, ids, [False] * n)


def short_liquidated(at_ms: int, pushed_ms: int) -> Liquidation:
    return Liquidation(
        symbol=SYMBOL, ts=at_ms, event_time=pushed_ms, side="BUY", order_type="LIMIT",
        time_in_force="IOC", qty=2.0, price=101.0, avg_price=100.5, status="FILLED",
        last_qty=2.0, filled_qty=2.0,
    )  # fmt: skip


async def nothing_stored() -> dict[tuple[str, str], int]:
    return {}


async def no_positions() -> list[dict[str, object]]:
    return []


async def no_history(
    _pipeline: SignalPipeline, _symbols: Sequence[str], _from: int, _to: int
) -> ReplayStats:
    return ReplayStats()


@dataclass
class Engine:
    service: EngineService
    inbox: Channel[MarketEvent]
    outbox: Channel[EngineOutput]
    clock: ManualClock

    async def taken(self) -> None:
        """Until the service has taken what is queued (a few turns of the event loop)."""
        for _ in range(1000):
            if not len(self.inbox) and (self.service.held_trades or len(self.outbox)):
                return
            await asyncio.sleep(0)
        raise AssertionError("the engine did not take its input")

    async def evaluation_of(self, tick: int) -> tuple:
        """The stored-row form of the evaluation of ``tick`` (waits for it)."""
        while True:
            out = await asyncio.wait_for(self.outbox.get(), 10)
            for row in out.evaluations:
                if row.tick == tick:
                    return row


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    write_strategy(tmp_path, STRATEGY, "liq.json")
    inbox: Channel[MarketEvent] = Channel("engine", 1000, OverflowPolicy.BLOCK)
    outbox: Channel[EngineOutput] = Channel("engine-out", 1000, OverflowPolicy.BLOCK)
    clock = ManualClock(T0 + 1)
    store = EngineStore(nothing_stored, nothing_stored, no_positions, no_history)
    service = EngineService(tmp_path, inbox, outbox, store, grace_ms=2_000, settle_ms=1_500,
                            clock=clock)  # fmt: skip
    task = asyncio.create_task(service.run())
    ready = asyncio.create_task(service.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the reason it could not start
    yield Engine(service, inbox, outbox, clock)
    inbox.close()
    await asyncio.wait_for(task, 10)


def reference(events: Sequence[MarketEvent], tick: int) -> dict[str, float]:
    """The features a backtest computes for ``tick``: every event applied in time order."""
    pipeline = SignalPipeline(StrategySet((parse_strategy(STRATEGY),)))
    pipeline.start_ticks_at(tick)
    for event in events:
        pipeline.on_event(event)
    pipeline.finish(tick + 1)
    (evaluation,) = [e for e in pipeline.drain().evaluations if e.tick_ms == tick]
    return evaluation.features.as_dict()


async def test_a_liquidation_received_after_a_later_trade_counts_in_its_tick(
    engine: Engine,
) -> None:
    before = trades(*range(T0 + 1_000, T0 + 14_001, 1_000))
    past_tick = trades(TICK + 50, first_id=100)
    liquidation = short_liquidated(TICK - 500, pushed_ms=TICK + 480)
    # Arrival order as it happens live: the trade past the tick first, the liquidation
    # later (Binance pushes it as a snapshot up to a second after its order time).
    engine.clock.set_ms(TICK + 60)
    assert engine.inbox.put_nowait(before)
    assert engine.inbox.put_nowait(past_tick)
    await engine.taken()
    engine.clock.set_ms(TICK + 480)
    assert engine.inbox.put_nowait(liquidation)
    engine.clock.set_ms(TICK + 50 + 1_500)  # the trade past the tick has settled

    row = await engine.evaluation_of(TICK)

    features = row.features
    assert features["liq_imbalance_fast"] == 1.0  # the short liquidation before the tick
    assert features == reference([liquidation, before, past_tick], TICK)


async def test_a_liquidation_after_its_tick_was_evaluated_is_counted_late(
    engine: Engine,
) -> None:
    def late() -> float:
        value = REGISTRY.get_sample_value("arb_engine_late_events_total", {"kind": "liquidation"})
        return value or 0.0

    engine.clock.set_ms(TICK + 2_100)  # due by the clock: evaluated without a later trade
    assert engine.inbox.put_nowait(trades(TICK - 3_000, TICK - 2_000))
    row = await engine.evaluation_of(TICK)
    assert row.features["liq_imbalance_fast"] == 0.0
    counted = late()

    assert engine.inbox.put_nowait(short_liquidated(TICK - 500, pushed_ms=TICK + 2_200))
    engine.clock.set_ms(TICK + 15_000 + 2_100)  # the next tick, due by the clock

    row = await engine.evaluation_of(TICK + 15_000)

    assert late() == counted + 1
    assert row.features["liq_imbalance_fast"] == 1.0  # counted from the next tick on


async def test_how_long_after_its_time_a_tick_was_evaluated_is_measured(engine: Engine) -> None:
    def delay(sample: str, le: str | None = None) -> float:
        labels = {} if le is None else {"le": le}
        value = REGISTRY.get_sample_value(f"arb_engine_tick_delay_seconds_{sample}", labels)
        return value or 0.0

    count, total = delay("count"), delay("sum")
    within_2s, within_2_5s = delay("bucket", "2.0"), delay("bucket", "2.5")
    engine.clock.set_ms(TICK + 2_100)  # due by the clock, 2.1 s after its time
    assert engine.inbox.put_nowait(trades(TICK - 3_000, TICK - 2_000))
    await engine.evaluation_of(TICK)

    assert delay("count") == count + 1
    assert delay("sum") == pytest.approx(total + 2.1)
    assert delay("bucket", "2.0") == within_2s
    assert delay("bucket", "2.5") == within_2_5s + 1
