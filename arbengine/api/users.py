"""Who a token's subject is right now: role and ban flag, cached, dropped the moment they change.

Every authenticated request needs the user's current state (a ban must
apply to tokens already issued), but a query per request would halve the
throughput of the cached routes. So states are cached, and a trigger on
``users`` (migration 0010) sends ``NOTIFY arbengine_users, '<id>'`` whenever a
role, ban or name changes, from the API, the admin command line or plain
SQL. The listener drops that entry as soon as the notification arrives.

While the listening connection is down, nothing is cached: every lookup goes
to the database until it is back, so a missed notification can never leave a
banned user in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from arbengine.api import queries
from arbengine.logs import get_logger
from arbengine.runtime.backoff import DATABASE_RETRY
from arbengine.runtime.clock import SystemClock

_SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True, slots=True)
class UserState:
    id: int
    username: str
    role: str
    banned: bool


class UserDirectory:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_age_s: float = 60.0,
        ping_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._max_age_s = max_age_s
        self._ping_interval_s = ping_interval_s
        self._clock = clock
        self._cache: dict[int, tuple[float, UserState | None]] = {}
        self._generation = 0
        self._was_up = False
        self.listening = False
        self.ready = asyncio.Event()
        """Set while notifications are being received (cleared when the link drops)."""
        self._log = get_logger("api.users")

    async def get(self, user_id: int) -> UserState | None:
        """The user's state, or None when there is no such user (any more)."""
        if self.listening:
            entry = self._cache.get(user_id)
            if entry is not None and entry[0] > self._clock():
                return entry[1]
        generation = self._generation
        row = await queries.user_by_id(self._pool, user_id)
        state = UserState(row["id"], row["username"], row["role"], row["banned"]) if row else None
        # A change notified while we were reading may not be in what we read: keep nothing.
        if self.listening and generation == self._generation:
            self._cache[user_id] = (self._clock() + self._max_age_s, state)
        return state

    def invalidate(self, user_id: int | None) -> None:
        self._generation += 1
        if user_id is None:
            self._cache.clear()
        else:
            self._cache.pop(user_id, None)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.invalidate(int(payload) if payload.isascii() and payload.isdigit() else None)

    async def run(self) -> None:
        """Listen for changes until cancelled, reconnecting with backoff when the link drops.

        Any failure only turns caching off until the next connection, which is the safe
        state, so every error is retried rather than ending the task.
        """
        failures = 0
        while True:
            self._was_up = False
            try:
                await self._listen_once()
            except Exception as exc:
                self._log.warning("api.user_listener_lost", error=f"{type(exc).__name__}: {exc}")
            self._stop_caching()
            # After a link that worked, retry soon; while it keeps failing, back off.
            failures = 1 if self._was_up else failures + 1
            await _SYSTEM_CLOCK.sleep(DATABASE_RETRY.delay(failures))

    def _stop_caching(self) -> None:
        self.listening = False
        self.ready.clear()
        self.invalidate(None)

    async def _listen_once(self) -> None:
        lost = asyncio.Event()
        async with self._pool.acquire() as conn:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(queries.USERS_CHANNEL, self._on_notify)
            try:
                self.invalidate(None)
                self.listening = True
                self._was_up = True
                self.ready.set()
                self._log.info("api.user_listener_ready")
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._ping_interval_s)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=self._ping_interval_s)
                raise ConnectionResetError("the listening connection closed")
            finally:
                self._stop_caching()
                if not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(queries.USERS_CHANNEL, self._on_notify)
