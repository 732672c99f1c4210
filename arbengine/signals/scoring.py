"""Direction, factor scores, score, coverage, gates and the firing decision.

Pure functions of a strategy, the features at one tick and two pieces of
state the caller owns (when this strategy last fired on this symbol, how
many of its paper positions are open), so live, paper and backtest share
one implementation and every decision can be explained from the stored
Evaluation alone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from arbengine.domain.events import Signal
from arbengine.signals.features import Features
from arbengine.signals.strategy import Direction, Factor, Gate, Strategy


class NoFire(enum.StrEnum):
    """Why an evaluation did not fire: the first failing check, in this order."""

    NO_PRICE = "no_price"
    NO_ATR = "no_atr"
    NO_DIRECTION = "no_direction"
    NO_FACTORS = "no_factors"
    """No factor feature present: the score is undefined."""
    BELOW_THRESHOLD = "below_threshold"
    LOW_COVERAGE = "low_coverage"
    GATE_FAILED = "gate_failed"
    COOLDOWN = "cooldown"
    MAX_OPEN = "max_open"


class FactorResult(NamedTuple):
    feature: str
    weight: float
    value: float | None
    """None: the feature is absent, the factor does not count."""
    score: float | None
    """sᵢ in [0, 1]; None when absent or when there is no direction."""
    contribution: float | None
    """wᵢ·sᵢ."""


class GateResult(NamedTuple):
    feature: str
    low: float | None
    high: float | None
    value: float | None
    passed: bool


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One strategy on one symbol at one tick: everything needed to store and explain it.

    Per-factor and per-gate detail is derived on demand from the strategy
    definition, the features and the factor scores, so evaluating hundreds
    of strategy×symbol pairs per tick does not build objects nobody reads.
    """

    tick_ms: int
    symbol: str
    definition: Strategy = field(repr=False)
    """The strategy exactly as evaluated (its hash identifies it)."""
    direction: int
    """+1 long, −1 short, 0 no direction."""
    score: float | None
    """0–100 over the present factors; None without direction or without any present factor."""
    coverage: float
    """0–100: present factor weight / total factor weight."""
    factor_scores: tuple[float | None, ...]
    """sᵢ per factor, in strategy order; None when absent or without direction."""
    features: Features
    """All features at the tick under this strategy's windows and staleness."""
    fired: bool
    reason: NoFire | None
    """Why it did not fire; None when it fired."""

    @property
    def strategy(self) -> str:
        return self.definition.name

    @property
    def strategy_hash(self) -> str:
        return self.definition.hash

    @property
    def factors(self) -> tuple[FactorResult, ...]:
        values = self.features
        return tuple(
            FactorResult(
                f.feature,
                f.weight,
                values.get(f.feature),
                s,
                None if s is None else f.weight * s,
            )
            for f, s in zip(self.definition.factors, self.factor_scores, strict=True)
        )

    @property
    def gates(self) -> tuple[GateResult, ...]:
        values = self.features
        return tuple(
            GateResult(g.feature, g.low, g.high, values.get(g.feature), _passes(g, values))
            for g in self.definition.gates
        )

    @property
    def used(self) -> tuple[str, ...]:
        """The features the strategy reads: direction, confirm, factors, gates, price, atr."""
        return self.definition.reads

    @property
    def features_used(self) -> dict[str, float]:
        """Values of the features the strategy reads (absent ones left out)."""
        values = self.features
        return {name: values[name] for name in self.definition.reads if name in values}

    @property
    def contributions(self) -> dict[str, float]:
        """wᵢ·sᵢ of each present factor (only with a direction)."""
        return {
            f.feature: f.weight * s
            for f, s in zip(self.definition.factors, self.factor_scores, strict=True)
            if s is not None
        }

    @property
    def price(self) -> float | None:
        return self.features.get("price")

    @property
    def atr(self) -> float | None:
        return self.features.get("atr")

    def to_signal(self) -> Signal:
        if not self.fired or self.score is None or self.direction not in (1, -1):
            raise ValueError("only a fired evaluation is a signal")
        price, atr = self.price, self.atr
        assert price is not None
        assert atr is not None
        return Signal(
            tick_ms=self.tick_ms,
            symbol=self.symbol,
            strategy=self.strategy,
            strategy_hash=self.strategy_hash,
            direction=1 if self.direction > 0 else -1,
            score=self.score,
            coverage=self.coverage,
            price=price,
            atr=atr,
            features=self.features.as_dict(),
            contributions=self.contributions,
        )


def _passes(gate: Gate, values: Mapping[str, float]) -> bool:
    v = values.get(gate.feature)
    return (
        v is not None
        and (gate.low is None or v >= gate.low)
        and (gate.high is None or v <= gate.high)
    )


def direction_of(direction: Direction, features: Mapping[str, float]) -> int:
    """sign(x) when |x| ≥ min and every confirm feature is present, non-zero, same sign."""
    x = features.get(direction.feature)
    if x is None or x == 0 or abs(x) < direction.min:
        return 0
    d = 1 if x > 0 else -1
    for name in direction.confirm:
        c = features.get(name)
        if c is None or c == 0 or (c > 0) != (d > 0):
            return 0
    return d


def factor_score(factor: Factor, x: float, d: int) -> float:
    """sᵢ in [0, 1]: plain clamp(d·x/full), contrarian clamp(−d·x/full), unsigned clamp(x/full)."""
    if factor.unsigned:
        raw = x / factor.full
    elif factor.contrarian:
        raw = -d * x / factor.full
    else:
        raw = d * x / factor.full
    return min(1.0, max(0.0, raw))


