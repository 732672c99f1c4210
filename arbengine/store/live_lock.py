"""One live executor per exchange account: a PostgreSQL advisory lock.

Several deployments may share one database (ARCHITECTURE.md, "Beyond one machine"),
and two daemons trading one account would double every position. So the executor
holds a session-level advisory lock keyed by the account, on a connection of its own
(not a pooled one: a pool resets its connections, which releases their locks) for
as long as the process lives; PostgreSQL releases it when that connection ends, a
killed process included. The key is derived from a hash of the API key, so the key
itself is never sent to the database or shown: ``pg_locks`` shows only the number.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

import asyncpg

from arbengine.domain.errors import FatalError
from arbengine.store.database import OUTAGE_ERRORS, outage_error

APPLICATION_NAME = "arbengine-live"
"""The lock connection's ``application_name``: what ``pg_stat_activity`` calls it."""


def account_lock_key(api_key: str) -> int:
    """The advisory lock key of an account: 64 bits of a hash of its API key, namespaced
    so no other advisory lock of ours can collide with it."""
    digest = hashlib.sha256(b"arbengine.live.account\x00" + api_key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class LockHolder:
    """Who holds an account's lock, as PostgreSQL sees them (for the refusal message)."""

    pid: int
    client: str | None
    since: str | None

    def describe(self) -> str:
        where = f" from {self.client}" if self.client else ""
        since = f" since {self.since}" if self.since else ""
        return f"database session {self.pid}{where}{since}"


class AccountLock:
    """The held lock: its connection, and whether it is still held."""

    def __init__(self, conn: asyncpg.Connection, key: int) -> None:
        self.key = key
        self._conn = conn
        self._lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: self._lost.set())

    @property
    def session_pid(self) -> int:
        """The holding session's process id on the server (what a refusal names)."""
        return int(self._conn.get_server_pid())

    @property
    def held(self) -> bool:
        """False once the connection has ended: the lock is gone, and another process may
        have taken it; the executor must stop trading."""
        return not self._lost.is_set() and not self._conn.is_closed()

    async def wait_lost(self) -> None:
        """Return when the lock's connection ends (a database restart, a network cut)."""
        await self._lost.wait()

    async def release(self) -> None:
        """Close the connection, which releases the lock."""
        self._lost.set()
        if not self._conn.is_closed():
            try:
                await asyncio.wait_for(self._conn.close(), timeout=5.0)
            except OUTAGE_ERRORS:  # TimeoutError among them
                self._conn.terminate()

    async def __aenter__(self) -> AccountLock:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.release()


async def lock_holder(conn: asyncpg.Connection, key: int) -> LockHolder | None:
    """The session holding ``key``, if any (a bigint key is split over classid, objid)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    record = await conn.fetchrow(
        "SELECT l.pid, a.client_addr::text AS client, "
        "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS since "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid::bigint = $1 AND l.objid::bigint = $2 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        unsigned >> 32,
        unsigned & 0xFFFF_FFFF,
    )
    if record is None:
        return None
    return LockHolder(pid=int(record["pid"]), client=record["client"], since=record["since"])


class AccountInUse(FatalError):
    """Another process holds the account's lock: this one must not trade until it stops."""

    def __init__(self, holder: LockHolder | None) -> None:
        self.holder = holder
        who = holder.describe() if holder else "another process (it let go just now)"
        super().__init__(f"another executor trades this account: {who}")


async def acquire_account_lock(
    database_url: str, api_key: str, timeout_s: float = 10.0
) -> AccountLock:
    """Take the account's lock on a new connection, or raise ``AccountInUse`` at once if
    another process holds it (never waits for it); PostgreSQL being away is
    ``DatabaseUnavailable``."""
    key = account_lock_key(api_key)
    try:
        conn = await asyncpg.connect(
            database_url,
            timeout=timeout_s,
            server_settings={"application_name": APPLICATION_NAME},
        )
    except OUTAGE_ERRORS as exc:
        raise outage_error(exc, "account lock") from exc
    try:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key, timeout=timeout_s):
            return AccountLock(conn, key)
        holder = await lock_holder(conn, key)
    except OUTAGE_ERRORS as exc:
        conn.terminate()
        raise outage_error(exc, "account lock") from exc
    except BaseException:
        conn.terminate()
        raise
    await conn.close()
    raise AccountInUse(holder)
