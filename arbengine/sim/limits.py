"""Request-weight, request-count and order-count limits, with Binance's 429-then-418 escalation.

Windows are fixed and aligned to wall-clock boundaries (the minute for
``REQUEST_WEIGHT``, ten seconds and the minute for ``ORDERS``, five minutes for
the request-count groups), as Binance's ``x-mbx-used-weight-1m`` resets on the
minute. Wall clock, not simulated time, because a client's rate budget is about
real requests whatever the sim's speed.

Some endpoints weigh nothing but have a per-IP request count of their own
(BINANCE.md): every ``/futures/data/*`` path together, 1000 requests per 5
minutes; ``fundingRate`` and ``fundingInfo`` together, 500 per 5 minutes
(``GROUPS``). A request over such a count is refused like one over the weight.

A request that takes the weight (or its group's count) over the limit is
answered 429 with ``Retry-After`` (seconds to the end of the window). A client
that keeps calling before that moment collects strikes; at ``ban_after``
strikes its IP is banned: 418 for every call until the ban ends, the ban
doubling on each repeat (2 minutes up to 3 days), as Binance does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

FUTURES_DATA = "futures_data"
FUNDING = "funding"


def group_of(path: str) -> str | None:
    """The request-count group a path belongs to (None: it only counts weight)."""
    if path.startswith("/futures/data/"):
        return FUTURES_DATA
    if path in ("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo"):
        return FUNDING
    return None


@dataclass(frozen=True, slots=True)
class LimitConfig:
    weight_per_minute: int = 2400
    orders_per_10s: int = 300
    orders_per_minute: int = 1200
    futures_data_requests: int = 1000
    """Requests to ``/futures/data/*`` per ``group_window_s``, all paths together."""
    funding_requests: int = 500
    """Requests to ``fundingRate`` and ``fundingInfo`` per ``group_window_s``, together."""
    group_window_s: float = 300.0
    ban_after: int = 3
    """Requests sent during a 429 back-off before the IP is banned."""
    ban_seconds: float = 120.0
    max_ban_seconds: float = 3 * 86_400.0


@dataclass(frozen=True, slots=True)
class Verdict:
    status: int
    """200 to proceed; 429 or 418 to refuse."""
    used_weight: int
    retry_after: int = 0
    code: int = 0
    msg: str = ""


@dataclass(slots=True)
class _Count:
    window: int = -1
    used: int = 0
    backoff_until: float = 0.0


@dataclass(slots=True)
class _Ip:
    window: int = -1
    used: int = 0
    backoff_until: float = 0.0
    strikes: int = 0
    banned_until: float = 0.0
    bans: int = 0
    groups: dict[str, _Count] = field(default_factory=dict)


@dataclass(slots=True)
class _Orders:
    window_10s: int = -1
    count_10s: int = 0
    window_1m: int = -1
    count_1m: int = 0


@dataclass(slots=True)
class RateLimiter:
    config: LimitConfig = field(default_factory=LimitConfig)
    _ips: dict[str, _Ip] = field(default_factory=dict)
    _orders: _Orders = field(default_factory=_Orders)

    def used_weight(self, ip: str, now_s: float) -> int:
        st = self._ips.get(ip)
        if st is None or st.window != int(now_s // 60):
            return 0
        return st.used

    def check(self, ip: str, weight: int, now_s: float) -> Verdict:
        st = self._ips.setdefault(ip, _Ip())
        minute = int(now_s // 60)
        if st.window != minute:
            st.window = minute
            st.used = 0
        if now_s < st.banned_until:
            return self._banned(st, now_s)
        if now_s < st.backoff_until:
            st.strikes += 1
            st.used += weight
            if st.strikes >= self.config.ban_after:
                return self.ban(ip, now_s)
            return self._too_many(st, now_s)
        st.used += weight
        if st.used > self.config.weight_per_minute:
            st.backoff_until = (minute + 1) * 60.0
            st.strikes = 0
            return self._too_many(st, now_s)
        return Verdict(200, st.used)

    def count(self, ip: str, group: str, now_s: float) -> Verdict:
        """Count one request of ``group`` (after ``check`` let it through): 429 over the count,
        strikes towards a ban when the client keeps calling during that back-off."""
        st = self._ips.setdefault(ip, _Ip())
        limit = self.group_limit(group)
        window = int(now_s // self.config.group_window_s)
        counter = st.groups.setdefault(group, _Count())
        if counter.window != window:
            counter.window = window
            counter.used = 0
        counter.used += 1
        if now_s < counter.backoff_until:
            st.strikes += 1
            if st.strikes >= self.config.ban_after:
                return self.ban(ip, now_s)
            return self._too_many_in_group(group, counter, limit, st.used, now_s)
        if counter.used > limit:
            counter.backoff_until = (window + 1) * self.config.group_window_s
            st.strikes = 0
            return self._too_many_in_group(group, counter, limit, st.used, now_s)
        return Verdict(200, st.used)

    def group_limit(self, group: str) -> int:
        if group == FUTURES_DATA:
            return self.config.futures_data_requests
        if group == FUNDING:
            return self.config.funding_requests
        raise ValueError(f"unknown request group {group!r}")

    def group_used(self, ip: str, group: str, now_s: float) -> int:
        st = self._ips.get(ip)
        counter = st.groups.get(group) if st is not None else None
        if counter is None or counter.window != int(now_s // self.config.group_window_s):
            return 0
        return counter.used

    def _too_many_in_group(
        self, group: str, counter: _Count, limit: int, used_weight: int, now_s: float
    ) -> Verdict:
        minutes = self.config.group_window_s / 60
        return Verdict(
            429,
            used_weight,
            max(1, math.ceil(counter.backoff_until - now_s)),
            -1003,
            f"Too many requests; current limit of IP(127.0.0.1) for {group} is {limit} "
            f"requests per {minutes:g} minutes.",
        )

    def ban(self, ip: str, now_s: float, seconds: float | None = None) -> Verdict:
        st = self._ips.setdefault(ip, _Ip())
        duration = seconds
        if duration is None:
            duration = min(self.config.ban_seconds * 2**st.bans, self.config.max_ban_seconds)
        st.bans += 1
        st.banned_until = now_s + duration
        st.strikes = 0
        st.backoff_until = 0.0
        return self._banned(st, now_s)

    def _too_many(self, st: _Ip, now_s: float) -> Verdict:
        return Verdict(
            429,
            st.used,
            max(1, math.ceil(st.backoff_until - now_s)),
            -1003,
            f"Too many requests; current limit of IP(127.0.0.1) is "
            f"{self.config.weight_per_minute} requests per minute. Please use the websocket "
            "for live updates to avoid polling the API.",
        )

    def _banned(self, st: _Ip, now_s: float) -> Verdict:
        until_ms = int(st.banned_until * 1000)
        return Verdict(
            418,
            st.used,
            max(1, math.ceil(st.banned_until - now_s)),
            -1003,
            f"Way too many requests; IP(127.0.0.1) banned until {until_ms}. Please use the "
            "websocket for live updates to avoid bans.",
        )

    def order(self, now_s: float) -> tuple[Verdict | None, int, int]:
        """Count one new order: a 429 verdict when over a limit, and the two counters."""
        o = self._orders
        w10, w60 = int(now_s // 10), int(now_s // 60)
        if o.window_10s != w10:
            o.window_10s, o.count_10s = w10, 0
        if o.window_1m != w60:
            o.window_1m, o.count_1m = w60, 0
        o.count_10s += 1
        o.count_1m += 1
        if o.count_10s > self.config.orders_per_10s:
            return (
                Verdict(
                    429,
                    0,
                    max(1, math.ceil((w10 + 1) * 10 - now_s)),
                    -1015,
                    f"Too many new orders; current limit is {self.config.orders_per_10s} "
                    "orders per TEN_SECONDS.",
                ),
                o.count_10s,
                o.count_1m,
            )
        if o.count_1m > self.config.orders_per_minute:
            return (
                Verdict(
                    429,
                    0,
                    max(1, math.ceil((w60 + 1) * 60 - now_s)),
                    -1015,
                    f"Too many new orders; current limit is {self.config.orders_per_minute} "
                    "orders per MINUTE.",
                ),
                o.count_10s,
                o.count_1m,
            )
        return None, o.count_10s, o.count_1m

    def reset(self) -> None:
        self._ips.clear()
        self._orders = _Orders()
