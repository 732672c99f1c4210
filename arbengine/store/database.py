"""The database resource: embedded server or a given URL, a pool, migrations applied.

One async context manager that the composition root enters once; leaving it
closes the pool and, when we started it, stops the embedded server.

PostgreSQL being away is an outage (``DatabaseUnavailable``, retryable): the
daemon waits for it at start and its components back off through it at run
time. PostgreSQL refusing us (a wrong password, no such database) is a
configuration error (``DatabaseRejected``): waiting would not fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from arbengine.domain.errors import ConfigError, FatalError, RetryableError
from arbengine.settings import DatabaseSettings
from arbengine.store.embedded import EmbeddedServer, embedded_server
from arbengine.store.migrations import apply_migrations

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, a name that does not resolve (yet)
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,  # a connection closed under us
)
"""What PostgreSQL being away looks like: worth waiting out, never a reason to exit."""

REJECTED_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,  # no such role, wrong password
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.ClientConfigurationError,  # a URL asyncpg cannot use
)
"""What a wrong URL or wrong credentials look like: waiting will not fix them."""


class DatabaseUnavailable(RetryableError):
    """PostgreSQL cannot be reached (refused, reset, shut down, timed out): try again later."""


class DatabaseRejected(ConfigError):
    """PostgreSQL answered but refused us: a wrong URL, user, password or database name."""


def outage_error(exc: BaseException, where: str) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"PostgreSQL unavailable ({where}): {type(exc).__name__}: {exc}")


ROWS_PER_WRITE_TIMEOUT = 50_000
"""A write of more rows than this gets proportionally longer than the write timeout."""


class WriteTimeout(TimeoutError):
    """A write got no connection, or no answer, in time; its connection was closed."""


@contextlib.asynccontextmanager
async def write_transaction(
    pool: asyncpg.Pool, timeout_s: float, rows: int = 0
) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection in a transaction that must be done within ``timeout_s``
    (getting the connection included; longer for more than ROWS_PER_WRITE_TIMEOUT rows).

    A frozen server (a stalled disk, a paused machine) answers nothing and closes
    nothing, and asyncpg's own timeouts then wait on a cancel request the server never
    acts on. So at the deadline the connection is closed instead: the server rolls the
    transaction back, the caller gets WriteTimeout, the pool connects afresh next time.
    A cancelled write closes its connection at once the same way, and stays cancelled.
    """
    timeout_s *= max(1.0, rows / ROWS_PER_WRITE_TIMEOUT)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        conn = await pool.acquire(timeout=timeout_s)
    except TimeoutError:
        raise WriteTimeout(f"no database connection within {timeout_s:g}s") from None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        conn.terminate()

    timer = loop.call_at(deadline, expire)
    cancelled: asyncio.CancelledError | None = None
    try:
        async with conn.transaction():
            try:
                yield conn
            except asyncio.CancelledError as exc:
                # Stopping: a rollback would wait for the busy (or frozen) server to answer,
                # up to the timeout, and then come back as WriteTimeout, which the caller
                # retries: the cancellation would be lost. Closing the connection rolls back.
                cancelled = exc
                conn.terminate()
                raise
    except asyncio.CancelledError:
        # The same when cancelled in BEGIN: releasing a connection whose command was
        # cancelled waits for the server to acknowledge the cancel request.
        conn.terminate()
        raise
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
        if cancelled is not None:
            raise cancelled from None
        if expired:
            raise WriteTimeout(f"no answer within {timeout_s:g}s; connection closed") from exc
        raise
    finally:
        timer.cancel()
        await pool.release(conn)


@dataclass(frozen=True)
class Database:
    pool: asyncpg.Pool
    url: str
    embedded: EmbeddedServer | None
    migrations_applied: list[str]

    @contextlib.asynccontextmanager
    async def acquire(self, timeout_s: float = 5.0) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; PostgreSQL going away inside becomes ``DatabaseUnavailable``.

        Components use this rather than the pool, so an outage reaches the
        supervisor as the retryable error it is, not as a fault.
        """
        try:
            async with self.pool.acquire(timeout=timeout_s) as conn:
                yield conn
        except OUTAGE_ERRORS as exc:
            raise outage_error(exc, "pool") from exc

    async def ping(self, timeout_s: float = 2.0) -> None:
        """Raise unless the server answers a trivial query within ``timeout_s``."""
        async with self.pool.acquire(timeout=timeout_s) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout_s)

    async def size_bytes(self) -> int:
        return int(await self.pool.fetchval("SELECT pg_database_size(current_database())"))


WaitForDatabase = Callable[[DatabaseUnavailable, int], Awaitable[bool]]
"""Called after failed attempt ``n``: waits, then True to try again or False to give up."""


@contextlib.asynccontextmanager
async def database_url(
    settings: DatabaseSettings, *, owner: bool = True
) -> AsyncIterator[tuple[str, EmbeddedServer | None]]:
    """The configured URL, or an embedded server's (see ``embedded_server`` for ``owner``)."""
    if settings.url:
        yield settings.url, None
        return
    async with embedded_server(Path(settings.data_dir), owner=owner) as server:
        yield server.url, server


async def _prepare(
    url: str, settings: DatabaseSettings, where: str
) -> tuple[asyncpg.Pool, list[str]]:
    """Connect, apply migrations, open the pool; outage and rejection told apart."""
    timeout = settings.connect_timeout.seconds
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
        try:
            applied = await apply_migrations(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=timeout,
        )
    except REJECTED_ERRORS as exc:
        raise DatabaseRejected(
            f"PostgreSQL refused the connection ({where}): {type(exc).__name__}: {exc}"
        ) from None
    except OUTAGE_ERRORS as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({where}): {type(exc).__name__}: {exc}"
        ) from None
    return pool, applied


@contextlib.asynccontextmanager
async def open_database(
    settings: DatabaseSettings, *, owner: bool = True, wait: WaitForDatabase | None = None
) -> AsyncIterator[Database]:
    """Database for the daemon (``owner``) or for a one-off command (not owner).

    While PostgreSQL cannot be reached, ``wait`` (the daemon's) decides: wait
    and try again, or give up (``DatabaseUnavailable`` is raised). Without it
    (a one-off command) the first failure stops with one line. A rejection
    (wrong URL, credentials, database name) is a ``DatabaseRejected``
    configuration error either way: waiting would not fix it.
    """
    async with database_url(settings, owner=owner) as (url, embedded):
        where = "the embedded server" if embedded else "ARB_DATABASE_URL"
        attempt = 0
        while True:
            try:
                pool, applied = await _prepare(url, settings, where)
                break
            except DatabaseUnavailable as exc:
                attempt += 1
                if wait is None:
                    raise FatalError(str(exc)) from None
                if not await wait(exc, attempt):
                    raise
        try:
            yield Database(pool=pool, url=url, embedded=embedded, migrations_applied=applied)
        finally:
            try:
                await asyncio.wait_for(pool.close(), timeout=5.0)
            except TimeoutError:
                pool.terminate()
