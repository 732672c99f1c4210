"""SQL of the admin actions on ``users`` and ``invite_codes``, and of their ``admin_audit``
rows (migration 0015): the one implementation behind the API's admin routes and
``arbengine admin``.

Each action runs on a connection in a transaction its caller opened (``AdminRecords``): it
locks the rows it decides on, acts, and writes its audit row, so an action and its row
commit together. An acting admin's own row is locked with the target's, in id order, and
checked (still an admin, not banned): of two admins acting on each other at once, the
second finds it is no longer an admin and is refused, never leaving a deployment with no
admin. Whose action is refused, or finds nothing, is recorded all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec
import orjson

from arbengine.domain.admin_rows import (
    Actor,
    AdminAction,
    AuditResult,
    AuditRow,
    InviteRevocation,
    InviteRow,
    InviteStatus,
    Refusal,
    Role,
    UserChange,
    UserRow,
)

UserRef = int | str
"""A user by id (the API) or by username (the command line)."""
UserAction = Literal["ban", "unban", "set_role"]

_USER_SELECT = """
    SELECT u.id, u.username, u.role, u.banned, u.created_at, u.last_login_at,
           (SELECT count(*) FROM refresh_tokens t
            WHERE t.user_id = u.id AND t.revoked_at IS NULL AND t.used_at IS NULL
              AND t.expires_at > now()) AS active_sessions
    FROM users u
"""

_INVITE_SELECT = """
    SELECT i.code, i.created_at, c.username AS created_by, i.expires_at,
           u.username AS used_by, i.used_at, i.revoked_at, i.note,
           CASE WHEN i.used_at IS NOT NULL THEN 'used'
                WHEN i.revoked_at IS NOT NULL THEN 'revoked'
                WHEN i.expires_at <= now() THEN 'expired'
                ELSE 'usable' END AS status
    FROM invite_codes i
    LEFT JOIN users c ON c.id = i.created_by
    LEFT JOIN users u ON u.id = i.used_by
"""


def _user(record: asyncpg.Record) -> UserRow:
    return msgspec.convert(dict(record), UserRow)


def _invite(record: asyncpg.Record) -> InviteRow:
    return msgspec.convert(dict(record), InviteRow)


# -- reads ------------------------------------------------------------------------------------


async def list_users(
    conn: asyncpg.Connection, after: int | None, limit: int | None, timeout: float | None = None
) -> list[UserRow]:
    """Users by id, those after ``after``; ``limit`` None: all of them."""
    records = await conn.fetch(
        _USER_SELECT + " WHERE $1::bigint IS NULL OR u.id > $1 ORDER BY u.id LIMIT $2",
        after,
        limit,
        timeout=timeout,
    )
    return [_user(r) for r in records]


async def list_invites(
    conn: asyncpg.Connection,
    status: InviteStatus | None,
    after: str | None,
    limit: int | None,
    timeout: float | None = None,
) -> list[InviteRow]:
    """Invite codes newest first (of one status, if given), those after the code ``after``
    in that order; ``limit`` None: all of them."""
    records = await conn.fetch(
        f"""
        SELECT * FROM ({_INVITE_SELECT}) v
        WHERE ($1::text IS NULL OR v.status = $1)
          AND ($2::text IS NULL OR (v.created_at, v.code) < (
                SELECT created_at, code FROM invite_codes WHERE code = $2))
        ORDER BY v.created_at DESC, v.code DESC LIMIT $3
        """,
        status,
        after,
        limit,
        timeout=timeout,
    )
    return [_invite(r) for r in records]


async def invite_exists(conn: asyncpg.Connection, code: str, timeout: float | None = None) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM invite_codes WHERE code = $1", code, timeout=timeout
    )
    return bool(found)


async def list_audit(
    conn: asyncpg.Connection, after: int | None, limit: int, timeout: float | None = None
) -> list[AuditRow]:
    """Audit rows latest first, those older than the row ``after``."""
    records = await conn.fetch(
        """
        SELECT id, at, who, action, target, result, detail::text AS detail FROM admin_audit
        WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2
        """,
        after,
        limit,
        timeout=timeout,
    )
    rows = []
    for record in records:
        fields = dict(record)
        fields["detail"] = orjson.loads(fields["detail"])
        rows.append(msgspec.convert(fields, AuditRow))
    return rows


# -- users -------------------------------------------------------------------------------------


async def create_user(
    conn: asyncpg.Connection, username: str, password_hash: str, role: Role
) -> int | None:
    """A new user's id; None when the name is taken (in any letter case)."""
    user_id: int | None = await conn.fetchval(
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING id",
        username,
        password_hash,
        role,
    )
    return user_id


