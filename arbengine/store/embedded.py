"""The embedded PostgreSQL server for deployments that bring none.

``pgserver`` ships the PostgreSQL binaries and knows how to initialise a data
directory (including running as an unprivileged user when we are root). We
start it through pgserver but stop it ourselves with ``pg_ctl stop -m fast``:
pgserver only stops a server when its own list of client pids says we were
the last user, and a daemon that was once killed leaves a stale pid there,
which would leave an orphan postmaster behind on every later exit.

The server listens on a Unix socket only (no TCP port to collide with).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbengine.domain.errors import FatalError, os_reason


@dataclass(frozen=True)
class EmbeddedServer:
    url: str
    pid: int
    data_dir: Path


def _pgserver() -> Any:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver
        import pgserver.utils

    return pgserver


def _running_pid(data_dir: Path) -> int | None:
    """The postmaster pid if a server is running in ``data_dir``."""
    info = _pgserver().utils.PostmasterInfo.read_from_pgdata(data_dir.expanduser().resolve())
    return info.pid if info is not None and info.is_running() else None


def _start(data_dir: Path) -> tuple[EmbeddedServer, Any]:
    import atexit

    pgserver = _pgserver()
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    atexit.unregister(server._cleanup)
    pid = server.get_pid()
    return EmbeddedServer(url=server.get_uri(), pid=int(pid), data_dir=data_dir), server


def _pg_ctl_stop(pgdata: Path, user: str | None) -> None:
    """``pg_ctl stop -m fast``, waiting for it; a server already gone is no error."""
    # pgserver makes its command functions at import time: the type checker cannot see them.
    commands: Any = importlib.import_module("pgserver._commands")
    with contextlib.suppress(subprocess.CalledProcessError):
        commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)


def _stop(server: Any) -> None:
    _pg_ctl_stop(server.pgdata, server.system_user)
    server.global_process_id_list.get_and_remove(os.getpid())
    type(server)._instances.pop(server.pgdata, None)


def stop_at_once(server: EmbeddedServer, wait_s: float = 1.8) -> bool:
    """Immediate shutdown, for a forced exit: what ``pg_ctl stop -m immediate`` does (SIGQUIT
    to the postmaster), without starting a process, waiting at most ``wait_s``.

    No checkpoint and no goodbye to clients: open transactions are lost (rolled back),
    committed ones are safe in the WAL and replayed by the next start's recovery.
    True once the server is gone.
    """
    import signal
    import time

    import psutil

    try:
        postmaster = psutil.Process(server.pid)
        postmaster.send_signal(signal.SIGQUIT)
    except psutil.NoSuchProcess:
        return True
    until = time.monotonic() + wait_s
    while time.monotonic() < until:
        try:
            # Gone, or a zombie its new parent has not reaped yet: either way it has ended.
            if postmaster.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def stop_embedded_server(data_dir: Path) -> None:
    """Stop a server left running in ``data_dir`` (used by tests that simulate an outage)."""
    _pg_ctl_stop(data_dir.resolve(), "pgserver" if os.geteuid() == 0 else None)


class EmbeddedServerFailed(FatalError):
    """The embedded server's directory cannot be used, or the server would not start."""


class DataDirInUse(FatalError):
    """Another daemon already runs the embedded server of this data directory."""


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """Hold a lock beside the data directory for the life of the daemon."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir.parent / f".{data_dir.name}.daemon.lock"
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUse(
                f"another arbengine daemon is using the database in {data_dir}"
            ) from None
        yield


@contextlib.asynccontextmanager
async def embedded_server(data_dir: Path, *, owner: bool = True) -> AsyncIterator[EmbeddedServer]:
    """Start (or adopt) the server in ``data_dir``.

    The daemon is the ``owner``: one daemon per data directory, and it stops
    the server on exit, even one a crashed predecessor left running. A
    command such as ``migrate`` or ``import`` is not: it stops the server
    only if it started it, so it never pulls the database from under a
    running daemon.
    """
    data_dir = await asyncio.to_thread(lambda: data_dir.expanduser().resolve())
    with contextlib.ExitStack() as locks:
        try:
            if owner:
                locks.enter_context(_exclusive(data_dir))
            was_running = await asyncio.to_thread(
                lambda: (data_dir / "PG_VERSION").exists() and _running_pid(data_dir) is not None
            )
            info, handle = await asyncio.to_thread(_start, data_dir)
        except OSError as exc:
            raise EmbeddedServerFailed(
                f"[database] data_dir {data_dir}: cannot use it: {os_reason(exc)}"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise EmbeddedServerFailed(
                f"cannot start the embedded PostgreSQL in {data_dir}: "
                f"{Path(exc.cmd[0]).name} failed with exit status {exc.returncode} "
                "(its output is logged above)"
            ) from None
        try:
            yield info
        finally:
            if owner or not was_running:
                await asyncio.shield(asyncio.to_thread(_stop, handle))
