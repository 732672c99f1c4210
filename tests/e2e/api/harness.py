"""A daemon under test with its own database, and the few things API tests do with it.

Starting a daemon takes about a second, so a test module shares one (see
``conftest.py``); each test makes its own users, so tests do not depend on
each other's state.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt
import orjson
from multidict import CIMultiDict

from tests.conftest import REPO, free_port
from tests.support.daemon import DaemonProcess
from tests.support.postgres import PgTestServer

PASSWORD = "correct horse battery staple"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDict[str]

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), self.body
        assert "error" in self.body, self.body
        return self.body["error"]


@dataclass
class Session:
    username: str
    password: str
    access: str
    refresh: str
    user_id: int


@dataclass
class ApiUnderTest:
    base: str
    db_url: str
    env: dict[str, str]
    secret: str
    daemon: DaemonProcess
    http: aiohttp.ClientSession
    cwd: Path
    _users: int = field(default=0)

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.base + path, json=json, data=data, headers=sent
        ) as response:
            raw = await response.read()
            kind = response.headers.get("Content-Type", "")
            body: Any = orjson.loads(raw) if raw and kind.startswith("application/json") else raw
            return Reply(response.status, body, CIMultiDict(response.headers))

    async def get(self, path: str, token: str | None = None, **kw: Any) -> Reply:
        return await self.request("GET", path, token=token, **kw)

    async def post(self, path: str, json: Any = None, token: str | None = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json=json, token=token, **kw)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.db_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def sql_many(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        conn = await asyncpg.connect(self.db_url)
        try:
            await conn.executemany(query, rows)
        finally:
            await conn.close()

    async def invite(self) -> str:
        code = secrets.token_urlsafe(12)
        await self.sql("INSERT INTO invite_codes (code) VALUES ($1)", code)
        return code

    def unique_name(self, prefix: str = "user") -> str:
        self._users += 1
        return f"{prefix}{self._users}_{uuid.uuid4().hex[:6]}"

    async def new_user(self, prefix: str = "user") -> Session:
        """A registered user (through the API) with a fresh token pair."""
        username = self.unique_name(prefix)
        reply = await self.post(
            "/api/register",
            {"invite_code": await self.invite(), "username": username, "password": PASSWORD},
        )
        assert reply.status == 201, reply.body
        return Session(
            username,
            PASSWORD,
            reply.body["access_token"],
            reply.body["refresh_token"],
            reply.body["user"]["id"],
        )

    async def admin(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        """``arbengine admin ARGS`` against this deployment's database."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "arbengine",
            "admin",
            *args,
            cwd=self.cwd,
            env={**self.daemon.env, **self.env},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), 60
        )
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    def forge(self, claims: dict[str, Any], *, key: str | None = None, alg: str = "HS256") -> str:
        """A token signed with the daemon's key (or another), for attack tests."""
        now = int(time.time())
        full = {
            "iss": "arbengine",
            "type": "access",
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(full, key or self.secret, algorithm=alg)


def api_env(
    db_url: str, workdir: Path, secret: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The settings of a daemon under test: its own port, database and key; no collection."""
    return {
        "ARB_CONFIG": str(REPO / "config" / "arbengine.toml"),
        "ARB_HTTP_PORT": str(free_port()),
        "ARB_DATABASE_URL": db_url,
        "ARB_DATABASE_DATA_DIR": str(workdir / "pg"),
        "ARB_LOG_PRETTY": "false",
        "ARB_COLLECT_ENABLED": "false",
        "ARB_ENGINE_STRATEGIES_DIR": str(REPO / "strategies"),
        "ARB_AUTH_JWT_SECRET": secret,
        # Tests log in often from one address; the limits have their own daemon and test.
        "ARB_AUTH_LOGIN_ATTEMPTS_PER_IP": "10000",
        "ARB_AUTH_REGISTER_ATTEMPTS_PER_IP": "10000",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


async def start_api(
    pg_server: PgTestServer,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    nofile: tuple[int, int] | None = None,
) -> tuple[ApiUnderTest, str]:
    """A daemon on a fresh database; returns it and the database name (to drop later)."""
    name = await pg_server.create_database()
    db_url = pg_server.url_for(name)
    secret = secrets.token_urlsafe(48)
    workdir.mkdir(parents=True, exist_ok=True)
    env = api_env(db_url, workdir, secret, extra_env)
    daemon = DaemonProcess(workdir, env, nofile=nofile)
    await daemon.start()
    try:
        base = await daemon.started()
        await daemon.wait_for("api.user_listener_ready")
    except BaseException:
        await daemon.kill()
        await pg_server.drop_database(name)
        raise
    http = aiohttp.ClientSession()
    return ApiUnderTest(base, db_url, env, secret, daemon, http, workdir), name


async def stop_api(api: ApiUnderTest, pg_server: PgTestServer, name: str) -> None:
    await api.http.close()
    await api.daemon.kill()
    await pg_server.drop_database(name)


@asynccontextmanager
async def running_api(
    pg_server: PgTestServer, workdir: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[ApiUnderTest]:
    """A daemon on a fresh database for the length of the block (a module's fixture)."""
    api, name = await start_api(pg_server, workdir, extra_env)
    try:
        yield api
    finally:
        await stop_api(api, pg_server, name)
