"""The risk guard's rules: the entry gate and the monitor's state machine (a sync core).

In the style of a trading engine's risk engine: every entry intent passes a synchronous
check (``check_entry``) against a view the monitor precomputed (``RiskView``), so the
check does no I/O and costs microseconds; the monitor (``evaluate``) applies the same
limits to the account as a whole and moves the trading state:

- ``ACTIVE``: entries allowed.
- ``REDUCING``: exits only. At ``reduce_at`` of a loss limit, or while the user data
  stream is not in step with the account. Not latched: it ends when its cause does.
- ``HALTED``: the circuit breaker. A loss or balance limit reached: entries refused,
  positions flattened (``flatten_on_halt``). Latched: it ends only by ``auto-resume``,
  after ``cooldown`` (the daily-loss breaker at the next UTC day), once nothing would
  trip it again, and never while the admin's pause is set.

A symbol's stale data or tape hole refuses that symbol's entries only (the gate): the
other symbols may still trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from arbengine.domain.risk_rows import RiskState, TradingState
from arbengine.settings import RiskSettings

DAY_MS = 86_400_000
DAILY_RULES = frozenset({"daily_loss_r", "daily_loss_usd"})
"""Rules whose breaker lasts until the next UTC day (a loss of the day stays the day's)."""
TAPE_INPUT = "tape"
PREMIUM_INDEX_INPUT = "premium_index"
UNTIMED_INPUTS = frozenset({"funding_rate", "funding_interval_hours"})
"""Series published every few hours (the fundingRate history, which paper trading charges
funding from; the funding interval): their age says nothing of the data's health, and
the current funding rate comes with premiumIndex, whose age is checked."""


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """``[risk]`` in milliseconds and floats; a loss or balance limit of 0 is off."""

    max_positions: int = 3
    max_positions_per_symbol: int = 1
    daily_loss_r: float = 3.0
    daily_loss_usd: float = 0.0
    unrealised_loss_usd: float = 0.0
    balance_floor_usd: float = 0.0
    reduce_at: float = 0.8
    max_tape_age_ms: int = 60_000
    max_premium_index_age_ms: int = 30_000
    max_indicator_age_ms: int = 900_000
    max_user_stream_age_ms: int = 30_000
    hold_timeout_ms: int = 70 * 60_000
    cooldown_ms: int = 30 * 60_000
    flatten_on_halt: bool = True

    @classmethod
    def of(cls, risk: RiskSettings) -> RiskLimits:
        return cls(
            max_positions=risk.max_positions,
            max_positions_per_symbol=risk.max_positions_per_symbol,
            daily_loss_r=risk.daily_loss_r,
            daily_loss_usd=risk.daily_loss_usd,
            unrealised_loss_usd=risk.unrealised_loss_usd,
            balance_floor_usd=risk.balance_floor_usd,
            reduce_at=risk.reduce_at,
            max_tape_age_ms=risk.max_tape_age.ms,
            max_premium_index_age_ms=risk.max_premium_index_age.ms,
            max_indicator_age_ms=risk.max_indicator_age.ms,
            max_user_stream_age_ms=risk.max_user_stream_age.ms,
            hold_timeout_ms=risk.hold_timeout.ms,
            cooldown_ms=risk.cooldown.ms,
            flatten_on_halt=risk.flatten_on_halt,
        )


@dataclass(frozen=True, slots=True)
class RiskView:
    """What the monitor last knew of the account and the data (times are epoch ms)."""

    positions: Mapping[str, int] = field(default_factory=dict)
    """Symbol → open positions on it: the exchange's (non-zero amounts) and the trades
    the executor drives, whichever counts more (a pending entry is a position soon)."""
    daily_realised_r: float = 0.0
    """Sum of the UTC day's closed live trades, in R (a loss is negative)."""
    daily_realised_usd: float = 0.0
    """The same in USD, fees and funding counted."""
    unrealised_usd: float = 0.0
    balance_usd: float | None = None
    """USDT wallet balance; None until known."""
    inputs_at: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(symbol, input) → when the daemon last received it: ``tape``, ``premium_index``,
    or an indicator's kind."""
    user_stream_behind_since: int | None = 0
    """Since when the user data stream has been disconnected or behind the account as
    REST shows it; None while in step (0, the default: never known to be in step)."""
    holes: Mapping[str, int] = field(default_factory=dict)
    """Symbol → unrepaired holes of its tape within the strategies' longest window."""
    paused: bool = False
    """The admin's pause (``live_config``)."""

    @property
    def open_positions(self) -> int:
        return sum(self.positions.values())


@dataclass(frozen=True, slots=True)
class EntryIntent:
    """An entry about to be sent: a signal of a strategy on a symbol, and what it reads."""

    symbol: str
    strategy: str
    tick_ms: int
    inputs: frozenset[str] = frozenset({TAPE_INPUT})
    """The collected inputs the strategy reads (``Strategy.inputs``)."""


@dataclass(frozen=True, slots=True)
class Allowed:
    pass


@dataclass(frozen=True, slots=True)
class Refused:
    rule: str
    values: Mapping[str, object]


ALLOWED = Allowed()
Decision = Allowed | Refused


@dataclass(frozen=True, slots=True)
class Condition:
    """A reason for a state other than ACTIVE: the rule, and the values that tripped it."""

    state: TradingState
    rule: str
    reason: str
    values: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of trading state the monitor decided, and what it calls for."""

    before: RiskState
    after: RiskState
    auto_resumed: bool = False

    @property
    def breaks(self) -> bool:
        """A circuit break: entries are cancelled and (``flatten_on_halt``) positions closed."""
        return self.after.state == "HALTED" and self.before.state != "HALTED"


def day_start_ms(now_ms: int) -> int:
    """00:00 UTC of the day of ``now_ms``."""
    return now_ms - now_ms % DAY_MS


def check_entry(
    intent: EntryIntent, view: RiskView, state: RiskState, limits: RiskLimits, now_ms: int
) -> Decision:
    """May this entry be sent now? The first rule it breaks, with the values, if not."""
    if state.state != "ACTIVE":
        return Refused(
            state.state.lower(), {"state": state.state, "rule": state.rule, "reason": state.reason}
        )
    open_positions = view.open_positions
    if open_positions >= limits.max_positions:
        return Refused("max_positions", {"open": open_positions, "limit": limits.max_positions})
    on_symbol = view.positions.get(intent.symbol, 0)
    if on_symbol >= limits.max_positions_per_symbol:
        return Refused(
            "max_positions_per_symbol",
            {"symbol": intent.symbol, "open": on_symbol, "limit": limits.max_positions_per_symbol},
        )
    for condition in _account_conditions(view, limits, now_ms):
        return Refused(condition.rule, condition.values)
    for name in sorted(intent.inputs):
        if name in UNTIMED_INPUTS:
            continue
        limit = _age_limit(name, limits)
        at = view.inputs_at.get((intent.symbol, name))
        if at is None or now_ms - at > limit:
            return Refused(
                f"stale_{'indicator' if limit == limits.max_indicator_age_ms else name}",
                {
                    "symbol": intent.symbol,
                    "input": name,
                    "age_ms": None if at is None else now_ms - at,
                    "limit_ms": limit,
                },
            )
    holes = view.holes.get(intent.symbol, 0)
    if holes:
        return Refused("tape_hole", {"symbol": intent.symbol, "holes": holes})
    return ALLOWED


def _age_limit(name: str, limits: RiskLimits) -> int:
    if name == TAPE_INPUT:
        return limits.max_tape_age_ms
    if name == PREMIUM_INDEX_INPUT:
        return limits.max_premium_index_age_ms
    return limits.max_indicator_age_ms


def _account_conditions(view: RiskView, limits: RiskLimits, now_ms: int) -> list[Condition]:
    """Every account-wide reason not to be ACTIVE now, breakers (HALTED) first."""
    halts: list[Condition] = []
    reduces: list[Condition] = []

    def loss(rule: str, lost: float, limit: float, what: str) -> None:
        if limit <= 0:
            return
        values = {"lost": round(lost, 8), "limit": limit}
        if lost >= limit:
            halts.append(Condition("HALTED", rule, f"{what} {lost:g} reached {limit:g}", values))
        elif lost >= round(limit * limits.reduce_at, 9):
            share = {**values, "reduce_at": limits.reduce_at}
            reason = f"{what} {lost:g} at {limits.reduce_at:g} of {limit:g}"
            reduces.append(Condition("REDUCING", rule, reason, share))

    loss("daily_loss_r", -view.daily_realised_r, limits.daily_loss_r, "daily realised loss (R)")
    loss("daily_loss_usd", -view.daily_realised_usd, limits.daily_loss_usd, "daily realised loss")
    loss(
        "unrealised_loss_usd",
        -view.unrealised_usd,
        limits.unrealised_loss_usd,
        "unrealised loss",
    )
    floor = limits.balance_floor_usd
    if floor > 0 and view.balance_usd is not None and view.balance_usd <= floor:
        values = {"balance": view.balance_usd, "floor": floor}
        halts.append(
            Condition(
                "HALTED", "balance_floor", f"balance {view.balance_usd:g} <= {floor:g}", values
            )
        )
    since = view.user_stream_behind_since
    if since is not None and now_ms - since > limits.max_user_stream_age_ms:
        stream: dict[str, object] = {
            "age_ms": now_ms - since,
            "limit_ms": limits.max_user_stream_age_ms,
        }
        reduces.append(
            Condition("REDUCING", "stale_user_stream", "user data stream not in step", stream)
        )
    return halts + reduces


def evaluate(
    view: RiskView, state: RiskState, limits: RiskLimits, now_ms: int
) -> Transition | None:
    """The monitor's round: the state the account and the data call for, if it changes.

    A breaker (HALTED) is latched: it stays until ``resume_after_ms`` has passed, no
    breaker condition holds, and the admin's pause is off; it then resumes to whatever
    the conditions call for (ACTIVE, or REDUCING)."""
    state = _roll_day(state, now_ms)
    conditions = _account_conditions(view, limits, now_ms)
    worst = conditions[0] if conditions else None
    if state.state == "HALTED":
        if worst is not None and worst.state == "HALTED":
            return None
        if state.resume_after_ms is not None and now_ms < state.resume_after_ms:
            return None
        if view.paused:
            return None
        after = _entered(state, worst, now_ms, limits) if worst else _active(state, now_ms)
        return Transition(state, after, auto_resumed=True)
    if worst is None:
        if state.state == "ACTIVE":
            return None
        return Transition(state, _active(state, now_ms))
    if worst.state == state.state and worst.rule == state.rule:
        return None
    return Transition(state, _entered(state, worst, now_ms, limits))


def refused(state: RiskState, rule: str) -> RiskState:
    """``state`` with one more refusal by ``rule`` counted."""
    counts = dict(state.refusals)
    counts[rule] = counts.get(rule, 0) + 1
    return msgspec.structs.replace(state, refusals=counts)


def _roll_day(state: RiskState, now_ms: int) -> RiskState:
    day = day_start_ms(now_ms)
    if state.breaks_day_ms == day:
        return state
    return msgspec.structs.replace(state, breaks_day_ms=day, breaks_today=0)


def _entered(state: RiskState, condition: Condition, now_ms: int, limits: RiskLimits) -> RiskState:
    halts = condition.state == "HALTED"
    resume_after = None
    if halts:
        resume_after = now_ms + limits.cooldown_ms
        if condition.rule in DAILY_RULES:
            resume_after = max(resume_after, day_start_ms(now_ms) + DAY_MS)
    return msgspec.structs.replace(
        state,
        state=condition.state,
        rule=condition.rule,
        reason=condition.reason,
        values=dict(condition.values),
        since_ms=now_ms,
        resume_after_ms=resume_after,
        breaks_today=state.breaks_today + (1 if halts else 0),
    )


def _active(state: RiskState, now_ms: int) -> RiskState:
    return msgspec.structs.replace(
        state,
        state="ACTIVE",
        rule=None,
        reason=None,
        values={},
        since_ms=now_ms,
        resume_after_ms=None,
    )


def held_too_long(since_ms: int | None, limits: RiskLimits, now_ms: int) -> bool:
    """A trade held since ``since_ms`` has passed the hold timeout."""
    return since_ms is not None and now_ms - since_ms >= limits.hold_timeout_ms
