"""A sink's bounded queue of alerts: putting never waits, a full queue drops its oldest.

Alerts are told about, not traded on: a receiver that is down must never slow the
engine or the executor, so ``put`` is O(1) and never blocks, and when the queue is
full the oldest alert goes (the newest say most about now). Every drop is counted;
the count is logged as ``notify.dropped`` at most once per ``DROP_LOG_EVERY_S``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from prometheus_client import Counter

from arbengine.logs import get_logger
from arbengine.notify.alerts import Alert

DROP_LOG_EVERY_S = 10.0
DROPPED = Counter("arb_notify_dropped", "Alerts dropped from a full queue", ["sink"])


class Outbox:
    def __init__(self, sink: str, capacity: int, monotonic: Callable[[], float]) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.sink = sink
        self.capacity = capacity
        self._items: deque[Alert] = deque()
        self._monotonic = monotonic
        self.dropped_total = 0
        self._unlogged = 0
        self._logged_at: float | None = None
        self._log = get_logger("notify", sink=sink)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, alert: Alert) -> None:
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped_total += 1
            self._unlogged += 1
            DROPPED.labels(self.sink).inc()
            self._report_drops()
        self._items.append(alert)

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
        count = min(limit, len(self._items))
        return [self._items.popleft() for _ in range(count)]
