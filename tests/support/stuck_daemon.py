"""A daemon with components that misbehave at shutdown, to prove the hard bound holds.

Run as a program (``python tests/support/stuck_daemon.py KINDS``), it is ``arbengine run``
with one more supervised component per kind in ``KINDS`` (comma-separated), each named
``test.stuck.<kind>``; settings come from the environment as for the daemon. Kinds:

- ``drain``: ignores its drain request and runs until cancelled;
- ``backoff``: fails at once, then waits to be restarted (``runtime.restart_initial``);
- ``swallow``: swallows every cancellation, so it never ends.

The production code knows nothing of them: they reach the daemon through ``run_daemon``'s
``components``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from arbengine.runtime.supervisor import Component

PREFIX = "test.stuck."
KINDS = ("drain", "backoff", "swallow")
PROGRAM = str(Path(__file__).resolve())


def stuck_components(spec: str) -> list[Component]:
    """The components ``spec`` (e.g. ``backoff,swallow``) asks for."""
    return [stuck_component(kind.strip()) for kind in spec.split(",") if kind.strip()]


def stuck_component(kind: str) -> Component:
    if kind not in KINDS:
        raise ValueError(f"{kind!r}: expected one of {', '.join(KINDS)}")

    async def ignores_drain() -> None:
        await asyncio.Event().wait()

    async def fails() -> None:
        raise RuntimeError("fails at once (test component)")

    async def swallows_cancellation() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    run = {"drain": ignores_drain, "backoff": fails, "swallow": swallows_cancellation}[kind]
    return Component(PREFIX + kind, run, stage=10, drain=lambda: None)


def main(kinds: str) -> int:
    import uvloop

    from arbengine.app import run_daemon
    from arbengine.logs import configure_logging
    from arbengine.settings import load_settings

    settings = load_settings(None)
    configure_logging(settings.log.level, pretty=False)
    return int(uvloop.run(run_daemon(settings, components=stuck_components(kinds))))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
