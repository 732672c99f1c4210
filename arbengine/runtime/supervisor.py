"""Supervision of long-running components in one TaskGroup.

A component that raises is restarted after a capped, jittered exponential
backoff, so one flaky websocket does not take the process down and a crashing
loop does not spin the CPU. A component that keeps failing (more than
``max_restarts`` within ``window``) is a real fault: the supervisor stops the
other components gracefully (so received data is still flushed), then raises
``TooManyRestarts`` so the process exits non-zero and the container
orchestrator (or a person) notices.

Shutdown is staged: components with a lower ``stage`` are stopped first
(intake before processing before writers). A component with a ``drain``
callback is asked to finish by itself (typically: its input channel is
closed and it returns once the channel is empty); others are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

ComponentState = Literal["pending", "running", "backoff", "finished", "stopped", "failed"]
_STATES: tuple[ComponentState, ...] = (
    "pending",
    "running",
    "backoff",
    "finished",
    "stopped",
    "failed",
)


class TooManyRestarts(RuntimeError):
    """A component failed more often than the policy allows; the process must stop."""

    def __init__(self, name: str, restarts: int, window_s: float, last_error: str) -> None:
        super().__init__(
            f"component {name!r} failed {restarts} times within {window_s:g}s; last error: "
            f"{last_error}"
        )
        self.component = name


@dataclass(frozen=True)
class RestartPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    """Each delay is drawn uniformly from [delay·(1−jitter), delay]."""
    healthy_after_s: float = 60.0
    max_restarts: int = 5
    window_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Delay before restart number ``attempt`` (1-based), capped then jittered."""
        base: float = min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class Component:
    name: str
    run: Callable[[], Awaitable[None]]
    stage: int = 0
    """Shutdown order: lower stages stop first (intake 0, processing 10, writers 20)."""
    drain: Callable[[], None] | None = None
    """Asks the component to finish by itself at shutdown; without it, it is cancelled."""


@dataclass
class ComponentStatus:
    name: str
    stage: int
    state: ComponentState = "pending"
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    started_at: float | None = None
    _recent: deque[float] = field(default_factory=deque, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "started_at": self.started_at,
        }


