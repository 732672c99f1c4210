"""Evaluations, signals and paper trades as the engine writes them, for the Signals and Paper
pages and the evaluation routes.

The rows are made by the engine's own code from chosen inputs: the shipped strategies
scored by ``evaluate_strategy`` on hand-picked features, turned into rows by the pipeline's
``records`` and stored by the signal writer's SQL; paper trades opened and walked by the
paper trader's core over a few hand-picked trades. The chosen inputs make the answers
easy to work out by hand (see ``FIRED_LONG`` below and the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import asyncpg

from arbengine.pipeline.records import evaluation_row, paper_row, signal_row
from arbengine.pipeline.signal_pipeline import exit_rule
from arbengine.signals import (
    Evaluation,
    Features,
    Strategy,
    evaluate_strategy,
    load_strategy_set,
)
from arbengine.store import engine_sql
from arbengine.trading.paper import FundingSettlement, PaperBook, PaperPosition, open_position
from tests.conftest import REPO

QUIET_ENGINE = {"ARB_ENGINE_GRACE": "1h"}
"""Settings for a daemon showing these rows. Its engine runs with no market data: with the
default grace it stores an evaluation (without a price) of every strategy and symbol each
tick, beside the seeded ones and, at a tick both write, instead of them. A grace of an hour
keeps it from evaluating any tick while a test runs."""

TICK = 15_000
MINUTE = 60_000
TICKS = 480
"""Two hours of 15-second ticks of v52 on BTCUSDT."""

FIRED_LONG = 100
"""The tick index of the long signal whose breakdown the tests read."""
COOLDOWN = FIRED_LONG + 1
GATE_FAILED = 200
FIRED_SHORT = 300
NO_DIRECTION = range(400, 420)

LONG_FEATURES: dict[str, float] = {
    "price": 100.0,
    "atr": 2.0,
    "atr_percentile": 50.0,
    "trades_fast": 120.0,
    "flow_fast": 0.08,  # the direction: long (|x| ≥ 0.05), confirmed by flow_mid
    "flow_mid": 0.12,  # 0.12 / 0.15 = 0.8 × 20 = 16
    "vwap_dev_fast": 0.001,  # 0.5 × 15 = 7.5
    "large_imbalance_fast": 0.5,  # 1.0 × 20 = 20
    "oi_change_1h": 0.01,  # unsigned: 0.5 × 10 = 5
    "ls_global": -0.15,  # contrarian: 0.5 × 10 = 5
    "funding_rate": -0.0005,  # contrarian: 1.0 × 10 = 10
    # coinbase_premium_bps absent: weight 10 of 100 missing, coverage 90 %
    "liq_imbalance_fast": 0.25,  # 0.5 × 5 = 2.5
}
"""v52 scores these 100 × 66 / 90 = 73.33 with coverage 90 %: it fires (threshold 70)."""
LONG_CONTRIBUTIONS = {
    "flow_mid": 16.0,
    "vwap_dev_fast": 7.5,
    "large_imbalance_fast": 20.0,
    "oi_change_1h": 5.0,
    "ls_global": 5.0,
    "funding_rate": 10.0,
    "liq_imbalance_fast": 2.5,
}
LONG_SCORE = 100 * 66 / 90

SHORT_PRICE = 104.0


def _short(features: dict[str, float]) -> dict[str, float]:
    """The same evidence the other way round (unsigned open interest kept)."""
    flipped = {k: -v for k, v in features.items()}
    for name in ("price", "atr", "atr_percentile", "trades_fast", "oi_change_1h"):
        flipped[name] = features[name]
    flipped["price"] = SHORT_PRICE
    return flipped


def background(k: int) -> dict[str, float]:
    """An ordinary tick: long, scoring between 51 and 69 (large orders wander), so never
    firing; in NO_DIRECTION the order flow is too weak for a direction."""
    features = dict(LONG_FEATURES)
    features["price"] = 100.0 + 4.0 * k / TICKS
    features["large_imbalance_fast"] = 0.1 + 0.3 * math.sin(k / 15)
    if k in NO_DIRECTION:
        features["flow_fast"] = 0.02
    return features


def features_at(k: int) -> dict[str, float]:
    if k in (FIRED_LONG, COOLDOWN):
        return dict(LONG_FEATURES)
    if k == GATE_FAILED:
        return {**LONG_FEATURES, "atr_percentile": 97.0}
    if k == FIRED_SHORT:
        return _short(LONG_FEATURES)
    return background(k)


@dataclass
class EngineSeed:
    now: int
    start: int
    """The first tick (index 0)."""
    strategies: dict[str, Strategy]
    paper: dict[str, PaperPosition] = field(default_factory=dict)
    """By name: ``long`` (TP1 then TP2), ``short`` (stopped out), ``open`` (ETHUSDT)."""
    funding_time: int = 0

    def tick(self, k: int) -> int:
        return self.start + k * TICK

    @property
    def latest(self) -> int:
        return self.tick(TICKS - 1)


def shipped_strategies() -> dict[str, Strategy]:
    """The strategies the test daemon loads (``api_env`` points it at the repository's)."""
    return {s.name: s for s in load_strategy_set(REPO / "strategies")}


async def seed_engine_output(conn: asyncpg.Connection, now: int) -> EngineSeed:
    strategies = shipped_strategies()
    v52, v51 = strategies["v52"], strategies["v51"]
    start = (now // TICK - TICKS) * TICK
    seed = EngineSeed(now=now, start=start, strategies=strategies)

    evaluations = []
    last_fired: int | None = None
    for k in range(TICKS):
        t = seed.tick(k)
        e = evaluate_strategy(v52, Features("BTCUSDT", t, features_at(k)), last_fired_ms=last_fired)
        if e.fired:
            last_fired = t
        evaluations.append(e)
    # ETHUSDT: one long signal an hour ago, its position still open.
    eth = [
        evaluate_strategy(v52, Features("ETHUSDT", seed.tick(k), LONG_FEATURES))
        for k in (TICKS - 240,)
    ]
    # v51 on BTCUSDT: a few ticks of the other strategy (never firing: no direction).
    other = [
        evaluate_strategy(v51, Features("BTCUSDT", seed.tick(k), background(k)))
        for k in range(TICKS - 20, TICKS)
    ]
    everything = evaluations + eth + other
    await engine_sql.insert_evaluations(conn, [evaluation_row(e) for e in everything])
    await engine_sql.insert_signals(conn, [signal_row(e) for e in everything if e.fired])

    # Paper trades of v52's signals, walked by the paper trader over chosen trades.
    rule = exit_rule(v52)
    book = PaperBook()

    def opened(fired: Evaluation) -> PaperPosition:
        """The paper position a fired evaluation opens (as the pipeline opens it)."""
        assert fired.fired
        assert fired.price is not None
        assert fired.atr is not None
        position = open_position(
            strategy=v52.name,
            strategy_hash=v52.hash,
            symbol=fired.symbol,
            direction=fired.direction,
            tick=fired.tick_ms,
            price=fired.price,
            atr=fired.atr,
            rule=rule,
        )
        book.add(position)
        return position

    long = opened(evaluations[FIRED_LONG])
    short = opened(evaluations[FIRED_SHORT])
    still_open = opened(eth[0])
    long_tick, short_tick = seed.tick(FIRED_LONG), seed.tick(FIRED_SHORT)
    seed.funding_time = (long_tick // MINUTE + 10) * MINUTE
    book.on_funding(FundingSettlement("BTCUSDT", seed.funding_time, 0.0001, 104.0))
    book.on_trades(
        "BTCUSDT",
        [1, 2, 3, 4, 5],
        [
            long_tick + 1_000,  # nothing reached
            long_tick + 5 * MINUTE,  # TP1 (103.01) for half; the stop moves to the entry
            long_tick + 20 * MINUTE,  # TP2 (106.01) for the rest
            short_tick + 1_000,  # nothing reached for the short (entered at 103.99)
            short_tick + 10 * MINUTE,  # its stop (106.99)
        ],
        [100.5, 103.5, 106.2, 104.5, 107.5],
    )
    book.on_trades("ETHUSDT", [1], [eth[0].tick_ms + 1_000], [100.2])
    assert (long.is_open, short.is_open, still_open.is_open) == (False, False, True)
    seed.paper = {"long": long, "short": short, "open": still_open}
    await engine_sql.upsert_paper_trades(conn, [paper_row(p) for p in seed.paper.values()])

    # Mark prices for the price chart: every 30 s over the two hours.
    await conn.executemany(
        "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
        "funding_rate, next_funding_time) VALUES ('BTCUSDT', $1, $1, $2, $2, 0.0001, $3)",
        [
            (t, 100.0 + 4.0 * (t - start) / (TICKS * TICK) + math.sin(t / 600_000), now + MINUTE)
            for t in range(start, start + TICKS * TICK, 30_000)
        ],
    )
    return seed
