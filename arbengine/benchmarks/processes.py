"""``arbengine sim`` and ``arbengine run`` as child processes of a benchmark.

Each runs in its own process (so each gets a core of its own where there is
one) and is read through its JSON log lines: the first line of every event is
kept (``sim.started`` carries the URLs, ``daemon.started`` the API address),
every event is counted, and the last lines are kept to explain a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson


class ChildFailed(RuntimeError):
    """A child process exited, or never logged what it should have."""


class LoggedProcess:
    """A child ``python -m arbengine …`` whose stdout is JSON log lines."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.first: dict[str, dict[str, Any]] = {}
        """The first log line of each event name."""
        self.counts: Counter[str] = Counter()
        """How many lines of each event name."""
        self.tail: deque[str] = deque(maxlen=40)
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"{name}.log")

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None and not self._reader.done()

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            self.tail.append(text)
            with contextlib.suppress(orjson.JSONDecodeError):
                line = orjson.loads(text)
                event = line.get("event") if isinstance(line, dict) else None
                if isinstance(event, str):
                    self.counts[event] += 1
                    self.first.setdefault(event, line)
                    self._changed.set()
        self._changed.set()

    async def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        """The first ``event`` line; ChildFailed when the process ends or time runs out first."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._changed.clear()
                    if event in self.first:
                        return self.first[event]
                    if self._reader.done():
                        raise ChildFailed(self.explain(f"exited before logging {event}"))
                    await self._changed.wait()
        except TimeoutError:
            raise ChildFailed(self.explain(f"did not log {event} within {timeout:.0f} s")) from None

    async def wait_for_any(self, events: tuple[str, ...], timeout: float) -> str | None:
        """The first of ``events`` logged (already or from now on); None when time runs out
        first, ChildFailed when the process ends first."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._changed.clear()
                    logged = [e for e in events if e in self.first]
                    if logged:
                        return min(logged, key=lambda e: self.first[e].get("timestamp", ""))
                    if self._reader.done():
                        raise ChildFailed(self.explain(f"exited before logging {events[0]}"))
                    await self._changed.wait()
        except TimeoutError:
            return None

    def explain(self, what: str) -> str:
        return f"{self.name} {what}; its last output:\n" + "\n".join(self.tail)

    async def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; the exit status."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), timeout)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        assert self.process.returncode is not None
        return self.process.returncode


async def _spawn(
    name: str, args: list[str], env: Mapping[str, str], cwd: Path | None
) -> LoggedProcess:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "ARB_LOG_PRETTY": "false", "PYTHONUNBUFFERED": "1", **env},
        cwd=cwd,
    )  # fmt: skip
    return LoggedProcess(name, process)


@contextlib.asynccontextmanager
async def sim_process(args: list[str]) -> AsyncIterator[tuple[LoggedProcess, dict[str, str]]]:
    """``arbengine sim --port 0 ARGS``; yields it and its URLs once it listens."""
    sim = await _spawn("the sim", ["sim", "--port", "0", *args], {}, None)
    try:
        started = await sim.wait_for("sim.started", 60)
        keys = ("rest", "market_ws", "private_ws", "coinbase", "control")
        yield sim, {k: str(started[k]) for k in keys}
    finally:
        await sim.stop(10)


@contextlib.asynccontextmanager
async def daemon_process(env: Mapping[str, str], cwd: Path) -> AsyncIterator[LoggedProcess]:
    """``arbengine run`` with ``env`` on top of ours; stopped (SIGTERM) when the block exits."""
    daemon = await _spawn("the daemon", ["run"], env, cwd)
    try:
        yield daemon
    finally:
        await daemon.stop(60)


def daemon_env_for_sim(
    work: Path, database_url: str, symbols: Sequence[str], urls: Mapping[str, str]
) -> dict[str, str]:
    """A benchmark daemon's settings: collecting ``symbols`` from the sim at ``urls`` (as
    ``sim_process`` yields them) and running the strategies in ``work/strategies``, with its
    files in ``work``; a benchmark adds or overrides what it measures."""
    return {
        "ARB_DATABASE_URL": database_url,
        "ARB_DATABASE_DATA_DIR": str(work / "pg"),
        "ARB_AUTH_SECRET_FILE": str(work / "jwt.secret"),
        "ARB_HTTP_HOST": "127.0.0.1",
        "ARB_HTTP_PORT": "0",
        "ARB_LOG_LEVEL": "info",
        "ARB_COLLECT_ENABLED": "true",
        "ARB_COLLECT_SYMBOLS": ",".join(symbols),
        "ARB_EXCHANGE_REST_URL": urls["rest"],
        "ARB_EXCHANGE_WS_URL": urls["market_ws"],
        "ARB_EXCHANGE_PRIVATE_WS_URL": urls["private_ws"],
        "ARB_EXCHANGE_COINBASE_URL": urls["coinbase"],
        "ARB_ENGINE_ENABLED": "true",
        "ARB_ENGINE_STRATEGIES_DIR": str(work / "strategies"),
    }
