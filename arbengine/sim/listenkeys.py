"""Listen-key lifecycle of the one simulated account (wall-clock validity, as on Binance).

``POST`` returns the active key (extending it) or makes a new one; ``PUT``
extends the active key or answers -1125; ``DELETE`` ends it. An ended or lapsed
key stops receiving events; a lapsed one first gets ``listenKeyExpired``.
"""

from __future__ import annotations

import hashlib
import itertools


class ListenKeys:
    def __init__(self, ttl_s: float, seed: int) -> None:
        self.ttl_s = ttl_s
        self._seed = seed
        self._counter = itertools.count(1)
        self.key: str | None = None
        self.expires_at = 0.0
        self.created = 0

    def _new_key(self) -> str:
        n = next(self._counter)
        return hashlib.sha256(f"sim-listen-key-{self._seed}-{n}".encode()).hexdigest()

    def create(self, now: float) -> str:
        if self.key is None or now >= self.expires_at:
            self.key = self._new_key()
            self.created += 1
        self.expires_at = now + self.ttl_s
        return self.key

    def keepalive(self, now: float) -> str | None:
        """The extended key, or None when there is no live key (-1125)."""
        if self.key is None or now >= self.expires_at:
            return None
        self.expires_at = now + self.ttl_s
        return self.key

    def delete(self) -> str | None:
        key, self.key = self.key, None
        return key

    def valid(self, key: str, now: float) -> bool:
        return self.key is not None and key == self.key and now < self.expires_at

    def expire_due(self, now: float) -> list[str]:
        if self.key is not None and now >= self.expires_at:
            key, self.key = self.key, None
            return [key]
        return []

    def expire_all(self) -> list[str]:
        return [k for k in [self.delete()] if k is not None]
