"""Emergency controls as the CLI, the API, the daemon and the database see them.

A command (pause, resume, flatten, cancel-all) is a ``live_commands`` row from the moment
it is asked for to its end, whoever asked (``cli:<user>``, ``admin:<name>``, ``risk``):
the one audit trail of who asked what, when, and what came of it. The acknowledgement
carries the resulting state so that the person who asked sees what they changed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

ControlCommand = Literal["pause", "resume", "flatten", "cancel_all"]
COMMANDS: tuple[ControlCommand, ...] = ("pause", "resume", "flatten", "cancel_all")
CommandStatus = Literal["pending", "running", "requested", "done", "failed", "expired"]
"""``pending``: asked for, no daemon has taken it yet; ``running``: taken; ``requested``:
acknowledged, its effect still under way (a flatten being verified); ``done`` /
``failed``: over; ``expired``: nobody took it in time, and nobody ever will."""
AckStatus = Literal["done", "requested", "failed"]
FlattenReason = Literal["flatten", "manual_flatten", "risk_halt", "hold_timeout"]
"""Why a trade is closed at market: ``flatten`` (a stop the exchange refused, the machine's
own), ``manual_flatten`` (a person), ``risk_halt`` (the risk guard's breaker),
``hold_timeout`` (the risk guard's limit on how long a trade is held)."""


class ControlPosition(msgspec.Struct, frozen=True):
    symbol: str
    amount: str
    """Signed, as the exchange states it (``positionAmt``)."""


class ControlState(msgspec.Struct, frozen=True, kw_only=True):
    """The account after a command, read from the exchange (positions, open orders) and
    the executor (the pause in force)."""

    paused: bool
    positions: list[ControlPosition]
    open_orders: int
    """Open orders and open algo orders of the account."""

    def line(self) -> str:
        held = ", ".join(f"{p.symbol} {p.amount}" for p in self.positions) or "none"
        entries = "paused" if self.paused else "entries allowed"
        return f"{entries}; positions: {held}; open orders: {self.open_orders}"


class ControlRequest(msgspec.Struct, frozen=True, kw_only=True):
    command: ControlCommand
    who: str
    symbol: str | None = None
    """flatten: only this symbol's positions (None: every position)."""
    trade_id: int | None = None
    """flatten: only this live trade (the API's ``{"trade_id"}``)."""
    command_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    requested_at: datetime | None = None
    """Set by the database when the request is stored."""


class ControlAck(msgspec.Struct, frozen=True, kw_only=True):
    command_id: uuid.UUID
    command: ControlCommand
    who: str
    symbol: str | None
    trade_id: int | None
    status: AckStatus
    result: str
    """One line: what was done (or why not)."""
    state: ControlState | None
    """None when the exchange could not be read, or the command was refused unread (a
    trade the executor does not drive)."""
    detail: dict[str, Any] = msgspec.field(default_factory=dict)

    def line(self) -> str:
        state = f" ({self.state.line()})" if self.state is not None else ""
        return f"{self.command} {self.status}: {self.result}{state}"
