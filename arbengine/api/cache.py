"""Encoded responses kept for a few seconds, computed once however many ask at once.

The cached routes are the ones every open page polls; caching the encoded
bytes means a hit costs a dictionary lookup, and the per-key lock means an
expiry under load triggers one query, not one per waiting request. While that
one query runs, the others get the previous answer rather than queueing
behind it, so an expiry never shows up as a latency spike; an answer is
therefore at most ``ttl`` plus one query old.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class ResponseCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, ttl_s: float, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        if entry is not None and lock.locked():
            return entry[1]
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > self._clock():
                return entry[1]
            body = await compute()
            self._entries[key] = (self._clock() + ttl_s, body)
            return body

    def clear(self) -> None:
        self._entries.clear()
