"""Attempt counting for login and registration: sliding windows per key, in memory.

One process serves one deployment, so memory is the right place: no table to
write on every failed login, nothing to clean up. The number of keys is
bounded (least recently touched first out), so a flood of distinct addresses
cannot grow it without limit.

Login attempts are reserved before the password is checked, in the same
synchronous step as the check (no ``await`` between them), so any number of
concurrent guesses can never be evaluated beyond the limit; a reservation is
given back when the login succeeds or could not be evaluated.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


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

    def count(self, key: str) -> int:
        """Hits of ``key`` in the window (at most ``limit`` are kept)."""
        hits = self._recent(key, self._clock())
        return 0 if hits is None else len(hits)

    def hit(self, key: str) -> float:
        """Count one hit now; returns its time, which ``release`` takes back."""
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
        return now

    def release(self, key: str, stamp: float) -> None:
        """Take back a hit (one made at ``stamp``); nothing if it already left the window."""
        hits = self._hits.get(key)
        if hits is None:
            return
        try:
            hits.remove(stamp)
        except ValueError:
            return
        if not hits:
            del self._hits[key]

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)


Scope = Literal["address", "account_address"]


@dataclass(frozen=True, slots=True)
class Refused:
    """A login refused before its password is checked."""

    scope: Scope
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login admitted for checking, holding its reservations until it is settled."""

    account: str
    address: str
    delay_s: float
    """How long to wait before checking the password (0 unless the account is under attack)."""
    stamps: tuple[float, float, float]


class LoginThrottle:
    """Limits failed logins without letting anyone lock an account.

    - per address (any account): ``per_address`` failures per window, then 429;
    - per account from one address: ``per_account_address`` failures, then 429;
    - per account (every address): after ``delay_after`` failures each further
      attempt waits before its password is checked, ``delay_initial_s`` doubling
      per failure up to ``delay_max_s``. Its owner, from another address, still
      logs in, a little later; a distributed guesser is slowed.
    """

    def __init__(
        self,
        *,
        per_address: int,
        per_account_address: int,
        delay_after: int,
        delay_initial_s: float,
        delay_max_s: float,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._address = SlidingWindowLimiter(per_address, window_s, clock=clock)
        self._pair = SlidingWindowLimiter(per_account_address, window_s, clock=clock)
        self._delay_after = delay_after
        self._delay_initial_s = delay_initial_s
        self._delay_max_s = delay_max_s
        # Counted only as far as the delay still grows; older failures change nothing.
        doublings = 0
        while delay_initial_s * 2**doublings < delay_max_s:
            doublings += 1
        self._account = SlidingWindowLimiter(delay_after + doublings + 1, window_s, clock=clock)

    @staticmethod
    def _pair_key(account: str, address: str) -> str:
        return f"{account}\x00{address}"

    def delay_for(self, failures: int) -> float:
        """The wait before checking an attempt on an account with this many recent failures."""
        if failures < self._delay_after:
            return 0.0
        grown = self._delay_initial_s * 2.0 ** (failures - self._delay_after)
        return min(self._delay_max_s, grown)

    def admit(self, account: str, address: str) -> Attempt | Refused:
        """Check the limits and reserve this attempt under each of them, in one step."""
        pair = self._pair_key(account, address)
        checks: tuple[tuple[SlidingWindowLimiter, str, Scope], ...] = (
            (self._address, address, "address"),
            (self._pair, pair, "account_address"),
        )
        for limiter, key, scope in checks:
            wait = limiter.retry_after(key)
            if wait is not None:
                return Refused(scope, wait)
        delay = self.delay_for(self._account.count(account))
        stamps = (self._address.hit(address), self._pair.hit(pair), self._account.hit(account))
        return Attempt(account, address, delay, stamps)

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong: the reservations stand as counted failures."""

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: nothing counts against it, and this address starts afresh."""
        self._address.release(attempt.address, attempt.stamps[0])
        self._pair.reset(self._pair_key(attempt.account, attempt.address))
        self._account.release(attempt.account, attempt.stamps[2])

    def abandoned(self, attempt: Attempt) -> None:
        """Not evaluated (database outage, cancelled): its reservations are given back."""
        self._address.release(attempt.address, attempt.stamps[0])
        self._pair.release(self._pair_key(attempt.account, attempt.address), attempt.stamps[1])
        self._account.release(attempt.account, attempt.stamps[2])
