"""The risk guard's trading state as it is kept (``risk_state``) and shown (``/api/risk``).

In the leaf package: the guard (trading/) decides it, the store keeps it across restarts,
and neither may import the other.
"""

from __future__ import annotations

from typing import Literal

import msgspec

TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]
"""ACTIVE: entries allowed; REDUCING: exits only; HALTED: the circuit breaker (entries
refused, positions flattened), left only by auto-resume."""


class RiskState(msgspec.Struct, frozen=True, kw_only=True):
    """The trading state in force and why; one row, read back at start (a restart never
    resets a breaker). Times are epoch ms."""

    state: TradingState = "ACTIVE"
    rule: str | None = None
    """The rule that put it there (``daily_loss_r``, ``balance_floor``, …)."""
    reason: str | None = None
    values: dict[str, object] = msgspec.field(default_factory=dict)
    """What the rule saw when it tripped."""
    since_ms: int = 0
    resume_after_ms: int | None = None
    """HALTED: the earliest auto-resume (the cooldown's end, or the next UTC day)."""
    breaks_day_ms: int = 0
    """00:00 UTC of the day ``breaks_today`` counts."""
    breaks_today: int = 0
    refusals: dict[str, int] = msgspec.field(default_factory=dict)
    """Rule → entries the gate refused by it."""