async def create_admin(
    conn: asyncpg.Connection, username: str, password_hash: str, actor: Actor
) -> UserRow | None:
    """A new admin account (the command line's ``create-admin``); None when the name is
    taken."""
    user_id = await create_user(conn, username, password_hash, "admin")
    if user_id is None:
        await _audit(conn, actor, "create_admin", username, "refused", {"reason": "name_taken"})
        return None
    await _audit(conn, actor, "create_admin", username, "done", {"user_id": user_id})
    return await _user_by_id(conn, user_id)


async def change_user(
    conn: asyncpg.Connection,
    action: UserAction,
    target: UserRef,
    actor: Actor,
    role: Role | None = None,
) -> UserChange:
    """Ban, unban, or give ``role`` to a user, as ``actor``.

    A ban revokes every refresh token of the user at once (even when already banned: a
    login racing the ban may have stored one); the ``users`` trigger tells every API
    process to drop the user's cached state. An admin may not ban themself nor take
    their own admin role.
    """
    rows = await conn.fetch(
        """
        SELECT id, username, role, banned FROM users
        WHERE id = ANY($1::bigint[]) OR username = $2
        ORDER BY id FOR UPDATE
        """,
        [i for i in (target if isinstance(target, int) else None, actor.user_id) if i is not None],
        target if isinstance(target, str) else None,
    )
    found = next(
        (r for r in rows if (r["id"] if isinstance(target, int) else r["username"]) == target),
        None,
    )
    named = found["username"] if found else f"#{target}" if isinstance(target, int) else target
    if _not_admin(actor, rows):
        return await _user_refused(conn, action, named, actor, None, "not_admin")
    if found is None:
        await _audit(conn, actor, action, named, "not_found", {})
        return UserChange(result="not_found", user=None)
    user_id, name = found["id"], found["username"]
    yourself = actor.user_id == user_id
    if action == "ban":
        if yourself:
            return await _user_refused(conn, action, name, actor, user_id, "self_ban")
        changed = not found["banned"]
        if changed:
            await conn.execute("UPDATE users SET banned = true WHERE id = $1", user_id)
        revoked = await conn.fetch(
            "UPDATE refresh_tokens SET revoked_at = now() "
            "WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
            user_id,
        )
        detail: dict[str, Any] = {"user_id": user_id, "sessions_revoked": len(revoked)}
    elif action == "unban":
        changed = found["banned"]
        if changed:
            await conn.execute("UPDATE users SET banned = false WHERE id = $1", user_id)
        revoked, detail = [], {"user_id": user_id}
    else:
        assert role is not None
        if yourself and role != "admin":
            return await _user_refused(conn, action, name, actor, user_id, "self_demotion")
        changed = found["role"] != role
        if changed:
            await conn.execute("UPDATE users SET role = $2 WHERE id = $1", user_id, role)
        revoked, detail = [], {"user_id": user_id, "before": found["role"], "after": role}
    result: AuditResult = "done" if changed else "unchanged"
    await _audit(conn, actor, action, name, result, detail)
    return UserChange(
        result=result, user=await _user_by_id(conn, user_id), sessions_revoked=len(revoked)
    )


async def _user_refused(
    conn: asyncpg.Connection,
    action: AdminAction,
    named: str,
    actor: Actor,
    user_id: int | None,
    refusal: Refusal,
) -> UserChange:
    await _audit(conn, actor, action, named, "refused", {"user_id": user_id, "reason": refusal})
    user = await _user_by_id(conn, user_id) if user_id is not None else None
    return UserChange(result="refused", user=user, refusal=refusal)


async def _user_by_id(conn: asyncpg.Connection, user_id: int) -> UserRow | None:
    record = await conn.fetchrow(_USER_SELECT + " WHERE u.id = $1", user_id)
    return _user(record) if record is not None else None


