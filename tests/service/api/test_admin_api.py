"""The admin routes in-process on a real PostgreSQL when the database is away or too slow:
503 with Retry-After, never 500, and an action that could not write its audit row is not
done at all."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import argon2
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from arbengine.api.context import ApiContext
from arbengine.api.http_app import build_app
from arbengine.settings import AuthSettings, Settings
from arbengine.store.admin_records import AdminRecords
from arbengine.store.database import Database
from arbengine.store.migrations import apply_migrations

PASSWORD = "correct horse battery staple"
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/admin/users", None),
    ("POST", "/api/admin/users/{user}/ban", None),
    ("POST", "/api/admin/users/{user}/unban", None),
    ("POST", "/api/admin/users/{user}/role", {"role": "admin"}),
    ("GET", "/api/admin/invites", None),
    ("POST", "/api/admin/invites", {"count": 1}),
    ("POST", "/api/admin/invites/abcdefgh12/revoke", None),
    ("GET", "/api/admin/audit", None),
]


async def _pool(url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=1, max_size=4)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    created = await _pool(database_url)
    yield created
    await created.close()


async def _add_user(pool: asyncpg.Pool, name: str, role: str) -> int:
    hashed = argon2.PasswordHasher().hash(PASSWORD)
    return int(
        await pool.fetchval(
            "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING id",
            name,
            hashed,
            role,
        )
    )


async def _client(pool: asyncpg.Pool, records: AdminRecords) -> TestClient:
    async def nothing() -> None:
        return None

    async def size() -> int:
        return 0

    context = ApiContext(
        version="test",
        started_monotonic=time.monotonic(),
        started_at=time.time(),
        db_ping=nothing,
        db_size=size,
        tasks=list,
        channels=list,
        pool=pool,
        settings=Settings(auth=AuthSettings(jwt_secret="s" * 48)),
        admin=records,
    )
    client = TestClient(TestServer(build_app(context)))
    await client.start_server()
    return client


async def _token(client: TestClient, name: str) -> dict[str, str]:
    login = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    assert login.status == 200
    return {"Authorization": f"Bearer {(await login.json())['access_token']}"}


def _database(pool: asyncpg.Pool) -> Database:
    return Database(pool=pool, url="", embedded=None, migrations_applied=[])


async def test_every_admin_route_answers_503_while_its_database_is_away(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The admin records on a pool of their own, cut off (sign-in still works on the app's):
    the outage is met by the admin routes themselves, not by authentication."""
    await _add_user(pool, "boss", "admin")
    user_id = await _add_user(pool, "someone", "user")
    away = await _pool(database_url)
    client = await _client(pool, AdminRecords(_database(away)))
    try:
        auth = await _token(client, "boss")
        listed = await client.get("/api/admin/users", headers=auth)
        assert listed.status == 200  # the route works while its database is there
        away.terminate()  # every connection cut, and no new one to be had
        for method, path, body in ROUTES:
            response = await client.request(
                method, path.format(user=user_id), json=body, headers=auth
            )
            reply = await response.json()
            assert response.status == 503, (path, reply)
            assert reply["error"]["code"] == "database_unavailable"
            assert response.headers["Retry-After"] == "5"
    finally:
        await client.close()


async def test_an_action_that_cannot_write_its_audit_row_in_time_is_not_done(
    pool: asyncpg.Pool,
) -> None:
    """A database too slow to answer within the timeout (the audit table locked by another
    session): 503, and the ban is rolled back with its row, then done once it answers."""
    await _add_user(pool, "chief", "admin")
    user_id = await _add_user(pool, "target", "user")
    client = await _client(pool, AdminRecords(_database(pool), timeout_s=0.5))
    blocker = await pool.acquire()
    try:
        auth = await _token(client, "chief")
        assert (await client.get("/api/admin/users", headers=auth)).status == 200  # cached
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE admin_audit IN ACCESS EXCLUSIVE MODE")
            ban = await client.post(f"/api/admin/users/{user_id}/ban", headers=auth)
            assert ban.status == 503, await ban.text()
            assert (await ban.json())["error"]["code"] == "database_unavailable"
            audit = await client.get("/api/admin/audit", headers=auth)
            assert audit.status == 503
        banned = await pool.fetchval("SELECT banned FROM users WHERE id = $1", user_id)
        assert banned is False
        assert await pool.fetchval("SELECT count(*) FROM admin_audit") == 0
        again = await client.post(f"/api/admin/users/{user_id}/ban", headers=auth)
        assert again.status == 200
        assert (await again.json())["result"] == "done"
    finally:
        await pool.release(blocker)
        await client.close()
