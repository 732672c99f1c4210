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
from typing import NamedTuple

import msgspec

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


class Evaluation(msgspec.Struct, frozen=True):
    """One strategy on one symbol at one tick: everything needed to store and explain it.

    Per-factor and per-gate detail is derived on demand from the strategy
    definition, the features and the factor scores, so evaluating hundreds
    of strategy×symbol pairs per tick does not build objects nobody reads (a
    msgspec struct: built in one C call, where a frozen dataclass sets each field
    through ``object.__setattr__``).
    """

    tick_ms: int
    symbol: str
    definition: Strategy
    """The strategy exactly as evaluated (its hash identifies it); left out of the repr."""
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

    def __repr__(self) -> str:
        shown = (name for name in self.__struct_fields__ if name != "definition")
        return f"Evaluation({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

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


class _ScorePlan(NamedTuple):
    """A strategy's scoring inputs as flat tuples, built once per strategy object."""

    strategy: Strategy
    direction: tuple[str, float, tuple[str, ...]]
    """(feature, min, confirm features)."""
    weights: tuple[tuple[str, float], ...]
    """(feature, weight) per factor, in strategy order."""
    signed: tuple[tuple[tuple[str, float, float], ...], ...]
    """(feature, weight, m · full) per factor, for direction +1 (index 1) and −1 (index 2),
    m being −d for a contrarian factor, 1 for an unsigned one and d otherwise: the factor's
    raw score ``d·x/full``, ``−d·x/full`` or ``x/full`` is ``x / (m · full)`` to the last
    bit (±1 times a float is exact, and x / (−f) = −(x / f) = (−x) / f)."""
    total_w: float
    gates: tuple[tuple[str, float | None, float | None], ...]
    threshold: float
    min_coverage: float
    cooldown_ms: int
    max_open: int | None


_PLANS: dict[int, _ScorePlan] = {}
"""Plans by ``id(strategy)``; the plan holds the strategy, so the id cannot be reused
while the entry exists, and the identity check guards against stale entries."""


def _plan(strategy: Strategy) -> _ScorePlan:
    plan = _PLANS.get(id(strategy))
    if plan is not None and plan.strategy is strategy:
        return plan
    total_w = 0.0
    for f in strategy.factors:
        total_w += f.weight  # the same additions, in the same order, as a per-call sum
    signed: list[tuple[tuple[str, float, float], ...]] = [()]
    for d in (1, -1):
        signed.append(
            tuple(
                (f.feature, f.weight, (1 if f.unsigned else -d if f.contrarian else d) * f.full)
                for f in strategy.factors
            )
        )
    entry = strategy.entry
    direction = strategy.direction
    plan = _ScorePlan(
        strategy,
        (direction.feature, direction.min, tuple(direction.confirm)),
        tuple((f.feature, f.weight) for f in strategy.factors),
        tuple(signed),
        total_w,
        tuple((g.feature, g.low, g.high) for g in strategy.gates),
        entry.threshold,
        entry.min_coverage,
        entry.cooldown_ms,
        entry.max_open_per_symbol,
    )
    if len(_PLANS) >= 1024:
        _PLANS.clear()  # reloads create new strategy objects; never let old ones pile up
    _PLANS[id(strategy)] = plan
    return plan


# The reasons as module constants: looking an enum member up is not free on every call.
_NO_PRICE, _NO_ATR, _NO_DIRECTION = NoFire.NO_PRICE, NoFire.NO_ATR, NoFire.NO_DIRECTION
_NO_FACTORS, _BELOW_THRESHOLD = NoFire.NO_FACTORS, NoFire.BELOW_THRESHOLD
_LOW_COVERAGE, _GATE_FAILED = NoFire.LOW_COVERAGE, NoFire.GATE_FAILED
_COOLDOWN, _MAX_OPEN = NoFire.COOLDOWN, NoFire.MAX_OPEN


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
    plan = _PLANS.get(id(strategy))
    if plan is None or plan.strategy is not strategy:
        plan = _plan(strategy)
    t = features.t_ms
    values = features.mapping
    get = values.get
    # direction_of(), inlined.
    feature, minimum, confirm = plan.direction
    x = get(feature)
    d = 0
    if not (x is None or x == 0 or abs(x) < minimum):
        d = 1 if x > 0 else -1
        for name in confirm:
            c = get(name)
            if c is None or c == 0 or (c > 0) != (d > 0):
                d = 0
                break
    present_w = 0.0
    score: float | None = None
    scores: tuple[float | None, ...]
    if d == 0:
        for feature, w in plan.weights:
            if get(feature) is not None:
                present_w += w
        scores = (None,) * len(plan.weights)
    else:
        got: list[float | None] = []
        weighted = 0.0
        # factor_score() and the clamp, inlined: max(0.0, raw) is raw only when raw > 0.0,
        # then min(1.0, raw) is raw only when raw < 1.0 (a NaN gives 0.0, as with max/min).
        for feature, w, divisor in plan.signed[d]:
            x = get(feature)
            if x is None:
                got.append(None)
                continue
            present_w += w
            raw = x / divisor
            sc = (raw if raw < 1.0 else 1.0) if raw > 0.0 else 0.0
            weighted += w * sc
            got.append(sc)
        scores = tuple(got)
        if present_w > 0:
            score = 100.0 * weighted / present_w
    coverage = 100.0 * present_w / plan.total_w

    reason: NoFire | None = None
    if "price" not in values:
        reason = _NO_PRICE
    elif "atr" not in values:
        reason = _NO_ATR
    elif d == 0:
        reason = _NO_DIRECTION
    elif score is None:
        reason = _NO_FACTORS
    elif score < plan.threshold:
        reason = _BELOW_THRESHOLD
    elif coverage < plan.min_coverage:
        reason = _LOW_COVERAGE
    elif not _gates_pass(plan.gates, get):
        reason = _GATE_FAILED
    elif last_fired_ms is not None and t - last_fired_ms < plan.cooldown_ms:
        reason = _COOLDOWN
    elif plan.max_open is not None:
        n_open = open_count() if callable(open_count) else open_count
        if n_open >= plan.max_open:
            reason = _MAX_OPEN

    return Evaluation(
        t, features.symbol, strategy, d, score, coverage, scores, features, reason is None, reason
    )


def _gates_pass(
    gates: tuple[tuple[str, float | None, float | None], ...],
    get: Callable[[str], float | None],
) -> bool:
    for feature, low, high in gates:
        v = get(feature)
        if not (v is not None and (low is None or v >= low) and (high is None or v <= high)):
            return False
    return True
