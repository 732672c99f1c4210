"""A real PostgreSQL for tests: the embedded server, one fresh database per test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from arbengine.store.embedded import _start, _stop
from tests.support.waiting import eventually


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


@contextlib.asynccontextmanager
async def frozen(server: PgTestServer) -> AsyncIterator[None]:
    """Every process of the server stopped (SIGSTOP): it accepts and answers nothing.

    A backend that ends meanwhile (its client went) is no longer part of the server; nor is
    one that exited but cannot be reaped while its stopped parent is (a zombie)."""
    postmaster = psutil.Process(server.info.pid)
    processes = [postmaster, *postmaster.children(recursive=True)]

    def status(process: psutil.Process) -> str:
        try:
            return str(process.status())
        except psutil.NoSuchProcess:
            return psutil.STATUS_STOPPED

    try:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.suspend()

        gone = {psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}

        async def all_stopped() -> bool:
            return {status(p) for p in processes} <= gone

        await eventually(all_stopped, timeout=10, what="the server's processes stopped")
        yield
    finally:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()