_PLAIN, _CONTRARIAN, _UNSIGNED = 0, 1, 2


class _ScorePlan(NamedTuple):
    """A strategy's scoring inputs as flat tuples, built once per strategy object."""

    strategy: Strategy
    factors: tuple[tuple[str, float, int, float], ...]
    """(feature, weight, kind, full) per factor, in strategy order."""
    total_w: float
    gates: tuple[tuple[str, float | None, float | None], ...]


_PLANS: dict[int, _ScorePlan] = {}
"""Plans by ``id(strategy)``; the plan holds the strategy, so the id cannot be reused
while the entry exists, and the identity check guards against stale entries."""


def _plan(strategy: Strategy) -> _ScorePlan:
    plan = _PLANS.get(id(strategy))
    if plan is not None and plan.strategy is strategy:
        return plan
    total_w = 0.0
    factors = []
    for f in strategy.factors:
        total_w += f.weight  # the same additions, in the same order, as a per-call sum
        kind = _UNSIGNED if f.unsigned else _CONTRARIAN if f.contrarian else _PLAIN
        factors.append((f.feature, f.weight, kind, f.full))
    gates = tuple((g.feature, g.low, g.high) for g in strategy.gates)
    plan = _ScorePlan(strategy, tuple(factors), total_w, gates)
    if len(_PLANS) >= 1024:
        _PLANS.clear()  # reloads create new strategy objects; never let old ones pile up
    _PLANS[id(strategy)] = plan
    return plan


(
    _set_tick, _set_symbol, _set_definition, _set_direction, _set_score, _set_coverage,
    _set_factor_scores, _set_features, _set_fired, _set_reason,
) = (
    Evaluation.__dict__[name].__set__
    for name in (
        "tick_ms", "symbol", "definition", "direction", "score", "coverage",
        "factor_scores", "features", "fired", "reason",
    )
)  # fmt: skip
_object_new = object.__new__


def _new_evaluation(
    tick_ms: int,
    symbol: str,
    definition: Strategy,
    direction: int,
    score: float | None,
    coverage: float,
    factor_scores: tuple[float | None, ...],
    features: Features,
    fired: bool,
    reason: NoFire | None,
) -> Evaluation:
    """``Evaluation(...)`` through its slots, skipping the frozen dataclass ``__init__``
    (``object.__setattr__`` once per field: a third of the cost of scoring a strategy)."""
    out: Evaluation = _object_new(Evaluation)
    _set_tick(out, tick_ms)
    _set_symbol(out, symbol)
    _set_definition(out, definition)
    _set_direction(out, direction)
    _set_score(out, score)
    _set_coverage(out, coverage)
    _set_factor_scores(out, factor_scores)
    _set_features(out, features)
    _set_fired(out, fired)
    _set_reason(out, reason)
    return out


def evaluate_strategy(
    strategy: Strategy,
    features: Features,
    *,
    last_fired_ms: int | None = None,
    open_count: int | Callable[[], int] = 0,
) -> Evaluation:
    """Score ``strategy`` on ``features`` and decide whether it fires.

    ``open_count`` (a number or a callable asked only when it matters) is the
    number of this strategy's paper positions on this symbol open at the tick.
    """
    plan = _plan(strategy)
    t = features.t_ms
    values = features.mapping
    get = values.get
    d = direction_of(strategy.direction, values)
    scores: list[float | None] = []
    present_w = 0.0
    weighted = 0.0
    # factor_score() and the clamp, inlined: max(0.0, raw) is raw only when raw > 0.0,
    # and min(1.0, s) is s only when s < 1.0 (so a NaN gives 0.0, as with max/min).
    for feature, w, kind, full in plan.factors:
        x = get(feature)
        if x is None:
            scores.append(None)
            continue
        present_w += w
        if d == 0:
            scores.append(None)
            continue
        if kind == _UNSIGNED:
            raw = x / full
        elif kind == _CONTRARIAN:
            raw = -d * x / full
        else:
            raw = d * x / full
        sc = raw if raw > 0.0 else 0.0
        if not sc < 1.0:
            sc = 1.0
        weighted += w * sc
        scores.append(sc)
    coverage = 100.0 * present_w / plan.total_w
    score = 100.0 * weighted / present_w if d != 0 and present_w > 0 else None

    entry = strategy.entry
    reason: NoFire | None = None
    if "price" not in values:
        reason = NoFire.NO_PRICE
    elif "atr" not in values:
        reason = NoFire.NO_ATR
    elif d == 0:
        reason = NoFire.NO_DIRECTION
    elif score is None:
        reason = NoFire.NO_FACTORS
    elif score < entry.threshold:
        reason = NoFire.BELOW_THRESHOLD
    elif coverage < entry.min_coverage:
        reason = NoFire.LOW_COVERAGE
    elif not all(_gate_passes(g, values) for g in plan.gates):
        reason = NoFire.GATE_FAILED
    elif last_fired_ms is not None and t - last_fired_ms < entry.cooldown_ms:
        reason = NoFire.COOLDOWN
    elif entry.max_open_per_symbol is not None:
        n_open = open_count() if callable(open_count) else open_count
        if n_open >= entry.max_open_per_symbol:
            reason = NoFire.MAX_OPEN

    return _new_evaluation(
        t, features.symbol, strategy, d, score, coverage, tuple(scores), features,
        reason is None, reason,
    )  # fmt: skip


def _gate_passes(gate: tuple[str, float | None, float | None], values: Mapping[str, float]) -> bool:
    feature, low, high = gate
    v = values.get(feature)
    return v is not None and (low is None or v >= low) and (high is None or v <= high)
