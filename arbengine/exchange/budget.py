"""How much the exchange lets us ask, and who may ask for it next: the REST budget's rules.

Binance limits one IP in two ways (BINANCE.md). Request *weight* per minute
(``REQUEST_WEIGHT`` from ``exchangeInfo``, the running total in
``x-mbx-used-weight-1m``), reset on the minute; and for a few endpoints that
weigh nothing, a request *count* of their own: every ``/futures/data/*`` path
together 1000 per 5 minutes, ``fundingRate`` and ``fundingInfo`` together 500
per 5 minutes (``RequestGroup``; the windows are not published, so each group
is kept as a sliding window: never more than the count in any span of that
length, which is within the limit however the exchange aligns its windows).
We use at most ``safety`` of every limit.

Every call declares a ``Priority``. Live polls (premiumIndex every 2 s, open
interest, exchangeInfo and time, the rounds that follow a series) are LIVE;
the trade tape's catch-up and gap repair are REPAIR; history (an indicator
series' first round, the continuity check's repair of holes in the stored
tape) is BACKFILL. Why live polls are never delayed by the others:

- *A reserve.* The pollers declare what they need per minute
  (``declare_live``: weight per round × rounds per minute). REPAIR and BACKFILL
  together may use only ``budget − reserve`` of a minute (``lower_share``),
  and a call of theirs must leave the part of the reserve LIVE has not used yet
  free in the exchange's own count, so whatever else the minute brings (a burst
  of catch-up, another process on our IP) the live polls of the whole minute
  still fit. The reserve is the declared demand plus a quarter and a fixed
  margin (retries, exchangeInfo, time); it never takes more than 90 % of the
  budget, so repair always has a share, and ``live_demand_high`` says when the
  declared demand does not fit (then live polls may wait too: poll less often).
- *Pacing.* REPAIR and BACKFILL receive their share of a minute gradually
  (``SLACK_MS`` of it at once, the rest in proportion to the time elapsed), not
  as a burst at the start of each minute: a gap found mid-minute is repaired in
  about a second rather than the next minute, and the exchange sees an even load.
- *Strict order* (the client's waiting queues): a waiting call of a higher
  class is always served before a waiting call of a lower class on the same
  budget; within a class, first come first served. Nothing of a lower class
  waits longer than the budget and the higher classes' waiting calls force.

New orders have limits of their own, per account (``OrderCounts``): ``ORDERS`` in
``exchangeInfo`` (300 per 10 seconds, 1200 per minute seen), the account's running
counts in ``x-mbx-order-count-10s`` / ``-1m`` on every order answer. A new order waits
before it would take either count past ``safety`` of its limit: never more of ours in
any span of the interval (a sliding window, right however the exchange aligns its
windows), nor more than the exchange's last count (orders of others on the account
included) allows in its window. A ``-1015`` refusal pauses new orders, nothing else.

This module is the bookkeeping and the rules, on explicit times (exchange-server
milliseconds); ``rest.py`` owns the waiting.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MINUTE_MS = 60_000
SLACK_MS = 6_000
"""REPAIR and BACKFILL may use this much of a minute's share at once (10 %)."""
LIVE_HEADROOM = 1.25
"""The reserve is the declared live demand times this, plus ``LIVE_MARGIN``."""
LIVE_MARGIN = 20
"""Weight kept for live calls nobody declares: exchangeInfo, time, retries."""
MIN_LOWER_SHARE = 0.1
"""REPAIR and BACKFILL keep at least this share of the budget, whatever live declares."""
ROLLOVER_GUARD_MS = 50
"""A call waiting for the next minute waits this much past it (clocks differ a little)."""


class Priority(enum.IntEnum):
    """Who a REST call serves; lower values are served first."""

    LIVE = 0
    """Polls the engine reads as they come, and everything that is not history or repair."""
    REPAIR = 1
    """The live trade tape: catch-up after start or a reconnect, gap repair."""
    BACKFILL = 2
    """History: indicator series' first round, holes found later in the stored tape."""

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class RequestGroup:
    """Endpoints with a per-IP request count of their own (they weigh nothing)."""

    name: str
    limit: int
    """Requests the exchange allows per ``window_ms``."""
    window_ms: int
    prefixes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def covers(self, path: str) -> bool:
        return path in self.paths or any(path.startswith(p) for p in self.prefixes)


