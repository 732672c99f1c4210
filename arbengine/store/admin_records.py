"""Admin actions on users and invite codes, and the audit, each on its own pooled connection
(SQL in ``store/admin_sql.py``), bound to a ``Database`` by the composition root: the
daemon's for the API's admin routes, a one-off command's for ``arbengine admin``.

Every action is one transaction within ``timeout_s``, a read one query within it.
PostgreSQL being away, or not answering in time, surfaces as ``DatabaseUnavailable``
(retryable): the API answers 503, the command line one line and exit status 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

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
    new_invite_codes,
)
from arbengine.store import admin_sql
from arbengine.store.admin_sql import UserRef
from arbengine.store.database import OUTAGE_ERRORS, Database, outage_error, write_transaction


class AdminRecords:
    def __init__(self, db: Database, timeout_s: float = 10.0) -> None:
        self._db = db
        self._timeout_s = timeout_s

    @contextlib.asynccontextmanager
    async def _acting(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with write_transaction(self._db.pool, self._timeout_s) as conn:
                yield conn
        except OUTAGE_ERRORS as exc:  # WriteTimeout is a TimeoutError
            raise outage_error(exc, "admin records") from exc

    # -- reads

    async def users(self, after: int | None = None, limit: int | None = None) -> list[UserRow]:
        async with self._db.acquire(self._timeout_s) as conn:
            return await admin_sql.list_users(conn, after, limit, self._timeout_s)

    async def invites(
        self,
        status: InviteStatus | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[InviteRow]:
        async with self._db.acquire(self._timeout_s) as conn:
            return await admin_sql.list_invites(conn, status, after, limit, self._timeout_s)

    async def invite_exists(self, code: str) -> bool:
        async with self._db.acquire(self._timeout_s) as conn:
            return await admin_sql.invite_exists(conn, code, self._timeout_s)

    async def audit(self, after: int | None, limit: int) -> list[AuditRow]:
        async with self._db.acquire(self._timeout_s) as conn:
            return await admin_sql.list_audit(conn, after, limit, self._timeout_s)

    # -- actions

    async def create_admin(self, username: str, password_hash: str, actor: Actor) -> UserRow | None:
        async with self._acting() as conn:
            return await admin_sql.create_admin(conn, username, password_hash, actor)

    async def ban(self, target: UserRef, actor: Actor) -> UserChange:
        async with self._acting() as conn:
            return await admin_sql.change_user(conn, "ban", target, actor)

    async def unban(self, target: UserRef, actor: Actor) -> UserChange:
        async with self._acting() as conn:
            return await admin_sql.change_user(conn, "unban", target, actor)

    async def set_role(self, target: UserRef, role: Role, actor: Actor) -> UserChange:
        async with self._acting() as conn:
            return await admin_sql.change_user(conn, "set_role", target, actor, role)

    async def create_invites(
        self, count: int, ttl_ms: int | None, note: str | None, actor: Actor
    ) -> list[InviteRow] | Refusal:
        """``count`` new codes valid for ``ttl_ms`` (None: no expiry), newest first."""
        async with self._acting() as conn:
            return await admin_sql.create_invites(
                conn, new_invite_codes(count), ttl_ms, note, actor
            )

    async def revoke_invite(self, code: str, actor: Actor) -> InviteRevocation:
        async with self._acting() as conn:
            return await admin_sql.revoke_invite(conn, code, actor)
