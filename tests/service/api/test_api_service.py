"""The app in-process on a real PostgreSQL: ban notifications, races, and a database outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import argon2
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from arbengine.api.context import ApiContext
from arbengine.api.http_app import build_app
from arbengine.api.users import UserDirectory
from arbengine.settings import AuthSettings, Settings
from arbengine.store.migrations import apply_migrations
from tests.support.waiting import eventually

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield created
    await created.close()


async def add_user(pool: asyncpg.Pool, name: str) -> int:
    hashed = argon2.PasswordHasher().hash(PASSWORD)
    return int(
        await pool.fetchval(
            "INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING id",
            name,
            hashed,
        )
    )


@dataclass
class Running:
    client: TestClient
    pool: asyncpg.Pool | None


async def _ping() -> None:
    return None


async def _size() -> int:
    return 0


def context(pool: asyncpg.Pool | None) -> ApiContext:
    return ApiContext(
        version="test",
        started_monotonic=time.monotonic(),
        started_at=time.time(),
        db_ping=_ping,
        db_size=_size,
        tasks=list,
        channels=list,
        pool=pool,
        settings=Settings(auth=AuthSettings(jwt_secret="s" * 48)),
    )


@pytest.fixture
async def app_client(pool: asyncpg.Pool) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(build_app(context(pool))))
    await client.start_server()
    yield client
    await client.close()


async def test_a_cached_user_is_dropped_when_the_database_says_it_changed(
    pool: asyncpg.Pool,
) -> None:
    user_id = await add_user(pool, "cached")
    users = UserDirectory(pool, max_age_s=3600.0)  # only a notification can refresh it
    listener = asyncio.create_task(users.run())
    try:
        await asyncio.wait_for(users.ready.wait(), 10)
        state = await users.get(user_id)
        assert state is not None
        assert not state.banned
        await pool.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)
        await pool.execute("UPDATE users SET banned = true WHERE id = $1", user_id)

        async def banned() -> bool:
            state = await users.get(user_id)
            return state is not None and state.banned

        await eventually(banned, 10, what="the cached user dropped on the notification")
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener


async def test_without_a_listener_every_lookup_reads_the_database(pool: asyncpg.Pool) -> None:
    user_id = await add_user(pool, "uncached")
    users = UserDirectory(pool, max_age_s=3600.0)  # never started: not listening
    assert (await users.get(user_id)).banned is False  # type: ignore[union-attr]
    await pool.execute("UPDATE users SET banned = true WHERE id = $1", user_id)
    assert (await users.get(user_id)).banned is True  # type: ignore[union-attr]
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)
    assert await users.get(user_id) is None


async def test_two_concurrent_uses_of_one_refresh_token_revoke_the_family(
    app_client: TestClient, pool: asyncpg.Pool
) -> None:
    await add_user(pool, "racer")
    login = await app_client.post("/api/login", json={"username": "racer", "password": PASSWORD})
    token = (await login.json())["refresh_token"]

    async def use() -> tuple[int, dict]:
        response = await app_client.post("/api/refresh", json={"refresh_token": token})
        return response.status, await response.json()

    results = await asyncio.gather(use(), use())
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 401]
    winner = next(body for status, body in results if status == 200)
    loser = next(body for status, body in results if status == 401)
    assert loser["error"]["code"] == "refresh_reused"
    again = await app_client.post("/api/refresh", json={"refresh_token": winner["refresh_token"]})
    assert again.status == 401
    revoked = await pool.fetchval("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
    assert revoked == 0


async def test_a_database_outage_is_503_with_retry_after_never_500(
    app_client: TestClient, pool: asyncpg.Pool
) -> None:
    await add_user(pool, "patient")
    login = await app_client.post("/api/login", json={"username": "patient", "password": PASSWORD})
    access = (await login.json())["access_token"]
    pool.terminate()  # every connection is cut, and no new one can be had
    for path in ("/api/snapshots?symbol=BTCUSDT", "/api/stats", "/api/rates"):
        response = await app_client.get(path, headers={"Authorization": f"Bearer {access}"})
        body = await response.json()
        assert response.status == 503, (path, body)
        assert body["error"]["code"] == "database_unavailable"
        assert response.headers["Retry-After"] == "5"


async def test_the_bare_app_without_a_database_answers_503_for_data() -> None:
    client = TestClient(TestServer(build_app(context(None))))
    await client.start_server()
    try:
        health = await client.get("/api/health")
        assert health.status == 200
        rates = await client.get("/api/rates")
        assert rates.status == 503
        assert (await rates.json())["error"]["code"] == "database_unavailable"
    finally:
        await client.close()
