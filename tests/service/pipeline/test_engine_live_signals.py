"""The engine hands the live executor only the signals of live ticks: a tick missed while
the daemon was down (before the warm start began, on the exchange's clock) is evaluated
to catch the records up, and fires there, but is never handed over for trading."""

from __future__ import annotations

import asyncio
from pathlib import Path

from arbengine.domain.engine_rows import EngineOutput
from arbengine.domain.events import Signal
from arbengine.domain.market import MarketEvent, TradeBatch
from arbengine.pipeline.service import EngineService, EngineStore
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from tests.e2e.engine.conftest import write_strategy
from tests.service.pipeline.test_engine_arrivals import no_history, no_positions, nothing_stored

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, a tick
SYMBOL = "AAAUSDT"
LAST_STORED_TICK = T0 - 15_000
STARTED_AT = T0 + 30_500
"""The exchange's time at the warm start: ticks T0, T0+15 s and T0+30 s were missed."""

ALWAYS = {
    "name": "always",
    "symbols": [SYMBOL],
    "tick": "15s",
    "windows": {"fast": "5m", "mid": "20m", "day": "1h"},
    "atr_percentile_min_values": 12,
    "direction": {"feature": "flow_fast", "min": 0.0},
    "factors": [{"feature": "flow_fast", "weight": 1, "full": 0.0001}],
    "entry": {"threshold": 1},
    "exit": {"sl_atr": 1.0},
    "paper": {"enabled": False},
}


def buys(start_ms: int, end_ms: int, first_id: int) -> TradeBatch:
    times = list(range(start_ms, end_ms, 1_000))
    n = len(times)
    ids = list(range(first_id, first_id + n))
    prices = [100.0 + (i % 7) * 0.1 for i in range(n)]
    return TradeBatch.of(SYMBOL, ids, times, prices, [1.0] * n, ids, ids, [False] * n)


async def last_evaluated() -> dict[tuple[str, str], int]:
    return {("always", SYMBOL): LAST_STORED_TICK}


async def test_only_signals_of_live_ticks_are_handed_to_the_executor(tmp_path: Path) -> None:
    write_strategy(tmp_path, ALWAYS, "always.json")
    inbox: Channel[MarketEvent] = Channel("engine", 1000, OverflowPolicy.BLOCK)
    outbox: Channel[EngineOutput] = Channel("engine-out", 1000, OverflowPolicy.BLOCK)
    signals: Channel[Signal] = Channel("live-signals", 100, OverflowPolicy.BLOCK)
    clock = ManualClock(STARTED_AT)
    store = EngineStore(last_evaluated, nothing_stored, no_positions, no_history)
    service = EngineService(
        tmp_path, inbox, outbox, store, grace_ms=2_000, settle_ms=1_500, clock=clock,
        signals=signals,
    )  # fmt: skip
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), 10)
    assert service.live_from_ms == STARTED_AT

    # The tape since before the missed ticks, then live ones, as the collectors deliver it.
    assert inbox.put_nowait(buys(T0 - 4 * 3_600_000, T0 + 62_000, first_id=1))
    fired: set[int] = set()
    evaluated: list[tuple[int, bool, str | None]] = []
    for now in range(STARTED_AT, T0 + 64_000, 500):
        clock.set_ms(now)
        await asyncio.sleep(0.02)
        while len(outbox):
            for out in outbox.get_nowait_many(100):
                fired |= {s.tick for s in out.signals}
                evaluated.extend((e.tick, e.fired, e.reason) for e in out.evaluations)
    inbox.close()
    await asyncio.wait_for(task, 10)
    while len(outbox):
        for out in outbox.get_nowait_many(100):
            fired |= {s.tick for s in out.signals}

    handed = [s.tick_ms for s in signals.get_nowait_many(100)]
    catch_up = {T0, T0 + 15_000, T0 + 30_000}
    live = {T0 + 45_000, T0 + 60_000}
    assert catch_up | live <= fired, f"every tick fired and was stored: {evaluated}"
    assert handed == sorted(live)