def _not_admin(actor: Actor, rows: Sequence[asyncpg.Record]) -> bool:
    """The acting admin's row (among ``rows``, locked) says they may not act any more."""
    if actor.user_id is None:
        return False  # the command line: the database's owner
    own = next((r for r in rows if r["id"] == actor.user_id), None)
    return own is None or own["role"] != "admin" or own["banned"]


async def _actor_refusal(conn: asyncpg.Connection, actor: Actor) -> Refusal | None:
    """Lock the acting admin's row against a concurrent demotion or ban, and check it."""
    if actor.user_id is None:
        return None
    rows = await conn.fetch(
        "SELECT id, role, banned FROM users WHERE id = $1 FOR SHARE", actor.user_id
    )
    return "not_admin" if _not_admin(actor, rows) else None


# -- invites ---------------------------------------------------------------------------------


async def create_invites(
    conn: asyncpg.Connection,
    codes: Sequence[str],
    ttl_ms: int | None,
    note: str | None,
    actor: Actor,
) -> list[InviteRow] | Refusal:
    """Store new codes, made by ``actor``, valid for ``ttl_ms`` by the database's clock (the
    one their status is read by; None: no expiry); the codes newest first (or why not)."""
    target = f"{len(codes)} invite code{'s' if len(codes) != 1 else ''}"
    refusal = await _actor_refusal(conn, actor)
    if refusal is not None:
        await _audit(conn, actor, "create_invites", target, "refused", {"reason": refusal})
        return refusal
    expires_at: datetime | None = await conn.fetchval(
        "SELECT now() + $1::bigint * interval '1 millisecond'", ttl_ms
    )
    await conn.execute(
        "INSERT INTO invite_codes (code, created_by, expires_at, note) "
        "SELECT unnest($1::text[]), $2, $3, $4",
        list(codes),
        actor.user_id,
        expires_at,
        note,
    )
    detail = {"codes": list(codes), "expires_at": expires_at, "note": note}
    await _audit(conn, actor, "create_invites", target, "done", detail)
    records = await conn.fetch(
        _INVITE_SELECT + " WHERE i.code = ANY($1::text[]) ORDER BY i.created_at DESC, i.code DESC",
        list(codes),
    )
    return [_invite(r) for r in records]


async def revoke_invite(conn: asyncpg.Connection, code: str, actor: Actor) -> InviteRevocation:
    """Revoke an unused code: it never registers anyone after this commits. A used code
    cannot be revoked (refused); a revoked one answers unchanged.

    The row lock orders a revocation and a registration racing for the code: the
    registration's claim (``used_at IS NULL AND revoked_at IS NULL``) or this, never both.
    """
    refusal = await _actor_refusal(conn, actor)
    if refusal is not None:
        await _audit(conn, actor, "revoke_invite", code, "refused", {"reason": refusal})
        return InviteRevocation(result="refused", invite=None, refusal=refusal)
    row = await conn.fetchrow(
        "SELECT used_at, revoked_at FROM invite_codes WHERE code = $1 FOR UPDATE", code
    )
    if row is None:
        await _audit(conn, actor, "revoke_invite", code, "not_found", {})
        return InviteRevocation(result="not_found", invite=None)
    result: AuditResult
    refused: Refusal | None = None
    if row["used_at"] is not None:
        result, refused = "refused", "invite_used"
    elif row["revoked_at"] is not None:
        result = "unchanged"
    else:
        result = "done"
        await conn.execute("UPDATE invite_codes SET revoked_at = now() WHERE code = $1", code)
    await _audit(conn, actor, "revoke_invite", code, result, {"reason": refused} if refused else {})
    invite = await conn.fetchrow(_INVITE_SELECT + " WHERE i.code = $1", code)
    assert invite is not None  # locked above: it is still there
    return InviteRevocation(result=result, invite=_invite(invite), refusal=refused)


# -- audit -------------------------------------------------------------------------------------


async def _audit(
    conn: asyncpg.Connection,
    actor: Actor,
    action: AdminAction,
    target: str | None,
    result: AuditResult,
    detail: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO admin_audit (who, action, target, result, detail) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        actor.who,
        action,
        target,
        result,
        orjson.dumps(detail).decode(),
    )
