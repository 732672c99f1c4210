"""A sink's bounded queue of alerts: putting never waits, a full queue drops its oldest.

Alerts are told about, not traded on: a receiver that is down must never slow the
engine or the executor, so ``put`` is O(1) and never blocks, and when the queue is
full the oldest alert goes (the newest say most about now). Every drop is counted;
the count is logged as ``notify.dropped`` at most once per ``DROP_LOG_EVERY_S``.

Alerts that must not be lost to a burst of others (breaker transitions, emergency
commands, a component given up: ``KEPT``) are dropped only when nothing else is left
to drop: a full queue drops its oldest *other* alert first. Both kinds leave the
queue in the order they were put.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

from prometheus_client import Counter

from arbengine.logs import get_logger
from arbengine.notify.alerts import Alert, Category

DROP_LOG_EVERY_S = 10.0
KEPT: frozenset[Category] = frozenset({"breaker", "controls", "components"})
DROPPED = Counter("arb_notify_dropped", "Alerts dropped from a full queue", ["sink"])


class Outbox:
    def __init__(self, sink: str, capacity: int, monotonic: Callable[[], float]) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.sink = sink
        self.capacity = capacity
        self._kept: deque[tuple[int, Alert]] = deque()
        self._others: deque[tuple[int, Alert]] = deque()
        self._order = itertools.count()
        self._monotonic = monotonic
        self.dropped_total = 0
        self._unlogged = 0
        self._logged_at: float | None = None
        self._log = get_logger("notify", sink=sink)

    def __len__(self) -> int:
        return len(self._kept) + len(self._others)

    def put(self, alert: Alert) -> None:
        if len(self) >= self.capacity:
            (self._others or self._kept).popleft()
            self.dropped_total += 1
            self._unlogged += 1
            DROPPED.labels(self.sink).inc()
            self._report_drops()
        queue = self._kept if alert.category in KEPT else self._others
        queue.append((next(self._order), alert))

    def _report_drops(self) -> None:
        now = self._monotonic()
        if self._logged_at is not None and now - self._logged_at < DROP_LOG_EVERY_S:
            return
        self._log.warning(
            "notify.dropped",
            dropped=self._unlogged,
            dropped_total=self.dropped_total,
            capacity=self.capacity,
            note="the queue was full: the oldest alerts were dropped",
        )
        self._logged_at = now
        self._unlogged = 0

    def take(self, limit: int) -> list[Alert]:
        """Up to ``limit`` alerts, oldest first."""
        taken: list[Alert] = []
        kept, others = self._kept, self._others
        while len(taken) < limit and (kept or others):
            first = kept if not others or (kept and kept[0][0] < others[0][0]) else others
            taken.append(first.popleft()[1])
        return taken
