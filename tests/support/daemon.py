"""The daemon as a real process: started with a settings environment, read through its logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

LogLine = dict[str, Any]


class DaemonProcess:
    def __init__(
        self,
        cwd: Path,
        env: Mapping[str, str],
        args: list[str] | None = None,
        *,
        nofile: tuple[int, int] | None = None,
        program: Sequence[str] = ("-m", "arbengine"),
    ) -> None:
        """``nofile``: the process's RLIMIT_NOFILE (soft, hard), as a service manager sets it;
        ``program``: what the interpreter runs (``args`` follow it)."""
        self.cwd = cwd
        self.env = {**os.environ, **env}
        self.args = args or ["run"]
        self.program = list(program)
        self.nofile = nofile
        self.lines: list[LogLine] = []
        self.raw: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *self.program,
            *self.args,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if self.nofile is None else self._limit_descriptors,
        )
        self._reader = asyncio.create_task(self._read())

    def _limit_descriptors(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(text)
                if isinstance(parsed, dict):
                    self.lines.append(parsed)
            async with self._changed:
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    def events(self, name: str) -> list[LogLine]:
        return [line for line in self.lines if line.get("event") == name]

    async def wait_for(
        self, predicate: Callable[[LogLine], bool] | str, timeout: float = 30.0
    ) -> LogLine:
        """The first log line matching ``predicate`` (an event name or a function)."""
        test = (
            (lambda line: line.get("event") == predicate)
            if isinstance(predicate, str)
            else predicate
        )

        async def find() -> LogLine:
            async with self._changed:
                while True:
                    for line in self.lines:
                        if test(line):
                            return line
                    if self._reader is not None and self._reader.done():
                        raise AssertionError(
                            f"daemon exited before {predicate!r}; output:\n"
                            + "\n".join(self.raw[-40:])
                        )
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no {predicate!r} within {timeout}s; output:\n" + "\n".join(self.raw[-40:])
            ) from None

    async def started(self, timeout: float = 60.0) -> str:
        """Wait for start-up; return the API base URL."""
        line = await self.wait_for("daemon.started", timeout)
        return str(line["http"])

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self) -> None:
        """Graceful stop if still running (SIGTERM), SIGKILL if it does not exit in time."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 30)
        await self.kill()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


BTC_STRATEGIES = Path(__file__).parent / "strategies"
"""A strategy naming BTCUSDT only, reading every kind of collected input: for daemons under
test that collect fewer symbols than the shipped strategies name (a strategy naming a symbol
that is not collected is refused)."""
