"""The hard bound on a stop: once asked to stop, the process ends by a fixed time.

The graceful stop (``app.py``) bounds each of its waits, but a task can swallow
its cancellation, a thread can sit in a call nothing interrupts, and the
interpreter's own teardown waits for both (it cancels every task and joins
every worker thread, without a limit). So a thread that does not depend on
the event loop is armed at the first stop request: if the process is still
there ``after_s`` later, it runs the last-resort hooks (stopping the embedded
PostgreSQL at once), logs one line naming what was still running, and ends
the process with ``os._exit``. A second SIGTERM/SIGINT calls ``force`` at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from arbengine.logs import get_logger

FORCE_AFTER_S = 1.0
"""After ``shutdown_deadline``, the process is ended at once if it is still there."""
SHUTDOWN_MARGIN_S = 3.0
"""SIGTERM to exit is at most ``shutdown_deadline`` plus this (the forced exit included)."""


class HardStop:
    def __init__(
        self,
        code: int,
        *,
        running: Callable[[], list[str]] = list,
        log: Any = None,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        """``code`` is the exit status of a forced exit; ``running`` names what still runs."""
        self.code = code
        self._running = running
        self._log = log or get_logger("daemon")
        self._exit = exit
        self._last_resort: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._timer: threading.Thread | None = None

    def add_last_resort(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before a forced exit; it must be quick and bounded."""
        self._last_resort.append(hook)

    def arm(self, after_s: float) -> None:
        """Force the exit ``after_s`` from now unless the process has ended by then."""
        if self._timer is not None:
            return

        def wait() -> None:
            time.sleep(after_s)
            self.force("the shutdown deadline passed", after_s=round(after_s, 3))

        self._timer = threading.Thread(target=wait, name="hard-stop", daemon=True)
        self._timer.start()

    def force(self, reason: str, **fields: Any) -> None:
        """Stop what must not be left running, log why, and end the process now."""
        if not self._lock.acquire(blocking=False):
            return  # already forcing (the timer and a second signal at once)
        try:
            running = self._running()
        except Exception:  # racing the loop's own changes: the line matters more than the list
            running = []
        for hook in self._last_resort:
            try:
                hook()
            except Exception as exc:
                self._log.error("daemon.last_resort_failed", error=f"{type(exc).__name__}: {exc}")
        self._log.error(
            "daemon.forced_exit", reason=reason, running=running, exit_code=self.code, **fields
        )
        self.exit_now(self.code)

    def exit_now(self, code: int) -> None:
        """End the process without the interpreter's teardown (which would wait on what is
        stuck), after flushing the log."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._exit(code)
