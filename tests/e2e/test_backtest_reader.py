"""A backtest whose reader process dies fails at once with one line, instead of hanging."""

from __future__ import annotations

import asyncio
import signal
import sys

import asyncpg
import psutil
import pytest

from tests.conftest import REPO
from tests.support.waiting import eventually


async def migrated_url(database_url: str) -> str:
    from arbengine.store.migrations import apply_migrations

    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return database_url


async def test_a_killed_replay_reader_ends_the_backtest_with_one_clear_line(
    database_url: str,
) -> None:
    url = await migrated_url(database_url)
    backtest = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", "backtest",
        "--from", "2023-01-01", "--to", "2025-12-31",  # ~1,100 day chunks: the reader is busy
        "--workers", "1",  # one replay, so its one spawned child is the reader
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "ARB_DATABASE_URL": url,
             "ARB_CONFIG": str(REPO / "config" / "arbengine.toml")},
    )  # fmt: skip

    async def the_reader() -> psutil.Process | None:
        # The spawned reader (the resource tracker, the other child, runs another main).
        for child in psutil.Process(backtest.pid).children(recursive=True):
            try:
                if any("spawn_main" in part for part in child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    try:
        reader = await eventually(the_reader, 60, interval=0.01, what="the replay reader process")
        reader.send_signal(signal.SIGKILL)  # raises if it had already ended: the fault fires
        _, stderr = await asyncio.wait_for(backtest.communicate(), 60)
    finally:
        if backtest.returncode is None:
            backtest.kill()
            await backtest.wait()
    lines = stderr.decode().strip().splitlines()
    assert backtest.returncode == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("arbengine: replay reader process was killed by SIGKILL before"), (
        lines
    )


pytestmark = pytest.mark.timeout(180)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_killed_backtest_leaves_no_worker_or_reader_behind(database_url: str) -> None:
    url = await migrated_url(database_url)
    backtest = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", "backtest",
        "--from", "2023-01-01", "--to", "2025-12-31", "--workers", "2",
        cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "ARB_DATABASE_URL": url,
             "ARB_CONFIG": str(REPO / "config" / "arbengine.toml")},
    )  # fmt: skip

    async def worker_and_readers() -> list[psutil.Process]:
        # The worker, its reader and the backtest's own reader: three spawned processes.
        spawned = []
        for child in psutil.Process(backtest.pid).children(recursive=True):
            try:
                if any("spawn_main" in part for part in child.cmdline()):
                    spawned.append(child)
            except psutil.NoSuchProcess:
                continue
        return spawned if len(spawned) == 3 else []

    try:
        spawned = await eventually(worker_and_readers, 60, interval=0.01, what="3 children")
        backtest.kill()
        await backtest.wait()

        async def all_gone() -> bool:
            return not any(_alive(p) for p in spawned)

        await eventually(all_gone, 30, what="the backtest's children gone")
    finally:
        if backtest.returncode is None:
            backtest.kill()
            await backtest.wait()
