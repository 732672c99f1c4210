"""Supervision of long-running components in one TaskGroup.

A component that raises is restarted after a capped, jittered exponential
backoff, so one flaky websocket does not take the process down and a crashing
loop does not spin the CPU. Errors are told apart by a classifier the
composition root injects (the supervisor knows no error types of its own):

- a *retryable* error (the network, the exchange, the database being away) is
  restarted for as long as it takes and never counts toward giving up: an
  outage is not a bug, and a daemon that exits during one turns every
  redeploy into a crash loop;
- any other error is a fault: a component that fails so more than
  ``max_restarts`` times within ``window`` makes the supervisor stop the
  other components gracefully (so received data is still flushed), then
  raise ``TooManyRestarts`` so the process exits non-zero and the container
  orchestrator (or a person) notices.

Errors inside a component's own task group arrive as exception groups; the
supervisor looks at the errors inside (retryable only when all of them are)
and names them, never "ExceptionGroup (1 sub-exception)". A restarting
component is reported on the health board until it has run for
``healthy_after`` again.

Shutdown is staged: components with a lower ``stage`` are stopped first
(intake before processing before writers). A component with a ``drain``
callback is asked to finish by itself (typically: its input channel is
closed and it returns once the channel is empty); others are cancelled.
Every wait of a stop is bounded: a component waiting to restart is ended at
once and never restarted; whatever still runs at the deadline, in any stage,
is cancelled; and one that does not end even then (it swallows the
cancellation, or is stuck in a call that cannot be interrupted) is left
behind after ``CANCEL_GRACE_S`` and named by ``unresponsive()``, so the
caller can exit anyway.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from arbengine.logs import get_logger
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.health import HealthBoard

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
        self.last_error = last_error


CANCEL_GRACE_S = 0.5
"""How long a stop waits for cancelled components to end before leaving them behind."""


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The errors inside ``exc``: itself, or every error nested in its exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    return [exc]


def describe_error(exc: BaseException, limit: int = 500) -> str:
    """One line naming the real cause: ``Type: message`` of the errors inside ``exc``."""
    parts: list[str] = []
    for leaf in leaf_errors(exc):
        text = f"{type(leaf).__name__}: {leaf}".rstrip(": ")
        if text not in parts:
            parts.append(text)
    shown = "; ".join(parts[:3]) + (f" (and {len(parts) - 3} more)" if len(parts) > 3 else "")
    line = " ".join(shown.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def never_retryable(exc: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class RestartPolicy(RetryPolicy):
    """The retry policy between restarts, and the budget of restarts after faults."""

    healthy_after_s: float = 60.0
    max_restarts: int = 5
    window_s: float = 300.0


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
    last_error_retryable: bool | None = None
    last_error_type: str | None = None
    started_at: float | None = None
    reason: str | None = None
    """Why the component is not (yet) healthy: set at a failure, cleared after a healthy run."""
    _recent: deque[float] = field(default_factory=deque, repr=False)
    _recovery_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "reason": self.reason,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_error_retryable": self.last_error_retryable,
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
        retryable: Callable[[BaseException], bool] = never_retryable,
        health: HealthBoard | None = None,
        on_give_up: Callable[[str, str], None] | None = None,
    ) -> None:
        """``retryable`` tells an outage from a fault (see the module docstring); ``health``
        receives a report for every component that is restarting; ``on_give_up`` is told
        (component, error) before the others are stopped (the notifier's alert then goes
        out while it drains); it must not wait."""
        self._on_give_up = on_give_up
        self._policy = policy
        self._retryable = retryable
        self._health = health
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._log = log or get_logger("supervisor")
        self.escalation_deadline_s = escalation_deadline_s
        self._components: dict[str, Component] = {}
        self._status: dict[str, ComponentStatus] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[str] = set()
        self._group: asyncio.TaskGroup | None = None
        self.gave_up: TooManyRestarts | None = None
        """Set when a component exhausted its restarts (``given_up`` is set then too)."""
        self.given_up = asyncio.Event()
        """A component gave up: ``run`` raises once every other task has ended, which a task
        that ignores its cancellation never does, so the owner waits for this instead."""
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
            if status.reason is not None:
                self._arm_recovery(component.name, status)
            began = self._monotonic()
            try:
                await component.run()
            except asyncio.CancelledError:
                status.state = "stopped"
                self._recovered(component.name, status)
                raise
            except Exception as exc:
                if component.name in self._stopping:
                    status.state = "stopped"
                    self._recovered(component.name, status)
                    return
                if status._recovery_timer is not None:
                    status._recovery_timer.cancel()
                    status._recovery_timer = None
                now = self._monotonic()
                if now - began >= policy.healthy_after_s:
                    attempt = 0
                attempt += 1
                status.restarts += 1
                cause = describe_error(exc)
                retryable = all(self._retryable(leaf) for leaf in leaf_errors(exc))
                status.last_error = cause
                status.last_error_at = self._wall()
                status.last_error_retryable = retryable
                status.last_error_type = ",".join(
                    sorted({type(leaf).__name__ for leaf in leaf_errors(exc)})
                )
                if not retryable:
                    recent = status._recent
                    recent.append(now)
                    while recent and now - recent[0] > policy.window_s:
                        recent.popleft()
                    if len(recent) > policy.max_restarts:
                        await self._give_up(component, status, exc, len(recent))
                delay = policy.delay(attempt, self._rng)
                status.state = "backoff"
                status.reason = (
                    f"retrying after {cause}" if retryable else f"restarting after {cause}"
                )
                if self._health is not None:
                    self._health.report(component.name, status.reason)
                if retryable:
                    # An outage, not a bug: the cause is the whole story, no traceback.
                    self._log.warning(
                        "supervisor.retrying",
                        task=component.name,
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error=cause,
                    )
                else:
                    self._log.warning(
                        "supervisor.restarting",
                        task=component.name,
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error=cause,
                        traceback="".join(traceback.format_exception(exc)),
                    )
                try:
                    await self._sleep(delay)
                except asyncio.CancelledError:
                    status.state = "stopped"
                    self._recovered(component.name, status)
                    raise
                if component.name in self._stopping:  # stopping began during the backoff
                    status.state = "stopped"
                    self._recovered(component.name, status)
                    return
                continue
            status.state = "stopped" if component.name in self._stopping else "finished"
            self._recovered(component.name, status)
            if status.state == "finished":
                self._log.info("supervisor.finished", task=component.name)
            return

    async def _give_up(
        self, component: Component, status: ComponentStatus, exc: Exception, restarts: int
    ) -> NoReturn:
        status.state = "failed"
        cause = status.last_error or describe_error(exc)
        self._log.error(
            "supervisor.gave_up",
            task=component.name,
            restarts=restarts,
            window_s=self._policy.window_s,
            error=cause,
            traceback="".join(traceback.format_exception(exc)),
        )
        if self._on_give_up is not None:
            self._on_give_up(component.name, cause)
        # Stop the others the graceful way first (intake, then drains, then
        # writers), so what was already received is still stored.
        late = await self.stop(self.escalation_deadline_s, skip=component.name)
        if late:
            self._log.error("supervisor.drain_deadline_exceeded", components=late)
        self.gave_up = TooManyRestarts(component.name, restarts, self._policy.window_s, cause)
        self.given_up.set()
        raise self.gave_up from exc

    def _arm_recovery(self, name: str, status: ComponentStatus) -> None:
        """Take the report back once the restarted component has run for ``healthy_after``."""
        if status._recovery_timer is not None:
            status._recovery_timer.cancel()
        status._recovery_timer = asyncio.get_running_loop().call_later(
            self._policy.healthy_after_s, self._recovered, name, status
        )

    def _recovered(self, name: str, status: ComponentStatus) -> None:
        if status._recovery_timer is not None:
            status._recovery_timer.cancel()
            status._recovery_timer = None
        if status.reason is not None:
            status.reason = None
            if self._health is not None:
                self._health.clear(name)

    async def stop(
        self, deadline_s: float, skip: str | None = None, grace_s: float = CANCEL_GRACE_S
    ) -> list[str]:
        """Stop components stage by stage within ``deadline_s``; return those cancelled late.

        Returns within ``deadline_s + grace_s`` whatever the components do. A
        component waiting to restart is ended at once (it has nothing to
        finish). Each stage may use an equal share of what is left of the
        deadline (what it does not use passes on); a component still running
        at the end of its stage's share is cancelled and named in the result
        so the caller can log it; ``unresponsive()`` then names those that did
        not end even so. ``skip`` is the component calling this (it is
        finishing on its own).
        """
        loop = asyncio.get_running_loop()
        loop_deadline = loop.time() + deadline_s
        members = [c for c in self._components.values() if c.name != skip]
        # From now on nothing is restarted, whichever stage it belongs to.
        self._stopping.update(c.name for c in members)
        for component in members:
            task = self._tasks.get(component.name)
            waiting_to_restart = self._status[component.name].state == "backoff"
            if task is not None and not task.done() and waiting_to_restart:
                task.cancel()
        late: list[str] = []
        stages = sorted({c.stage for c in members})
        for stage in stages:
            remaining = loop_deadline - loop.time()
            if remaining <= 0:
                break
            waiting: dict[asyncio.Task[None], str] = {}
            for component in members:
                task = self._tasks.get(component.name)
                if component.stage != stage or task is None or task.done():
                    continue
                if component.drain is not None and self._status[component.name].state == "running":
                    component.drain()
                else:
                    task.cancel()
                waiting[task] = component.name
            if not waiting:
                continue
            # A stage that overruns its share is cancelled, so a stuck intake or engine
            # never takes the time the writers after it need to flush. (Stages with nothing
            # to drain are only cancelled: they take no share.)
            draining = {c.stage for c in members if c.drain is not None and c.stage >= stage}
            share = remaining / max(1, len(draining))
            _, overran = await asyncio.wait(waiting, timeout=share)
            for task in overran:
                task.cancel()
            late += sorted(waiting[task] for task in overran)
        cancelled: list[asyncio.Task[None]] = []
        for component in members:
            task = self._tasks.get(component.name)
            if task is not None and not task.done():
                if component.name not in late:
                    late.append(component.name)
                task.cancel()
                cancelled.append(task)
        if cancelled:
            await asyncio.wait(cancelled, timeout=grace_s)
        return late

    def unresponsive(self) -> list[str]:
        """Components whose task still runs after ``stop`` cancelled it (left behind)."""
        return [
            name for name, task in self._tasks.items() if name in self._stopping and not task.done()
        ]


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
        backoff = GaugeMetricFamily(
            "arb_component_backoff",
            "1 while the component waits to restart, labelled with the error that stopped it",
            labels=["component", "error", "retryable"],
        )
        for supervisor in list(self.supervisors):
            for status in supervisor.status():
                restarts.add_metric([status.name], status.restarts)
                for name in _STATES:
                    state.add_metric([status.name, name], 1.0 if status.state == name else 0.0)
                if status.state == "backoff":
                    retryable = "true" if status.last_error_retryable else "false"
                    backoff.add_metric([status.name, status.last_error_type or "", retryable], 1.0)
        yield restarts
        yield state
        yield backoff


_COLLECTOR = _SupervisorCollector()
REGISTRY.register(_COLLECTOR)
