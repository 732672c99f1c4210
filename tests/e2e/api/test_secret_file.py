"""With no signing key configured, the daemon makes one, keeps it private, and reuses it."""

from __future__ import annotations

import secrets
import signal
import stat
from pathlib import Path

import aiohttp
import asyncpg

from tests.e2e.api.harness import PASSWORD
from tests.support.daemon import DaemonProcess


async def _register(base: str, database_url: str) -> dict:
    code = secrets.token_urlsafe(12)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO invite_codes (code) VALUES ($1)", code)
    finally:
        await conn.close()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/api/register",
            json={"invite_code": code, "username": "kept", "password": PASSWORD},
        ) as response,
    ):
        assert response.status == 201
        return await response.json()


async def _me(base: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        return response.status


async def test_generated_key_is_0600_and_sessions_survive_a_restart(
    spawn_daemon, daemon_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    env = {**daemon_env, "ARB_DATABASE_URL": database_url}
    first: DaemonProcess = await spawn_daemon(env)
    base = await first.started()
    key_file = tmp_path / "var" / "jwt.secret"
    assert first.events("auth.secret_generated")[0]["path"] == "./var/jwt.secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert all(key not in line for line in first.raw)  # never logged

    tokens = await _register(base, database_url)
    first.send(signal.SIGTERM)
    assert await first.wait_exit(30) == 0

    second: DaemonProcess = await spawn_daemon(env)
    base = await second.started()
    assert second.events("auth.secret_generated") == []
    assert key_file.read_text().strip() == key
    assert await _me(base, tokens["access_token"]) == 200
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/api/refresh", json={"refresh_token": tokens["refresh_token"]}
        ) as response,
    ):
        assert response.status == 200


async def test_a_key_file_others_can_read_stops_the_start(
    spawn_daemon, daemon_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "var" / "jwt.secret"
    key_file.parent.mkdir()
    key_file.write_text(secrets.token_urlsafe(48))
    key_file.chmod(0o644)
    daemon: DaemonProcess = await spawn_daemon({**daemon_env, "ARB_DATABASE_URL": database_url})
    assert await daemon.wait_exit(60) == 2
    assert daemon.raw[-1] == (
        "arbengine: config error: var/jwt.secret: the token signing key is readable by other "
        "users (mode 644); run chmod 600 var/jwt.secret"
    )
