"""OS signals turned into events. Handlers only set events; tasks do the work.

SIGTERM and SIGINT request a graceful stop; a second one (either) forces the
exit at once (``on_force``). SIGHUP requests a reload.

The daemon spends its first second importing and starting up before an event
loop exists, and SIGHUP's default action ends a process: ``hold_signals`` is
called first thing, so a signal that arrives then is remembered and acted on
once ``handle_signals`` takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

_HELD: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_held: list[str] = []


def hold_signals() -> None:
    """Remember SIGTERM, SIGINT and SIGHUP until ``handle_signals`` acts on them."""

    def remember(signum: int, _frame: object) -> None:
        _held.append(signal.Signals(signum).name)

    for sig in _HELD:
        signal.signal(sig, remember)


@dataclass
class ProcessSignals:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reload: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[str] = field(default_factory=list)


@contextlib.contextmanager
def handle_signals(
    on_signal: Callable[[str], None] | None = None,
    on_stop: Callable[[str], None] | None = None,
    on_force: Callable[[str], None] | None = None,
) -> Iterator[ProcessSignals]:
    """``on_stop`` is called at the first SIGTERM/SIGINT (as it arrives, before any task
    notices the event), ``on_force`` at the next one."""
    loop = asyncio.get_running_loop()
    events = ProcessSignals()

    def stop(name: str) -> None:
        events.received.append(name)
        if on_signal:
            on_signal(name)
        if events.stop.is_set():
            if on_force:
                on_force(name)
            return
        events.stop.set()
        if on_stop:
            on_stop(name)

    def reload(name: str) -> None:
        events.received.append(name)
        if on_signal:
            on_signal(name)
        events.reload.set()

    loop.add_signal_handler(signal.SIGTERM, stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, stop, "SIGINT")
    loop.add_signal_handler(signal.SIGHUP, reload, "SIGHUP")
    while _held:  # received while the process was starting: acted on now, in order
        name = _held.pop(0)
        (reload if name == "SIGHUP" else stop)(name)
    try:
        yield events
    finally:
        for sig in _HELD:
            loop.remove_signal_handler(sig)
