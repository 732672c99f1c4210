"""A real PostgreSQL for tests: the embedded server, one fresh database per test."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from arbengine.store.embedded import _start, _stop


class PgTestServer:
    """One embedded server per test session (started once: it takes about a second)."""

    def __init__(self, data_dir: Path) -> None:
        self.info, self._handle = _start(data_dir)
        self.url = self.info.url

    def url_for(self, database: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    async def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def stop(self) -> None:
        _stop(self._handle)
