"""Attempt counting for login and registration: a sliding window per key, in memory.

One process serves one deployment, so memory is the right place: no table to
write on every failed login, nothing to clean up. The number of keys is
bounded (least recently touched first out), so a flood of distinct addresses
cannot grow it without limit.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        horizon = now - self.window_s
        while hits and hits[0] <= horizon:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        now = self._clock()
        hits = self._recent(key, now)
        if hits is None or len(hits) < self.limit:
            return None
        return hits[len(hits) - self.limit] + self.window_s - now

    def hit(self, key: str) -> None:
        now = self._clock()
        hits = self._recent(key, now)
        if hits is None:
            hits = self._hits[key] = deque()
        else:
            self._hits.move_to_end(key)
        hits.append(now)
        while len(hits) > self.limit:
            hits.popleft()
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)