def binance_groups(
    futures_data_limit: int = 1000,
    futures_data_window_ms: int = 300_000,
    funding_limit: int = 500,
    funding_window_ms: int = 300_000,
) -> tuple[RequestGroup, ...]:
    """Binance USD-M's request-count groups (BINANCE.md), limits as configured."""
    return (
        RequestGroup(
            "futures_data", futures_data_limit, futures_data_window_ms, prefixes=("/futures/data/",)
        ),
        RequestGroup(
            "funding",
            funding_limit,
            funding_window_ms,
            paths=("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo"),
        ),
    )


@dataclass
class _GroupState:
    group: RequestGroup
    allowed: int
    sent: deque[int] = field(default_factory=deque)
    """When each request of the current window was admitted (server ms), oldest first."""
    paused_until: int = 0

    def expire(self, now: int) -> None:
        horizon = now - self.group.window_ms
        while self.sent and self.sent[0] <= horizon:
            self.sent.popleft()


@dataclass(frozen=True)
class Wait:
    """Why a call may not go yet, and for how long at most (None: until something changes)."""

    reason: str
    ms: int | None


class RequestBudget:
    def __init__(
        self,
        weight_limit: int = 2400,
        *,
        safety: float,
        groups: Sequence[RequestGroup] = (),
    ) -> None:
        self.weight_limit = weight_limit
        self.safety = safety
        self._groups = {
            g.name: _GroupState(g, max(1, math.floor(g.limit * safety))) for g in groups
        }
        self._demand: dict[str, float] = {}
        self.minute = -1
        self.used = 0
        """The exchange's count of weight this minute (its header), or ours when higher."""
        self.inflight = 0
        """Weight of calls sent and not answered yet."""
        self.live_used = 0
        self.lower_used = 0
        """Weight admitted this minute for LIVE, and for REPAIR and BACKFILL together."""

    # -- configuration ---------------------------------------------------------

    @property
    def budget(self) -> int:
        return max(1, math.floor(self.weight_limit * self.safety))

    def declare_live(self, name: str, weight_per_minute: float) -> None:
        """What a live poller needs per minute (replaces its previous declaration)."""
        self._demand[name] = max(0.0, weight_per_minute)

    @property
    def live_demand(self) -> float:
        return sum(self._demand.values())

    @property
    def live_reserve(self) -> int:
        wanted = math.ceil(self.live_demand * LIVE_HEADROOM) + LIVE_MARGIN
        return min(wanted, self.budget - math.ceil(self.budget * MIN_LOWER_SHARE))

    @property
    def live_demand_high(self) -> bool:
        """The declared live demand does not fit the budget with room to spare."""
        return math.ceil(self.live_demand * LIVE_HEADROOM) + LIVE_MARGIN > self.live_reserve

    @property
    def lower_share(self) -> int:
        """Weight REPAIR and BACKFILL may use per minute, together."""
        return self.budget - self.live_reserve

    def group_for(self, path: str) -> str | None:
        for name, state in self._groups.items():
            if state.group.covers(path):
                return name
        return None

    def group_allowance(self, name: str) -> tuple[int, int]:
        """Requests of group ``name`` we send at most (its safety share), and per how many ms."""
        state = self._groups[name]
        return state.allowed, state.group.window_ms

    # -- the rules -------------------------------------------------------------

    def _roll(self, now: int) -> None:
        minute = now // MINUTE_MS
        if minute != self.minute:
            self.minute = minute
            self.used = self.live_used = self.lower_used = 0

    def _to_next_minute(self, now: int) -> int:
        return (now // MINUTE_MS + 1) * MINUTE_MS - now + ROLLOVER_GUARD_MS

    def wait(self, priority: Priority, weight: int, group: str | None, now: int) -> Wait | None:
        """None when a call may be sent now; else why not and for how long at most."""
        if group is not None:
            waiting = self._group_wait(self._groups[group], now)
            if waiting is not None:
                return waiting
        if weight > 0:
            return self._weight_wait(priority, weight, now)
        return None

    def _group_wait(self, state: _GroupState, now: int) -> Wait | None:
        if state.paused_until > now:
            return Wait(state.group.name, state.paused_until - now)
        state.expire(now)
        if len(state.sent) < state.allowed:
            return None
        return Wait(state.group.name, state.sent[0] + state.group.window_ms - now + 1)

    def committed(self, now: int) -> int:
        """Weight counted this minute: the exchange's count and ours in flight, or all we have
        sent this minute when that is more (an answer without a count, one not back yet)."""
        self._roll(now)
        return max(self.used + self.inflight, self.live_used + self.lower_used)

    def _weight_wait(self, priority: Priority, weight: int, now: int) -> Wait | None:
        committed = self.committed(now)
        if priority is Priority.LIVE:
            if committed + weight <= self.budget or committed == 0:
                return None
            return Wait("weight", self._to_next_minute(now))
        # REPAIR and BACKFILL: within their share, paced, and never into live's remainder.
        share = self.lower_share
        into_minute = now % MINUTE_MS
        if self.lower_used == 0 and weight > share:
            # Heavier than a whole share (a tiny budget): alone in a minute, or not at all.
            if committed == 0:
                return None
            return Wait("weight", self._to_next_minute(now))
        needed = self.lower_used + weight
        if needed > share:
            return Wait("paced", self._to_next_minute(now))
        allowed = share * min(1.0, (into_minute + SLACK_MS) / MINUTE_MS)
        if needed > allowed:
            ready_at = math.ceil(needed * MINUTE_MS / share) - SLACK_MS
            return Wait("paced", max(1, ready_at - into_minute))
        live_left = max(0, self.live_reserve - self.live_used)
        if committed + weight + live_left > self.budget:
            # The exchange counts more than we sent (another process, a restart): the rest
            # of the reserve stays free; answers or the next minute change that.
            return Wait("weight", self._to_next_minute(now))
        return None

    # -- bookkeeping -----------------------------------------------------------

    def take(self, priority: Priority, weight: int, group: str | None, now: int) -> int:
        """A call is sent now; returns the minute it counts in (give it to ``answered``)."""
        if group is not None:
            self._groups[group].sent.append(now)
        self._roll(now)
        if weight > 0:
            self.inflight += weight
            if priority is Priority.LIVE:
                self.live_used += weight
            else:
                self.lower_used += weight
        return self.minute

    def answered(self, weight: int, used: int | None, sent_minute: int, now: int) -> None:
        """The answer to a call sent in ``sent_minute``, with the exchange's used weight."""
        self.inflight = max(0, self.inflight - max(0, weight))
        self._roll(now)
        # A count from a minute that has ended says nothing about this one.
        if used is not None and sent_minute == self.minute:
            self.used = max(self.used, used)

    def pause_group(self, group: str, until: int) -> None:
        """The exchange refused a call of ``group`` (429): nothing of it until ``until``."""
        state = self._groups[group]
        state.paused_until = max(state.paused_until, until)

    # -- what it looks like --------------------------------------------------------

    def view(self, now: int) -> dict[str, Any]:
        self._roll(now)
        groups = []
        for state in self._groups.values():
            state.expire(now)
            groups.append(
                {
                    "name": state.group.name,
                    "limit": state.group.limit,
                    "allowed": state.allowed,
                    "window_s": state.group.window_ms / 1000,
                    "used": len(state.sent),
                    "paused_until_ms": state.paused_until or None,
                }
            )
        return {
            "weight_limit": self.weight_limit,
            "budget": self.budget,
            "used_weight": self.used,
            "live_demand": round(self.live_demand, 1),
            "live_reserve": self.live_reserve,
            "lower_share": self.lower_share,
            "live_used": self.live_used,
            "lower_used": self.lower_used,
            "groups": groups,
        }

    def group_used(self, now: int) -> dict[str, int]:
        out = {}
        for name, state in self._groups.items():
            state.expire(now)
            out[name] = len(state.sent)
        return out


# -- new orders -----------------------------------------------------------------------------

NEW_ORDER_PATHS = frozenset({"/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v1/batchOrders"})
"""Paths whose POST places orders: counted against the account's ``ORDERS`` limits."""
ORDER_LIMITS = ((10_000, 300), (60_000, 1200))
"""Binance USD-M's ``ORDERS`` limits (interval ms, orders) until exchangeInfo says."""


def is_new_order(method: str, path: str) -> bool:
    return method == "POST" and path in NEW_ORDER_PATHS


@dataclass
class _OrderWindow:
    interval_ms: int
    limit: int
    allowed: int
    sent: deque[int] = field(default_factory=deque)
    """When each of our orders of the last interval was admitted (server ms), oldest first."""
    reported: tuple[int, int, int] | None = None
    """The exchange's count: (its window's index, the count, when we heard it)."""

    def expire(self, now: int) -> None:
        horizon = now - self.interval_ms
        while self.sent and self.sent[0] <= horizon:
            self.sent.popleft()

    def counted(self, now: int) -> tuple[int, int]:
        """Orders counted in the window now, and when one more may go (ms from now)."""
        self.expire(now)
        ours = len(self.sent)
        ready = self.sent[0] + self.interval_ms - now + 1 if ours >= self.allowed else 0
        if self.reported is not None and self.reported[0] == now // self.interval_ms:
            _, count, heard = self.reported
            exchange = count + sum(1 for t in self.sent if t > heard)
            if exchange >= self.allowed:
                window_end = (now // self.interval_ms + 1) * self.interval_ms
                ready = max(ready, window_end - now + ROLLOVER_GUARD_MS)
            return max(ours, exchange), ready
        return ours, ready


class OrderCounts:
    """The account's new-order limits and counts (see the module docstring)."""

    def __init__(self, *, safety: float, limits: Sequence[tuple[int, int]] = ORDER_LIMITS):
        self.safety = safety
        self._windows = {ms: self._window(ms, limit) for ms, limit in limits}
        self.paused_until = 0
        """A ``-1015`` refusal: no new order before this (server ms)."""

    def _window(self, interval_ms: int, limit: int) -> _OrderWindow:
        return _OrderWindow(interval_ms, limit, max(1, math.floor(limit * self.safety)))

    def set_limit(self, interval_ms: int, limit: int) -> None:
        """A limit from exchangeInfo (``ORDERS``), replacing the one for that interval."""
        window = self._windows.get(interval_ms)
        if window is None:
            self._windows[interval_ms] = self._window(interval_ms, limit)
        else:
            window.limit, window.allowed = limit, max(1, math.floor(limit * self.safety))

    def wait(self, now: int) -> Wait | None:
        """None when a new order may be sent now; else for how long at most it waits."""
        if self.paused_until > now:
            return Wait("orders", self.paused_until - now)
        longest = 0
        for window in self._windows.values():
            counted, ready = window.counted(now)
            if counted >= window.allowed:
                longest = max(longest, ready, 1)
        return Wait("orders", longest) if longest else None

    def take(self, now: int) -> None:
        for window in self._windows.values():
            window.sent.append(now)

    def reported(self, interval_ms: int, count: int, now: int) -> None:
        """The exchange's count of the account's orders in its current window."""
        window = self._windows.get(interval_ms)
        if window is not None:
            window.reported = (now // interval_ms, count, now)

    def pause(self, until: int) -> None:
        self.paused_until = max(self.paused_until, until)

    def view(self, now: int) -> list[dict[str, Any]]:
        out = []
        for window in self._windows.values():
            counted, _ = window.counted(now)
            out.append(
                {
                    "interval_s": window.interval_ms / 1000,
                    "limit": window.limit,
                    "allowed": window.allowed,
                    "used": counted,
                }
            )
        return out
