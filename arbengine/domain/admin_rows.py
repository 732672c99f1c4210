"""Users, invite codes and the admin audit as the API, the command line and the database see
them.

An admin action (ban, unban, a role, invites) is one operation whoever asks: an admin
through the API (``admin:<name>``, whose own row is checked in the action's transaction:
still an admin, not banned) or the operator at the command line (``cli:<os user>``, who
owns the database and is not checked). Every attempt ends in one of four results, each an
``admin_audit`` row: ``done``, ``unchanged`` (it already was so: asking twice is safe),
``refused`` (with why) or ``not_found``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

import msgspec

from arbengine.domain.durations import format_duration_ms, parse_duration_ms

Role = Literal["user", "admin"]
AdminAction = Literal["create_admin", "ban", "unban", "set_role", "create_invites", "revoke_invite"]
AuditResult = Literal["done", "unchanged", "refused", "not_found"]
InviteStatus = Literal["usable", "used", "revoked", "expired"]
Refusal = Literal["self_ban", "self_demotion", "not_admin", "invite_used"]
"""Why an action was refused: an admin banning or demoting themself (so a deployment always
keeps an admin), an actor no longer an admin when their action ran (another admin got
there first), an invite already used (a used code stays on record)."""

MAX_INVITES = 1000
"""Codes one request (or one ``gen-invite``) may create."""
MIN_INVITE_TTL_MS = 60_000
MAX_INVITE_TTL_MS = 3650 * 86_400_000
NOTE_MAX = 200


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    who: str
    """``admin:<name>`` or ``cli:<os user>``: the audit's ``who``."""
    user_id: int | None = None
    """The acting admin's id (the API): checked, locked, in the action's transaction.
    None for the command line, which acts as the database's owner."""


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    username: str
    role: Role
    banned: bool
    created_at: datetime
    last_login_at: datetime | None
    active_sessions: int
    """Logins whose refresh token can still be used (not spent, revoked or expired)."""


class InviteRow(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    created_at: datetime
    created_by: str | None
    """The admin who made it (null: the command line, or a deleted user)."""
    expires_at: datetime | None
    used_by: str | None
    used_at: datetime | None
    revoked_at: datetime | None
    note: str | None
    status: InviteStatus


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    who: str
    action: AdminAction
    target: str | None
    result: AuditResult
    detail: dict[str, Any]


class UserChange(msgspec.Struct, frozen=True, kw_only=True):
    """What became of a ban, unban or role change."""

    result: AuditResult
    user: UserRow | None
    """The user after it (before it, when refused); None when there is no such user."""
    refusal: Refusal | None = None
    sessions_revoked: int = 0


class InviteRevocation(msgspec.Struct, frozen=True, kw_only=True):
    result: AuditResult
    invite: InviteRow | None
    refusal: Refusal | None = None


def new_invite_codes(count: int) -> list[str]:
    """``count`` fresh single-use codes (24 URL-safe characters: 144 random bits each)."""
    return [secrets.token_urlsafe(18) for _ in range(count)]


def invite_ttl_problem(ms: int) -> str | None:
    """Why an invite cannot live ``ms`` milliseconds, or None when it can."""
    if not MIN_INVITE_TTL_MS <= ms <= MAX_INVITE_TTL_MS:
        low, high = format_duration_ms(MIN_INVITE_TTL_MS), format_duration_ms(MAX_INVITE_TTL_MS)
        return f"an invite expires in {low} to {high}"
    return None


def parse_invite_ttl(text: str) -> int:
    """An invite's life as the command line writes it (``7d``), in ms; ValueError says why."""
    ms = parse_duration_ms(text)
    problem = invite_ttl_problem(ms)
    if problem is not None:
        raise ValueError(f"{problem}, not {text}")
    return ms
