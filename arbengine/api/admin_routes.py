"""Admins manage users (ban, unban, role) and invite codes (make, list, revoke), and read the
audit of it all.

The actions are the store's (``ApiContext.admin``, the same ones ``arbengine admin``
runs): each one checks, in its own transaction, that the acting admin still is one, acts,
and writes its ``admin_audit`` row. Here they are answered: ``done`` or ``unchanged`` 200,
a refusal 409 (yourself, a used invite) or 403 (no longer an admin), nothing there 404,
the database away 503. Each is logged as ``admin.<action>``.

A ban or role change reaches every API process through the ``users`` trigger's NOTIFY;
this process also drops the user's cached state itself, before answering, so the banned
user's very next request here is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec

from arbengine.api.context import CONTEXT, AdminStore
from arbengine.api.http_errors import ApiError, database_unavailable
from arbengine.api.schemas import (
    AdminInvite,
    AdminInviteReply,
    AdminInvites,
    AdminInvitesQuery,
    AdminUser,
    AdminUserReply,
    AdminUsers,
    AdminUsersQuery,
    AuditEntry,
    AuditLog,
    AuditQuery,
    CreatedInvites,
    InviteBody,
    InvitePath,
    RoleBody,
    UserPath,
)
from arbengine.api.services import Call
from arbengine.domain.admin_rows import Actor, InviteRow, Refusal, UserChange, UserRow
from arbengine.domain.errors import RetryableError
from arbengine.logs import get_logger

log = get_logger("api.admin")
T = TypeVar("T")

_REFUSALS: dict[Refusal, tuple[int, str]] = {
    "self_ban": (409, "you cannot ban yourself: another admin must"),
    "self_demotion": (
        409,
        "you cannot take away your own admin role: another admin must (so that a "
        "deployment always keeps an admin)",
    ),
    "invite_used": (409, "this invite code was used: a used code cannot be revoked"),
    "not_admin": (403, "you are no longer an admin"),
}


# -- users ------------------------------------------------------------------------------------


async def users(call: Call) -> AdminUsers:
    query: AdminUsersQuery = call.query
    rows = await _do(_store(call).users(query.after, query.limit + 1))
    page, more = rows[: query.limit], len(rows) > query.limit
    return AdminUsers(rows=[_user(row) for row in page], next_after=page[-1].id if more else None)


async def ban(call: Call) -> AdminUserReply:
    path: UserPath = call.path
    change = await _do(_store(call).ban(path.id, _actor(call)))
    return _user_reply(call, "admin.ban", change)


async def unban(call: Call) -> AdminUserReply:
    path: UserPath = call.path
    change = await _do(_store(call).unban(path.id, _actor(call)))
    return _user_reply(call, "admin.unban", change)


async def set_role(call: Call) -> AdminUserReply:
    path: UserPath = call.path
    body: RoleBody = call.body
    change = await _do(_store(call).set_role(path.id, body.role, _actor(call)))
    return _user_reply(call, "admin.set_role", change, role=body.role)


def _user_reply(call: Call, event: str, change: UserChange, **context: Any) -> AdminUserReply:
    path: UserPath = call.path
    user = change.user
    if user is not None and change.result in ("done", "unchanged"):
        # Not waiting for the NOTIFY: the user's next request here must see the change.
        users = call.services.users
        if users is not None:
            users.invalidate(user.id)
    log.info(
        event,
        who=_actor(call).who,
        user_id=path.id,
        username=user.username if user is not None else None,
        result=change.result,
        refusal=change.refusal,
        sessions_revoked=change.sessions_revoked,
        **context,
    )
    if change.refusal is not None:
        raise _refused(change.refusal)
    if user is None:
        raise ApiError(404, "not_found", f"no user with id {path.id}", "id")
    assert change.result in ("done", "unchanged")
    return AdminUserReply(
        result=change.result, user=_user(user), sessions_revoked=change.sessions_revoked
    )


# -- invites ----------------------------------------------------------------------------------


async def invites(call: Call) -> AdminInvites:
    query: AdminInvitesQuery = call.query
    store = _store(call)
    if query.after is not None and not await _do(store.invite_exists(query.after)):
        raise ApiError(404, "not_found", f"after: no invite code {query.after!r}", "after")
    rows = await _do(store.invites(query.status, query.after, query.limit + 1))
    page, more = rows[: query.limit], len(rows) > query.limit
    return AdminInvites(
        rows=[_invite(row) for row in page], next_after=page[-1].code if more else None
    )


async def create_invites(call: Call) -> CreatedInvites:
    body: InviteBody = call.body
    ttl_ms = body.expires_in * 1000 if body.expires_in is not None else None
    made = await _do(_store(call).create_invites(body.count, ttl_ms, body.note, _actor(call)))
    refused = made if isinstance(made, str) else None
    # The codes themselves are not logged: an unused one lets anyone register.
    log.info(
        "admin.create_invites",
        who=_actor(call).who,
        count=body.count,
        expires_in_s=body.expires_in,
        result="refused" if refused else "done",
        refusal=refused,
    )
    if isinstance(made, str):
        raise _refused(made)
    return CreatedInvites(rows=[_invite(row) for row in made])


async def revoke_invite(call: Call) -> AdminInviteReply:
    path: InvitePath = call.path
    revocation = await _do(_store(call).revoke_invite(path.code, _actor(call)))
    log.info(
        "admin.revoke_invite",
        who=_actor(call).who,
        code=path.code,
        result=revocation.result,
        refusal=revocation.refusal,
    )
    if revocation.refusal is not None:
        raise _refused(revocation.refusal)
    if revocation.invite is None:
        raise ApiError(404, "not_found", f"no invite code {path.code!r}", "code")
    assert revocation.result in ("done", "unchanged")
    return AdminInviteReply(result=revocation.result, invite=_invite(revocation.invite))


# -- audit ------------------------------------------------------------------------------------


async def audit(call: Call) -> AuditLog:
    query: AuditQuery = call.query
    rows = await _do(_store(call).audit(query.after, query.limit + 1))
    page, more = rows[: query.limit], len(rows) > query.limit
    return AuditLog(
        rows=[msgspec.convert(msgspec.structs.asdict(row), AuditEntry) for row in page],
        next_after=page[-1].id if more else None,
    )


# -- plumbing ----------------------------------------------------------------------------------


def _store(call: Call) -> AdminStore:
    store = call.request.app[CONTEXT].admin
    if store is None:
        raise ApiError(503, "database_unavailable", "this server has no database")
    return store


def _actor(call: Call) -> Actor:
    assert call.user is not None  # an admin route is authenticated
    return Actor(who=f"admin:{call.user.username}", user_id=call.user.id)


async def _do(step: Awaitable[T]) -> T:
    """The store's answer; the database away (or too slow) is 503, never 500."""
    try:
        return await step
    except RetryableError:
        raise database_unavailable() from None


def _refused(refusal: Refusal) -> ApiError:
    status, message = _REFUSALS[refusal]
    return ApiError(status, "forbidden" if status == 403 else refusal, message)


def _user(row: UserRow) -> AdminUser:
    return msgspec.convert(msgspec.structs.asdict(row), AdminUser)


def _invite(row: InviteRow) -> AdminInvite:
    return msgspec.convert(msgspec.structs.asdict(row), AdminInvite)
