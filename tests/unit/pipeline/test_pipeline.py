"""The signal pipeline: ticks in event-time order, paper positions from fired signals, and
results that do not depend on how events are batched or interleaved across symbols."""

from __future__ import annotations

import itertools
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.domain.market import Indicator, TradeBatch
from arbengine.pipeline.signal_pipeline import SignalPipeline
from arbengine.signals import StrategySet, parse_strategy

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOURS = 2.5

STRATEGY = {
    "name": "probe",
    "symbols": ["AAAUSDT", "BBBUSDT"],
    "tick": "15s",
    "windows": {"fast": "5m", "mid": "20m", "day": "1h"},
    "direction": {"feature": "flow_fast", "min": 0.05},
    "factors": [
        {"feature": "flow_fast", "weight": 2, "full": 0.3},
        {"feature": "funding_rate", "weight": 1, "full": 0.001, "contrarian": True},
    ],
    "entry": {"threshold": 30, "cooldown": "10m", "max_open_per_symbol": 1},
    "exit": {"sl_atr": 1.0, "tp1_atr": 1.0, "tp1_fraction": 0.5, "tp2_atr": 2.0,
             "breakeven_after_tp1": True, "max_hold": "30m"},
    "costs": {"fee_bps": 4, "slippage_bps": 1},
}  # fmt: skip


def strategies() -> StrategySet:
    return StrategySet((parse_strategy(STRATEGY),))


def market(seed: int) -> dict[str, TradeBatch]:
    """Two symbols of clustered, trending trades (about one a second)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, symbol in enumerate(("AAAUSDT", "BBBUSDT")):
        n = int(HOURS * 3600)
        gaps = rng.exponential(1000, n).astype(np.int64) + 1
        ts = T0 + np.cumsum(gaps)
        ts = ts[ts < T0 + int(HOURS * 3_600_000)]
        n = len(ts)
        regime = np.repeat(rng.choice([-1, 1], size=n // 600 + 1), 600)[:n]
        sells = rng.random(n) < np.where(regime > 0, 0.3, 0.7)
        price = 100 * (1 + k) * np.exp(np.cumsum(rng.normal(0, 0.0006, n) + regime * 0.00005))
        qty = rng.pareto(2.5, n) + 0.01
        ids = np.arange(1000, 1000 + n)
        out[symbol] = TradeBatch.of(symbol, ids.tolist(), ts.tolist(), price.round(4).tolist(),
                                    qty.round(4).tolist(), ids.tolist(), ids.tolist(),
                                    sells.tolist())  # fmt: skip
    return out


def funding(symbol: str) -> Indicator:
    return Indicator(symbol, "funding_rate", T0 + 3_600_000, T0 + 3_600_000, 0.0002,
                     {"mark_price": 100.0})  # fmt: skip


def results(pipe: SignalPipeline) -> tuple[list[tuple], list[tuple]]:
    out = pipe.drain()
    evals = sorted(
        (e.tick_ms, e.symbol, e.strategy, e.direction, e.score, e.coverage, e.fired, e.reason)
        for e in out.evaluations
    )
    positions = sorted(
        (p.symbol, p.entry_tick, p.direction, p.entry_price,
         tuple((f.ts, f.agg_id, f.price, f.fraction, f.reason) for f in p.fills),
         tuple((c.time, c.fraction) for c in p.funding))
        for p in [*pipe.book.closed, *pipe.book.open]
    )  # fmt: skip
    return evals, positions


def replay_whole(seed: int) -> tuple[list[tuple], list[tuple]]:
    pipe = SignalPipeline(strategies())
    pipe.start_ticks_at(T0 + 1_800_000)
    for symbol, batch in market(seed).items():
        pipe.on_event(funding(symbol))
        pipe.on_trades(batch)
    pipe.finish(T0 + int(HOURS * 3_600_000))
    return results(pipe)


def test_signals_fire_and_open_paper_positions() -> None:
    evals, positions = replay_whole(1)
    ticks = {e[0] for e in evals}
    assert min(ticks) == T0 + 1_800_000
    assert max(ticks) == T0 + int(HOURS * 3_600_000) - 15_000
    assert len(evals) == 2 * len(ticks)
    fired = [e for e in evals if e[6]]
    assert fired, "the probe strategy never fired: the test would prove nothing"
    assert len(positions) == len(fired)
    assert {(p[0], p[1]) for p in positions} == {(e[1], e[0]) for e in fired}
    assert any(p[4] for p in positions), "no position ever exited"
    # max_open_per_symbol 1: a symbol never holds two positions at once
    for symbol in ("AAAUSDT", "BBBUSDT"):
        spans = sorted((p[1], p[4][-1][0] if p[4] else 10**15) for p in positions if p[0] == symbol)
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=30), st.integers(0, 2**32))
def test_results_do_not_depend_on_batching_or_interleaving(sizes: list[int], order: int) -> None:
    rnd = random.Random(order)
    seed = 1
    expected = replay_whole(seed)
    pipe = SignalPipeline(strategies())
    pipe.start_ticks_at(T0 + 1_800_000)
    for symbol in ("AAAUSDT", "BBBUSDT"):
        pipe.on_event(funding(symbol))
    batches = market(seed)
    cursors = dict.fromkeys(batches, 0)
    step = 0
    while any(cursors[s] < len(batches[s]) for s in batches):
        symbol = rnd.choice([s for s in batches if cursors[s] < len(batches[s])])
        size = sizes[step % len(sizes)]
        step += 1
        lo = cursors[symbol]
        pipe.on_event(batches[symbol].take(slice(lo, lo + size)))
        cursors[symbol] = lo + size
    pipe.finish(T0 + int(HOURS * 3_600_000))
    assert results(pipe) == expected


def test_quiet_symbols_are_evaluated_by_the_wall_clock_as_a_replay_would() -> None:
    seed = 2
    expected = replay_whole(seed)
    pipe = SignalPipeline(strategies())
    pipe.start_ticks_at(T0 + 1_800_000)
    batches = market(seed)
    for symbol in batches:
        pipe.on_event(funding(symbol))
    end = T0 + int(HOURS * 3_600_000)
    # Deliver trades in one-minute slices, advancing the wall clock between them (to just
    # before the end's grace, so the tick at the end itself is not due, as in a replay).
    for minute in range(int(HOURS * 60)):
        lo_t, hi_t = T0 + minute * 60_000, T0 + (minute + 1) * 60_000
        for batch in batches.values():
            idx = [i for i, t in enumerate(batch.ts) if lo_t <= t < hi_t]
            if idx:
                pipe.on_event(batch.take(slice(idx[0], idx[-1] + 1)))
        pipe.on_wall_clock(min(hi_t, end) + 2_000 - 1)
    pipe.finish(end)
    assert results(pipe) == expected
