"""One shared Binance REST client per exchange: signing, the request budget, 429s and bans.

Binance counts request weight per IP per minute and tells us the running
total in ``x-mbx-used-weight-1m`` on every response; a few endpoints weigh
nothing but have a request count of their own (``/futures/data/*``; funding).
Every call waits, before it is sent, until the budget (``budget.py``: the
rules, the live reserve, pacing) lets it go, in the order of its ``Priority``:
one queue per budget (the weight, each request-count group), a waiting higher
class always first, first come first served within a class. Only the head of
a queue watches the clock; the others wait for their turn, so hundreds of
waiting calls cost nothing. A 429 pauses every call for ``Retry-After`` (only
the group's calls when the refused path has a count of its own); a 418 (IP
ban) stops every call until the ban ends: both are raised to the caller as
retryable errors, and the next call of anyone waits. New orders also wait for
the account's order counts (``OrderCounts``: slowed before the limit; a 429
``-1015`` "Too many new orders" pauses new orders only). Secrets and signatures
never reach a log line.

Binance counts weight per IP, so every client of one host shares one
``RestLimits`` (the budget, the order counts, the queues, the pauses): the
collectors' and the live executor's in production. The testnet is another
exchange with limits of its own, so its client has its own.

Every answer is decoded, once, into the reply type the caller names
(``exchange/replies.py``): no caller handles a dictionary, and an answer of
another shape is ``InvalidResponse`` (retryable) naming the call and the key.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, TypedDict, TypeVar, Unpack

import aiohttp
import msgspec
from prometheus_client import Counter, Gauge, Histogram

from arbengine.exchange.budget import (
    OrderCounts,
    Priority,
    RequestBudget,
    RequestGroup,
    binance_groups,
    is_new_order,
)
from arbengine.exchange.exchange_errors import (
    BadSignature,
    FatalExchangeError,
    InvalidSymbol,
    IpBanned,
    OrderOutcomeUnknown,
    RateLimited,
    RetryableExchangeError,
    TimestampOutsideWindow,
    UnexpectedStatus,
    WafBlocked,
)
from arbengine.exchange.replies import (
    ErrorReply,
    ExchangeInfo,
    ServerTime,
    decode_reply,
    summarize_body,
)
from arbengine.exchange.signing import encode_params, signed_query
from arbengine.logs import get_logger
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.health import HealthBoard

REQUESTS = Counter(
    "arb_rest_requests", "REST calls to the exchange by path and HTTP status", ["path", "status"]
)
USED_WEIGHT = Gauge("arb_rest_used_weight", "Request weight used in the current minute")
LIVE_RESERVE = Gauge(
    "arb_rest_live_reserve", "Request weight per minute kept for live polls (declared demand)"
)
GROUP_USED = Gauge(
    "arb_rest_group_requests", "Requests of a request-count group in its current window", ["group"]
)
WAITS = Counter(
    "arb_rest_waits",
    "Calls that waited before being sent, by priority and first reason (weight: the minute's "
    "budget; paced: repair/backfill share; a group's name; queued: behind others; paused: "
    "429/418/403)",
    ["priority", "reason"],
)
WAIT_SECONDS = Histogram(
    "arb_rest_wait_seconds",
    "Time from asking to sending, by priority",
    ["priority"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 15, 60, 300),
)
LIMITED = Counter("arb_rest_rate_limited", "429, 418 and 403 (WAF) answers received", ["status"])
ORDER_COUNT = Gauge(
    "arb_rest_order_count",
    "The account's new orders in the exchange's current window (its last answer said)",
    ["interval"],
)

DEFAULT_BAN_S = 120.0
TOO_MANY_ORDERS = -1015
ORDER_COUNT_HEADERS = ((10_000, "x-mbx-order-count-10s"), (60_000, "x-mbx-order-count-1m"))
INTERVAL_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
DEFAULT_FORBIDDEN_BACKOFF_S = 300.0
HEALTH_COMPONENT = "rest"
T = TypeVar("T")
Params = Mapping[str, object]
"""A call's parameters, in the order they are sent; None values are left out."""
_decode_error = msgspec.json.Decoder(ErrorReply, strict=False).decode


class CallOptions(TypedDict, total=False):
    """What ``get``/``post``/``put``/``delete`` pass on to ``request``."""

    weight: int
    priority: Priority
    signed: bool
    api_key: bool
    order_client_id: str | None


