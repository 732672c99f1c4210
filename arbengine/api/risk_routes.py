"""The risk guard as the daemon sees it now (``GET /api/risk``), for any signed-in user.

Read from the guard's memory (the composition root's ``risk`` snapshot), not the
database: the state in force, why, the limits, the values of the monitor's last round
and its last transitions.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from arbengine.api.context import CONTEXT
from arbengine.api.http_errors import ApiError
from arbengine.api.schemas import _Shape
from arbengine.api.services import Call


class RiskReply(_Shape):
    state: Literal["ACTIVE", "REDUCING", "HALTED"]
    """ACTIVE: entries allowed; REDUCING: exits only; HALTED: the circuit breaker."""
    paused: bool
    """The admin's pause (``live_config``): no entry, and no auto-resume while set."""
    rule: str | None
    reason: str | None
    values: dict[str, Any]
    """What the rule saw when the state changed."""
    since_ms: int
    resume_after_ms: int | None
    """HALTED: the earliest auto-resume (once its condition has cleared)."""
    breaks_today: int
    refusals: dict[str, int]
    """Rule → entries refused by it."""
    limits: dict[str, Any]
    current: dict[str, Any]
    """The monitor's last round: positions, the day's realised R and USD, unrealised
    PnL, balance, the user stream's and each input's age, the tape's holes."""
    transitions: list[dict[str, Any]]
    """Newest first: ``risk.state_changed`` and ``risk.auto_resumed`` events."""


class LiveStatus(_Shape):
    enabled: bool
    """Live trading (with its risk guard and emergency controls) runs in this daemon."""
    environment: Literal["testnet", "production"] | None
    """Where it trades; null when it does not run."""


async def live_status(call: Call) -> LiveStatus:
    """Whether live trading runs here, as a 200: pages ask this first, so a daemon without
    live trading answers nothing they must read as a failure."""
    ctx = call.request.app[CONTEXT]
    enabled = ctx.live_control is not None
    environment = ctx.settings.live.environment if enabled and ctx.settings is not None else None
    return LiveStatus(enabled=enabled, environment=environment)


async def risk(call: Call) -> RiskReply:
    snapshot = call.request.app[CONTEXT].risk
    if snapshot is None:
        raise ApiError(409, "live_off", "live trading (and its risk guard) does not run here")
    return msgspec.convert(snapshot(), RiskReply)
