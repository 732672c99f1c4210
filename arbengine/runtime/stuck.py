"""Test seam: a component that misbehaves at shutdown, to prove the hard bound holds.

Only the environment variable ``ARBENGINE_TEST_STUCK_COMPONENT`` adds them, one per
kind it lists (comma-separated), each named ``test.stuck.<kind>`` (it is not a setting
and not documented for users; the daemon logs ``daemon.test_component`` for each).
Kinds:

- ``drain``: ignores its drain request and runs until cancelled;
- ``backoff``: fails at once, then waits to be restarted (``runtime.restart_initial``);
- ``swallow``: swallows every cancellation, so it never ends.
"""

from __future__ import annotations

import asyncio

from arbengine.runtime.supervisor import Component

ENV = "ARBENGINE_TEST_STUCK_COMPONENT"
PREFIX = "test.stuck."
KINDS = ("drain", "backoff", "swallow")


def stuck_components(spec: str) -> list[Component]:
    """The components ``spec`` (the variable's value, e.g. ``backoff,swallow``) asks for."""
    return [stuck_component(kind.strip()) for kind in spec.split(",") if kind.strip()]


def stuck_component(kind: str) -> Component:
    if kind not in KINDS:
        raise ValueError(f"{ENV}: {kind!r}: expected one of {', '.join(KINDS)}")

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
