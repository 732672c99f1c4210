"""Until an admin changes it, ``GET /api/live/config`` shows the file's ``[live]`` in
force: the one a SIGHUP reloaded, not the one read at start."""

from __future__ import annotations

import time

import argon2
import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from arbengine.api.context import ApiContext
from arbengine.api.http_app import build_app
from arbengine.settings import AuthSettings, LiveSettings, Settings
from arbengine.store.migrations import apply_migrations

PASSWORD = "correct horse battery staple"


async def _nothing() -> None:
    return None


async def _zero() -> int:
    return 0


async def test_the_settings_source_is_the_reloaded_file(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        await conn.execute(
            "INSERT INTO users (username, password_hash, role) VALUES ('boss', $1, 'admin')",
            argon2.PasswordHasher().hash(PASSWORD),
        )
    finally:
        await conn.close()
    at_start = LiveSettings(strategies=["v52"], risk_per_trade_usd=15.0, max_positions=3)
    in_force = [at_start]
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    ctx = ApiContext(
        version="test", started_monotonic=time.monotonic(), started_at=time.time(),
        db_ping=_nothing, db_size=_zero, tasks=list, channels=list, pool=pool,
        settings=Settings(auth=AuthSettings(jwt_secret="s" * 48), live=at_start),
        strategies=lambda: frozenset({"v51", "v52"}), live_file=lambda: in_force[-1],
    )  # fmt: skip
    client = TestClient(TestServer(build_app(ctx)))
    await client.start_server()
    try:
        login = await client.post("/api/login", json={"username": "boss", "password": PASSWORD})
        token = (await login.json())["access_token"]
        in_force.append(LiveSettings(strategies=["v51"], risk_per_trade_usd=7.5, max_positions=2))
        reply = await client.get("/api/live/config", headers={"Authorization": f"Bearer {token}"})
        assert reply.status == 200, await reply.text()
        current = (await reply.json())["current"]
        assert current["source"] == "settings"
        assert (current["strategies"], current["risk_per_trade_usd"], current["max_positions"]) == (
            ["v51"], 7.5, 2,
        )  # fmt: skip
    finally:
        await client.close()
        await pool.close()
