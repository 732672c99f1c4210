"""What the API may see of the daemon: callables and handles the composition root provides."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from aiohttp import web

from arbengine.domain.admin_rows import (
    Actor,
    AuditRow,
    InviteRevocation,
    InviteRow,
    InviteStatus,
    Refusal,
    Role,
    UserChange,
    UserRow,
)
from arbengine.domain.control_rows import ControlAck, ControlRequest
from arbengine.settings import LiveSettings, Settings


class AdminStore(Protocol):
    """The admin actions on users and invite codes, and their audit (the store's
    ``AdminRecords``, which ``arbengine admin`` uses too). The database being away is a
    ``RetryableError``."""

    async def users(self, after: int | None = None, limit: int | None = None) -> list[UserRow]: ...

    async def invites(
        self,
        status: InviteStatus | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[InviteRow]: ...

    async def invite_exists(self, code: str) -> bool: ...

    async def audit(self, after: int | None, limit: int) -> list[AuditRow]: ...

    async def ban(self, target: int | str, actor: Actor) -> UserChange: ...

    async def unban(self, target: int | str, actor: Actor) -> UserChange: ...

    async def set_role(self, target: int | str, role: Role, actor: Actor) -> UserChange: ...

    async def create_invites(
        self, count: int, ttl_ms: int | None, note: str | None, actor: Actor
    ) -> list[InviteRow] | Refusal: ...

    async def revoke_invite(self, code: str, actor: Actor) -> InviteRevocation: ...


@dataclass(frozen=True)
class ApiContext:
    """What the API may see of the daemon; built by the composition root."""

    version: str
    started_monotonic: float
    started_at: float
    db_ping: Callable[[], Awaitable[None]]
    db_size: Callable[[], Awaitable[int]]
    tasks: Callable[[], list[dict[str, Any]]]
    channels: Callable[[], list[dict[str, Any]]]
    pool: asyncpg.Pool | None = None
    """Database pool for the read routes (None only in tests of the bare app)."""
    settings: Settings | None = None
    """None only in tests of the bare app: defaults, and a signing key that is never stored."""
    health_timeout_s: float = 2.0
    degradations: Callable[[], list[dict[str, Any]]] = list
    """What the health board reports now (component, subject, reason, since)."""
    symbols: Callable[[], dict[str, Any] | None] = lambda: None
    """Configured, collected and skipped symbols (None when the daemon does not collect)."""
    backfill: Callable[[], list[dict[str, Any]] | None] = lambda: None
    """Start-up history per series: symbols done and expected (None: not collecting)."""
    rest: Callable[[], dict[str, Any] | None] = lambda: None
    """The exchange REST budget: limits, use, live reserve, waiting calls (None: no client)."""
    engine: Callable[[], dict[str, Any] | None] = lambda: None
    """The engine's readiness per symbol (None when the engine is off)."""
    strategies: Callable[[], Collection[str] | None] = lambda: None
    """Names of the strategies the engine has loaded now (None when it loaded none): what
    an admin may choose to trade live."""
    strategy_definitions: Callable[[], list[StrategyDefinition]] = list
    """The strategies the engine runs now (after any reload), enabled or not; empty when
    the engine is off."""
    live_file: Callable[[], LiveSettings | None] = lambda: None
    """The file's ``[live]`` in force (reloaded by SIGHUP); None: ``settings.live``."""
    live_control: Callable[[ControlRequest], Awaitable[ControlAck]] | None = None
    """Carry out an emergency command (pause, resume, flatten, cancel-all) in the daemon:
    its acknowledgement with the resulting state. None: live trading is not running."""
    admin: AdminStore | None = None
    """Users, invite codes and the audit for the admin routes (None only in tests of the
    bare app: they answer 503)."""
    risk: Callable[[], dict[str, Any]] | None = None
    """The risk guard's state, limits, current values and last transitions. None: live
    trading (and so the guard) is not running."""


@dataclass(frozen=True)
class StrategyDefinition:
    """A loaded strategy as the API shows it: its file with defaults, and its hash."""

    name: str
    hash: str
    enabled: bool
    symbols: tuple[str, ...]
    tick_ms: int
    threshold: float
    min_coverage: float
    document: dict[str, Any]
    """The file with every default written out (the hash input)."""


CONTEXT = web.AppKey("context", ApiContext)
OPENAPI = web.AppKey("openapi", bytes)
"""The encoded OpenAPI document, built once with the app."""
