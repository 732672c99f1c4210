"""OS signals turned into events. Handlers only set events; tasks do the work.

SIGTERM and SIGINT request a graceful stop (a second one is logged and ignored:
the shutdown deadline bounds how long the stop takes). SIGHUP requests a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class ProcessSignals:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reload: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[str] = field(default_factory=list)


@contextlib.contextmanager
def handle_signals(
    on_signal: Callable[[str], None] | None = None,
) -> Iterator[ProcessSignals]:
    loop = asyncio.get_running_loop()
    events = ProcessSignals()

    def stop(name: str) -> None:
        events.received.append(name)
        if on_signal:
            on_signal(name)
        events.stop.set()

    def reload() -> None:
        events.received.append("SIGHUP")
        if on_signal:
            on_signal("SIGHUP")
        events.reload.set()

    loop.add_signal_handler(signal.SIGTERM, stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, stop, "SIGINT")
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        yield events
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
