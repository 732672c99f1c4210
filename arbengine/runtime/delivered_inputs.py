"""Which inputs each symbol has had delivered since start: the collectors write, others read.

A live engine must not evaluate a symbol before the history it reads is in:
values fetched after the start (trades caught up over REST, an indicator
series backfilled from where the store ends) carry times in the past, and a
tick evaluated before they arrive would differ from a backtest of the stored
data. So each collector marks an input done for a symbol once its first
round after start has been *delivered* (put on the market channel), and the
engine waits per symbol for the inputs its strategies read. A symbol the
collectors stop following (delisted, unknown to the exchange) is marked
stopped, with the reason: nothing more will come for it, so nothing waits.

Generic on purpose: subjects and inputs are plain names; which input a
feature needs is the engine's business, which input a poll delivers the
collector's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable


class Readiness:
    """Inputs delivered per subject (one board per daemon, shared by collectors and engine)."""

    def __init__(self, followed: Iterable[str], *, wall: Callable[[], float] = time.time) -> None:
        self.followed = frozenset(followed)
        """The subjects the collectors follow: only these can ever have inputs delivered."""
        self._wall = wall
        self._done: dict[str, dict[str, float]] = {}
        self._stopped: dict[str, str] = {}
        self.version = 0
        """Grows with every change, so a reader can skip re-checking an unchanged board."""
        self._changed = asyncio.Event()

    def _bump(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def done(self, subject: str, item: str) -> None:
        """``item``'s first round for ``subject`` has been delivered (later calls are no-ops)."""
        items = self._done.setdefault(subject, {})
        if item not in items:
            items[item] = self._wall()
            self._bump()

    def done_all(self, subjects: Iterable[str], item: str) -> None:
        for subject in subjects:
            self.done(subject, item)

    def delivered(self, subject: str) -> frozenset[str]:
        """The inputs of ``subject`` whose first round is in."""
        return frozenset(self._done.get(subject, ()))

    def stop(self, subject: str, reason: str) -> None:
        """Nothing more will be delivered for ``subject`` (``reason`` says why)."""
        if subject not in self._stopped:
            self._stopped[subject] = reason
            self._bump()

    def stopped(self, subject: str) -> str | None:
        """Why ``subject`` is no longer followed; None while it is (or never was)."""
        if subject not in self.followed:
            return "not collected by this deployment ([collect] symbols)"
        return self._stopped.get(subject)

    async def wait_delivered(self, subject: str, items: Iterable[str]) -> None:
        """Until every one of ``items`` has been delivered for ``subject``."""
        wanted = frozenset(items)
        while not wanted <= self.delivered(subject):
            await self._changed.wait()
