"""Shared fixtures: a real PostgreSQL (embedded server), fresh databases, daemon processes."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from arbengine.store.embedded import stop_embedded_server
from tests.support.daemon import DaemonProcess
from tests.support.postgres import PgTestServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgTestServer]:
    # Its own directory, outside pytest's rotating temporary trees.
    root = Path(tempfile.mkdtemp(prefix="arbengine-test-pg-"))
    server = PgTestServer(root / "data")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def database_url(pg_server: PgTestServer) -> AsyncIterator[str]:
    name = await pg_server.create_database()
    yield pg_server.url_for(name)
    await pg_server.drop_database(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a daemon under test: its own port and data directory, JSON logs."""
    return {
        "ARB_CONFIG": str(REPO / "config" / "arbengine.toml"),
        "ARB_HTTP_PORT": str(free_port()),
        "ARB_DATABASE_DATA_DIR": str(tmp_path / "pg"),
        "ARB_LOG_PRETTY": "false",
        "ARB_ENGINE_STRATEGIES_DIR": str(REPO / "strategies"),
        # Never reach for the real exchange from a test: tests that collect point at the sim.
        "ARB_COLLECT_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
async def spawn_daemon(tmp_path: Path) -> AsyncIterator[object]:
    """Factory: ``await spawn_daemon(env)`` starts ``arbengine run``; all are killed at the end."""
    started: list[DaemonProcess] = []

    async def spawn(
        env: dict[str, str], args: list[str] | None = None, **options: Any
    ) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path, env, args, **options)
        await daemon.start()
        started.append(daemon)
        return daemon

    yield spawn
    for n, daemon in enumerate(started):
        await daemon.stop()
        # Kept with the test's files, and shown (captured) when the test fails: what the daemon
        # said is what explains a failure that a rerun does not repeat.
        log = tmp_path / f"daemon-{n}.log"
        log.write_text("\n".join(daemon.raw) + "\n")
        notable = [line for line in daemon.raw if '"level":"info"' not in line.replace(" ", "")]
        print(f"daemon {n}: {len(daemon.raw)} log lines in {log}; last warnings and errors:")
        print("\n".join(notable[-30:]))
        data_dir = Path(daemon.env.get("ARB_DATABASE_DATA_DIR", ""))
        if (data_dir / "postmaster.pid").exists():  # killed before it could stop its server
            stop_embedded_server(data_dir)