@dataclass(order=True)
class _Waiter:
    """A call waiting in one budget's queue: ordered by class, then arrival."""

    priority: int
    seq: int
    wake: asyncio.Event = field(default_factory=asyncio.Event, compare=False)


class RestLimits:
    """What every client of one exchange host shares: the request budget (weight per IP,
    the request-count groups), the account's order counts, the waiting queues and the
    pauses a 429, 418 or 403 brings."""

    def __init__(
        self,
        weight_limit: int = 2400,
        *,
        safety: float,
        groups: Sequence[RequestGroup] | None = None,
    ) -> None:
        self.budget = RequestBudget(
            weight_limit, safety=safety, groups=binance_groups() if groups is None else groups
        )
        self.orders = OrderCounts(safety=safety)
        self.queues: dict[str, list[_Waiter]] = {}
        """One queue per budget: "weight", each request-count group, "orders"."""
        self.seq = itertools.count()
        self.paused_until_ms = 0
        self.banned_until_ms = 0
        self.blocked_until_ms = 0


class BinanceRest:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        api_key: str = "",
        api_secret: str = "",
        recv_window_ms: int = 5000,
        weight_limit: int = 2400,
        weight_safety: float,
        groups: Sequence[RequestGroup] | None = None,
        timeout_s: float = 10.0,
        forbidden_backoff_s: float = DEFAULT_FORBIDDEN_BACKOFF_S,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        health: HealthBoard | None = None,
        limits: RestLimits | None = None,
    ) -> None:
        """``limits``: shared with the other clients of the same host (then
        ``weight_limit``, ``weight_safety`` and ``groups`` are those it was made with)."""
        self.session = self._session = session
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.limits = limits or RestLimits(weight_limit, safety=weight_safety, groups=groups)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._demand_warned = False
        self.time_offset_ms = 0
        self.forbidden_backoff_s = forbidden_backoff_s
        self._health = health
        self._troubled_at: float | None = None
        """When the trouble on the health board was reported (perf_counter), if it was."""
        self._log = get_logger("rest")

    # -- time and limits ------------------------------------------------------

    @property
    def budget(self) -> RequestBudget:
        return self.limits.budget

    @property
    def paused_until_ms(self) -> int:
        """A 429: no call before this (our clock's ms)."""
        return self.limits.paused_until_ms

    @paused_until_ms.setter
    def paused_until_ms(self, value: int) -> None:
        self.limits.paused_until_ms = value

    @property
    def banned_until_ms(self) -> int:
        """A 418 (IP ban): no call before this."""
        return self.limits.banned_until_ms

    @banned_until_ms.setter
    def banned_until_ms(self, value: int) -> None:
        self.limits.banned_until_ms = value

    @property
    def blocked_until_ms(self) -> int:
        """A 403 (the exchange's firewall): no call before this."""
        return self.limits.blocked_until_ms

    @blocked_until_ms.setter
    def blocked_until_ms(self, value: int) -> None:
        self.limits.blocked_until_ms = value

    def server_time_ms(self) -> int:
        return self._clock.time_ms() + self.time_offset_ms

    async def sync_time(self) -> int:
        """Measure the offset to the server clock (signed calls need it within recvWindow)."""
        before = self._clock.time_ms()
        reply = await self.get("/fapi/v1/time", reply=ServerTime, weight=1)
        after = self._clock.time_ms()
        self.time_offset_ms = reply.serverTime - (before + after) // 2
        return self.time_offset_ms

    @property
    def weight_limit(self) -> int:
        return self.budget.weight_limit

    @property
    def used_weight(self) -> int:
        """The exchange's count of our weight this minute (as its last answer said)."""
        return self.budget.used

    def apply_exchange_info(self, info: ExchangeInfo) -> None:
        """Take the REQUEST_WEIGHT per-minute limit and the ORDERS limits from
        ``exchangeInfo`` (never hard-coded)."""
        for limit in info.rateLimits:
            if (
                limit.rateLimitType == "REQUEST_WEIGHT"
                and limit.interval == "MINUTE"
                and limit.intervalNum == 1
            ):
                self.budget.weight_limit = limit.limit
            elif limit.rateLimitType == "ORDERS" and limit.interval in INTERVAL_MS:
                interval_ms = INTERVAL_MS[limit.interval] * limit.intervalNum
                self.limits.orders.set_limit(interval_ms, limit.limit)
        self._check_demand()

    def declare_live(self, name: str, weight_per_minute: float) -> None:
        """What the live poller ``name`` needs per minute: kept free of repair and backfill."""
        self.budget.declare_live(name, weight_per_minute)
        self._check_demand()

    def _check_demand(self) -> None:
        LIVE_RESERVE.set(self.budget.live_reserve)
        high = self.budget.live_demand_high
        if high and not self._demand_warned:
            self._log.warning(
                "rest.live_demand_high",
                live_demand=round(self.budget.live_demand, 1),
                budget=self.budget.budget,
                live_reserve=self.budget.live_reserve,
                hint="live polls may wait for the next minute: poll less often "
                "(collect.premium_index_interval, open_interest_interval) or follow fewer symbols",
            )
        self._demand_warned = high

    def budget_view(self) -> dict[str, object]:
        """The budget as ``/api/server`` shows it: limits, use, reserve, who is waiting."""
        view = self.budget.view(self.server_time_ms())
        view["orders"] = self.limits.orders.view(self.server_time_ms())
        waiting = dict.fromkeys((p.label for p in Priority), 0)
        for queue in self.limits.queues.values():
            for waiter in queue:
                waiting[Priority(waiter.priority).label] += 1
        view["waiting"] = waiting
        view["paused_until_ms"] = (
            max(self.banned_until_ms, self.paused_until_ms, self.blocked_until_ms) or None
        )
        return view

    async def _wait_for_allowance(
        self, weight: int, priority: Priority, group: str | None, new_order: bool = False
    ) -> int:
        """Wait until a call may be sent (see the module docstring); count it as sent.

        Returns the minute the call counts in (for ``_after_response``).
        """
        limits = self.limits
        if new_order:
            name: str | None = "orders"
        else:
            name = group if group is not None else ("weight" if weight > 0 else None)
        queue = limits.queues.setdefault(name, []) if name is not None else None
        waiter = _Waiter(int(priority), next(limits.seq))
        if queue is not None:
            heapq.heappush(queue, waiter)
        asked = time.perf_counter()
        reason: str | None = None
        try:
            while True:
                waiter.wake.clear()
                now = self._clock.time_ms()
                delay_ms: int | None
                blocked_until = max(
                    self.banned_until_ms, self.paused_until_ms, self.blocked_until_ms
                )
                if blocked_until > now:
                    why, delay_ms = "paused", blocked_until - now
                elif queue is not None and queue[0] is not waiter:
                    why, delay_ms = "queued", None  # woken when it reaches the head
                else:
                    server_now = self.server_time_ms()
                    wait = limits.orders.wait(server_now) if new_order else None
                    if wait is None:
                        wait = self.budget.wait(priority, weight, group, server_now)
                    if wait is None:
                        minute = self.budget.take(priority, weight, group, server_now)
                        if new_order:
                            limits.orders.take(server_now)
                        break
                    why, delay_ms = wait.reason, wait.ms
                if reason is None:
                    reason = why
                    WAITS.labels(priority.label, why).inc()
                await self._wait(waiter, delay_ms)
        finally:
            if queue is not None:
                if queue and queue[0] is waiter:
                    heapq.heappop(queue)
                else:  # cancelled while waiting behind others
                    queue.remove(waiter)
                    heapq.heapify(queue)
                if queue:
                    queue[0].wake.set()
        WAIT_SECONDS.labels(priority.label).observe(time.perf_counter() - asked)
        if group is not None:
            GROUP_USED.labels(group).set(self.budget.group_used(self.server_time_ms())[group])
        return minute

    async def _wait(self, waiter: _Waiter, delay_ms: int | None) -> None:
        """Until ``delay_ms`` has passed or the waiter is woken (None: only woken)."""
        if delay_ms is None:
            await waiter.wake.wait()
            return
        sleeping = asyncio.ensure_future(self._sleep(max(0.0, delay_ms / 1000)))
        woken = asyncio.ensure_future(waiter.wake.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()

    def _wake_weight_queue(self) -> None:
        """Weight came free (an answer): the head of the weight queue looks again."""
        queue = self.limits.queues.get("weight")
        if queue:
            queue[0].wake.set()

    # -- requests -------------------------------------------------------------

    async def get(
        self, path: str, params: Params | None = None, *, reply: type[T], **kw: Unpack[CallOptions]
    ) -> T:
        return await self.request("GET", path, params, reply=reply, **kw)

    async def post(
        self, path: str, params: Params | None = None, *, reply: type[T], **kw: Unpack[CallOptions]
    ) -> T:
        return await self.request("POST", path, params, reply=reply, **kw)

    async def put(
        self, path: str, params: Params | None = None, *, reply: type[T], **kw: Unpack[CallOptions]
    ) -> T:
        return await self.request("PUT", path, params, reply=reply, **kw)

    async def delete(
        self, path: str, params: Params | None = None, *, reply: type[T], **kw: Unpack[CallOptions]
    ) -> T:
        return await self.request("DELETE", path, params, reply=reply, **kw)

    async def request(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        reply: type[T],
        weight: int = 1,
        priority: Priority = Priority.LIVE,
        signed: bool = False,
        api_key: bool = False,
        order_client_id: str | None = None,
    ) -> T:
        """Send one call; return its answer decoded as ``reply`` (``exchange/replies.py``).

        ``weight`` is the exchange's (0 for paths with a request count of their own),
        ``priority`` whom it serves (see ``Priority``); ``order_client_id`` marks an order:
        failures become outcome-unknown. An answer of another shape is ``InvalidResponse``.
        """
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if (signed or api_key) and not self._api_key:
            raise FatalExchangeError(f"{path}: an API key is required (exchange.api_key)")
        if signed and not self._api_secret:
            raise FatalExchangeError(f"{path}: an API secret is required (exchange.api_secret)")
        group = self.budget.group_for(path)
        new_order = is_new_order(method, path)
        minute = await self._wait_for_allowance(weight, priority, group, new_order)
        headers = {}
        if signed or api_key:
            headers["X-MBX-APIKEY"] = self._api_key
        if signed:
            query = signed_query(
                params, self._api_secret, self.server_time_ms(), self.recv_window_ms
            )
        else:
            query = encode_params(params)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        started = time.perf_counter()
        try:
            async with self._session.request(
                method, url, headers=headers, timeout=self._timeout
            ) as response:
                body = await response.read()
                status = response.status
                response_headers = response.headers
        except asyncio.CancelledError:
            # A read given up at a shutdown: what it took of this minute stays taken,
            # but it is no longer in flight (or the budget would shrink for good).
            self._release(weight, minute)
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._release(weight, minute)
            REQUESTS.labels(path, "error").inc()
            reason = f"{method} {path}: {type(exc).__name__}: {exc}".rstrip(": ")
            self._report(f"exchange REST unreachable: {reason}")
            if order_client_id is not None:
                raise OrderOutcomeUnknown(reason, client_order_id=order_client_id) from exc
            raise RetryableExchangeError(reason) from exc
        self._after_response(weight, minute, response_headers)
        REQUESTS.labels(path, str(status)).inc()
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        if status == 200:
            # Only an answer to a call sent after the trouble began shows that it is over.
            if self._troubled_at is not None and started > self._troubled_at:
                self._troubled_at = None
                if self._health is not None:
                    self._health.clear(HEALTH_COMPONENT)
            return decode_reply(body, reply, f"{method} {path}")
        self._raise_for(
            method,
            path,
            status,
            body,
            response_headers,
            order_client_id,
            elapsed_ms,
            params.get("symbol"),
            group,
        )

    def _report(self, reason: str) -> None:
        """Put the exchange's trouble on the health board (cleared by the next success of a
        call sent after it: an answer to a call sent before says nothing about it)."""
        self._troubled_at = time.perf_counter()
        if self._health is not None:
            self._health.report(HEALTH_COMPONENT, reason)

    def _release(self, weight: int, minute: int, used: int | None = None) -> None:
        self.budget.answered(weight, used, minute, self.server_time_ms())
        if weight > 0:
            self._wake_weight_queue()

    def _after_response(self, weight: int, minute: int, headers: Mapping[str, str]) -> None:
        raw = headers.get("x-mbx-used-weight-1m") or headers.get("X-MBX-USED-WEIGHT-1M")
        used: int | None = None
        if raw is not None:
            try:
                used = int(raw)
            except ValueError:
                used = None
        self._release(weight, minute, used)
        if used is not None:
            USED_WEIGHT.set(self.budget.used)
        for interval_ms, name in ORDER_COUNT_HEADERS:
            raw = headers.get(name) or headers.get(name.upper())
            if raw is not None and raw.isdigit():
                self.limits.orders.reported(interval_ms, int(raw), self.server_time_ms())
                ORDER_COUNT.labels(name.rsplit("-", 1)[1]).set(int(raw))

    def _retry_after_s(self, headers: Mapping[str, str], default: float) -> float:
        try:
            return max(0.0, float(headers.get("Retry-After", "")))
        except ValueError:
            return default

    def _raise_for(
        self,
        method: str,
        path: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        order_client_id: str | None,
        elapsed_ms: float,
        symbol: object = None,
        group: str | None = None,
    ) -> NoReturn:
        code: int | None = None
        try:
            error = _decode_error(body)
        except msgspec.DecodeError:  # not Binance's error JSON: a proxy's or firewall's page
            msg = summarize_body(body)
        else:
            code = error.code
            msg = " ".join(error.msg.split())[:300]
        where = f"{method} {path}: HTTP {status}" + (f" code {code}" if code is not None else "")
        text = f"{where}: {msg}"
        now = self._clock.time_ms()
        if status == 418:
            retry_after = self._retry_after_s(headers, DEFAULT_BAN_S)
            self.banned_until_ms = max(self.banned_until_ms, now + int(retry_after * 1000))
            LIMITED.labels("418").inc()
            self._log.error("rest.ip_banned", path=path, retry_after_s=retry_after)
            self._report(f"IP banned by the exchange (HTTP 418) for {retry_after:g}s: {text}")
            raise IpBanned(text, retry_after_s=retry_after)
        if code == TOO_MANY_ORDERS:
            # The account's order count, not the IP's weight: only new orders wait.
            server_now = self.server_time_ms()
            retry_after = self._retry_after_s(headers, (10_000 - server_now % 10_000) / 1000)
            self.limits.orders.pause(server_now + int(retry_after * 1000))
            LIMITED.labels(str(status)).inc()
            self._log.warning(
                "rest.orders_limited", path=path, retry_after_s=retry_after, error=msg
            )
            raise RateLimited(text, retry_after_s=retry_after, status=status)
        if status == 429 or code == -1003:
            seconds_to_minute = 60 - (self.server_time_ms() // 1000) % 60
            retry_after = self._retry_after_s(headers, float(seconds_to_minute))
            if group is not None:
                # Over the count of its own group (it weighs nothing): only the group waits.
                self.budget.pause_group(group, self.server_time_ms() + int(retry_after * 1000))
            else:
                self.paused_until_ms = max(self.paused_until_ms, now + int(retry_after * 1000))
            LIMITED.labels("429").inc()
            self._log.warning(
                "rest.rate_limited", path=path, retry_after_s=retry_after, paused=group or "all"
            )
            self._report(f"rate limited (HTTP {status}) for {retry_after:g}s: {text}")
            raise RateLimited(text, retry_after_s=retry_after, status=status)
        if status == 403:
            retry_after = self._retry_after_s(headers, self.forbidden_backoff_s)
            self.blocked_until_ms = max(self.blocked_until_ms, now + int(retry_after * 1000))
            LIMITED.labels("403").inc()
            self._log.error(
                "rest.waf_blocked",
                path=path,
                retry_after_s=retry_after,
                body=msg,
                hint="the exchange's firewall refuses this address; every call waits",
            )
            self._report(
                f"blocked by the exchange's firewall (HTTP 403), every call paused for "
                f"{retry_after:g}s: {text}"
            )
            raise WafBlocked(text, retry_after_s=retry_after)
        if status >= 500 or status == 408:
            self._report(f"exchange error: {text}")
            if order_client_id is not None:
                raise OrderOutcomeUnknown(text, client_order_id=order_client_id, status=status)
            raise RetryableExchangeError(text, status=status, code=code)
        if code == -1021:
            raise TimestampOutsideWindow(text, status=status, code=code)
        if code == -1022:
            raise BadSignature(text, status=status, code=code)
        if code == -1121:
            name = symbol if isinstance(symbol, str) else None
            raise InvalidSymbol(
                f"{text} (symbol {name})" if name else text, symbol=name, status=status
            )
        if status in (400, 401) and code is not None:
            raise FatalExchangeError(text, status=status, code=code)
        raise UnexpectedStatus(
            f"{where}: unexpected answer ({msg}); check exchange.rest_url and what lies "
            "between us and the exchange",
            status=status,
            code=code,
        )
