"""What the sim was asked over REST: a count per path and status, and when.

Tests judge a client's pacing from the exchange's side with it: how often a
path was called in a stretch of time, the longest pause between two calls,
and whether any call was refused (429/418). Served by ``GET /_sim/state``
(the counts) and ``GET /_sim/requests?path=…`` (the times).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

MAX_TIMES = 10_000
"""Call times kept per path (the newest): enough for minutes of polling at any rate we use."""


@dataclass(slots=True)
class _PathLog:
    count: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    times: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_TIMES))


@dataclass(slots=True)
class RequestLog:
    _paths: dict[str, _PathLog] = field(default_factory=dict)

    def record(self, path: str, status: int, wall_s: float) -> None:
        log = self._paths.get(path)
        if log is None:
            log = self._paths[path] = _PathLog()
        log.count += 1
        log.statuses[status] = log.statuses.get(status, 0) + 1
        log.times.append(wall_s)

    def counts(self) -> dict[str, dict[str, Any]]:
        """Per path: calls answered, and how many with each HTTP status."""
        return {
            path: {"count": log.count, "statuses": {str(s): n for s, n in log.statuses.items()}}
            for path, log in sorted(self._paths.items())
        }

    def times(self, path: str, since_s: float = 0.0) -> list[float]:
        """Wall times (epoch seconds) of the newest calls to ``path`` at or after ``since_s``."""
        log = self._paths.get(path)
        return [] if log is None else [t for t in log.times if t >= since_s]
