"""``GET /api/risk`` without live trading: 409 ``live_off`` for a signed-in user, 401
without a token (the daemon's own answer is in tests/e2e/live/test_risk_restart.py)."""

from __future__ import annotations

import time

import argon2
import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from arbengine.api.context import ApiContext
from arbengine.api.http_app import build_app
from arbengine.settings import AuthSettings, Settings
from arbengine.store.migrations import apply_migrations

PASSWORD = "correct horse battery staple"


async def _nothing() -> None:
    return None


async def _zero() -> int:
    return 0


async def test_the_risk_route_says_live_is_off(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        await conn.execute(
            "INSERT INTO users (username, password_hash, role) VALUES ('ann', $1, 'user')",
            argon2.PasswordHasher().hash(PASSWORD),
        )
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    ctx = ApiContext(
        version="test", started_monotonic=time.monotonic(), started_at=time.time(),
        db_ping=_nothing, db_size=_zero, tasks=list, channels=list, pool=pool,
        settings=Settings(auth=AuthSettings(jwt_secret="s" * 48)),
    )  # fmt: skip
    client = TestClient(TestServer(build_app(ctx)))
    await client.start_server()
    try:
        assert (await client.get("/api/risk")).status == 401
        login = await client.post("/api/login", json={"username": "ann", "password": PASSWORD})
        token = (await login.json())["access_token"]
        reply = await client.get("/api/risk", headers={"Authorization": f"Bearer {token}"})
        assert reply.status == 409, await reply.text()
        assert (await reply.json())["error"]["code"] == "live_off"
    finally:
        await client.close()
        await pool.close()