class Supervisor:
    """Runs components, restarts failures, and stops them in stages."""

    def __init__(
        self,
        policy: RestartPolicy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        log: Any = None,
        escalation_deadline_s: float = 20.0,
    ) -> None:
        self._policy = policy
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._log = log or structlog.get_logger("supervisor").bind(component="supervisor")
        self.escalation_deadline_s = escalation_deadline_s
        self._components: dict[str, Component] = {}
        self._status: dict[str, ComponentStatus] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[str] = set()
        self._group: asyncio.TaskGroup | None = None
        _COLLECTOR.supervisors.add(self)

    def add(self, component: Component) -> None:
        if component.name in self._components:
            raise ValueError(f"component {component.name!r} added twice")
        self._components[component.name] = component
        self._status[component.name] = ComponentStatus(component.name, component.stage)
        if self._group is not None:
            self._start(component)

    def status(self) -> list[ComponentStatus]:
        return list(self._status.values())

    async def run(self) -> None:
        """Run every component until each has finished or been stopped.

        Raises TooManyRestarts (out of the TaskGroup, as an ExceptionGroup is
        unwrapped here) when a component exceeds its restart budget.
        """
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for component in self._components.values():
                    self._start(component)
        except BaseExceptionGroup as eg:
            giving_up = eg.subgroup(TooManyRestarts)
            if giving_up is not None:
                raise giving_up.exceptions[0] from None
            raise
        finally:
            self._group = None

    def _start(self, component: Component) -> None:
        assert self._group is not None
        self._tasks[component.name] = self._group.create_task(
            self._supervise(component), name=f"component:{component.name}"
        )

    async def _supervise(self, component: Component) -> None:
        status = self._status[component.name]
        policy = self._policy
        attempt = 0
        while True:
            status.state = "running"
            status.started_at = self._wall()
            began = self._monotonic()
            try:
                await component.run()
            except asyncio.CancelledError:
                status.state = "stopped"
                raise
            except Exception as exc:
                if component.name in self._stopping:
                    status.state = "stopped"
                    return
                now = self._monotonic()
                if now - began >= policy.healthy_after_s:
                    attempt = 0
                attempt += 1
                status.restarts += 1
                status.last_error = f"{type(exc).__name__}: {exc}"
                status.last_error_at = self._wall()
                recent = status._recent
                recent.append(now)
                while recent and now - recent[0] > policy.window_s:
                    recent.popleft()
                if len(recent) > policy.max_restarts:
                    status.state = "failed"
                    self._log.error(
                        "supervisor.gave_up",
                        task=component.name,
                        restarts=len(recent),
                        window_s=policy.window_s,
                        error=status.last_error,
                        traceback="".join(traceback.format_exception(exc)),
                    )
                    # Stop the others the graceful way first (intake, then drains, then
                    # writers), so what was already received is still stored.
                    late = await self.stop(self.escalation_deadline_s, skip=component.name)
                    if late:
                        self._log.error("supervisor.drain_deadline_exceeded", components=late)
                    raise TooManyRestarts(
                        component.name, len(recent), policy.window_s, status.last_error
                    ) from exc
                delay = policy.delay(attempt, self._rng)
                status.state = "backoff"
                self._log.warning(
                    "supervisor.restarting",
                    task=component.name,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=status.last_error,
                    traceback="".join(traceback.format_exception(exc)),
                )
                await self._sleep(delay)
                continue
            status.state = "stopped" if component.name in self._stopping else "finished"
            if status.state == "finished":
                self._log.info("supervisor.finished", task=component.name)
            return

    async def stop(self, deadline_s: float, skip: str | None = None) -> list[str]:
        """Stop components stage by stage within ``deadline_s``; return those cancelled late.

        A draining component that has not finished when the deadline is used
        up is cancelled, and named in the result so the caller can log it.
        ``skip`` is the component calling this (it is finishing on its own).
        """
        loop_deadline = asyncio.get_running_loop().time() + deadline_s
        late: list[str] = []
        for stage in sorted({c.stage for c in self._components.values()}):
            members = [c for c in self._components.values() if c.stage == stage and c.name != skip]
            self._stopping.update(c.name for c in members)
            waiting: list[tuple[Component, asyncio.Task[None]]] = []
            for component in members:
                task = self._tasks.get(component.name)
                if task is None or task.done():
                    continue
                if component.drain is not None and self._status[component.name].state == "running":
                    component.drain()
                else:
                    task.cancel()
                waiting.append((component, task))
            for component, task in waiting:
                remaining = loop_deadline - asyncio.get_running_loop().time()
                done, _ = await asyncio.wait({task}, timeout=max(0.0, remaining))
                if not done:
                    late.append(component.name)
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        return late


class _SupervisorCollector(Collector):
    """Exposes component states and restart counts at scrape time (no per-event cost)."""

    def __init__(self) -> None:
        import weakref

        self.supervisors: weakref.WeakSet[Supervisor] = weakref.WeakSet()

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        restarts = CounterMetricFamily(
            "arb_component_restarts", "Restarts of a supervised component", labels=["component"]
        )
        state = GaugeMetricFamily(
            "arb_component_state",
            "1 for the component's current state",
            labels=["component", "state"],
        )
        for supervisor in list(self.supervisors):
            for status in supervisor.status():
                restarts.add_metric([status.name], status.restarts)
                for name in _STATES:
                    state.add_metric([status.name, name], 1.0 if status.state == name else 0.0)
        yield restarts
        yield state


_COLLECTOR = _SupervisorCollector()
REGISTRY.register(_COLLECTOR)
