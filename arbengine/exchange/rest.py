"""One shared Binance REST client per exchange: signing, request weight, 429s and bans.

Binance counts request weight per IP per minute and tells us the running
total in ``x-mbx-used-weight-1m`` on every response. We track it (plus the
weight of calls in flight) against the limit read from ``exchangeInfo`` and
wait for the next minute rather than exceed it. A 429 pauses every call for
``Retry-After``; a 418 (IP ban) stops every call until the ban ends: both
are raised to the caller as retryable errors, and the next call of anyone
waits. Secrets and signatures never reach a log line.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson
import structlog
from prometheus_client import Counter, Gauge

from arbengine.exchange.errors import (
    BadSignature,
    FatalExchangeError,
    InvalidResponse,
    InvalidSymbol,
    IpBanned,
    OrderOutcomeUnknown,
    RateLimited,
    RetryableExchangeError,
    TimestampOutsideWindow,
    UnexpectedStatus,
    WafBlocked,
)
from arbengine.exchange.signing import encode_params, signed_query
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.health import HealthBoard

REQUESTS = Counter(
    "arb_rest_requests", "REST calls to the exchange by path and HTTP status", ["path", "status"]
)
USED_WEIGHT = Gauge("arb_rest_used_weight", "Request weight used in the current minute")
WEIGHT_WAITS = Counter("arb_rest_weight_waits", "Calls delayed to stay under the weight limit")
LIMITED = Counter("arb_rest_rate_limited", "429, 418 and 403 (WAF) answers received", ["status"])

DEFAULT_BAN_S = 120.0
DEFAULT_FORBIDDEN_BACKOFF_S = 300.0
HEALTH_COMPONENT = "rest"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(rb"<[^>]*>")


def summarize_body(body: bytes, limit: int = 160) -> str:
    """One line about an error body that is not Binance JSON (a WAF or proxy HTML page)."""
    if body.lstrip()[:1] == b"<":
        title = _TITLE.search(body)
        text = title.group(1) if title else _TAGS.sub(b" ", body)
        summary = " ".join(text.decode(errors="replace").split())
        return f"HTML page {summary[:limit]!r}" if summary else "an HTML page"
    summary = " ".join(body.decode(errors="replace").split())
    return repr(summary[:limit]) if summary else "an empty body"


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
        weight_safety: float = 0.9,
        timeout_s: float = 10.0,
        forbidden_backoff_s: float = DEFAULT_FORBIDDEN_BACKOFF_S,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        health: HealthBoard | None = None,
    ) -> None:
        self.session = self._session = session
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.weight_limit = weight_limit
        self.weight_safety = weight_safety
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self.time_offset_ms = 0
        self.used_weight = 0
        self._weight_minute = 0
        self._reserved = 0
        self.forbidden_backoff_s = forbidden_backoff_s
        self.paused_until_ms = 0
        self.banned_until_ms = 0
        self.blocked_until_ms = 0
        self._health = health
        self._troubled_at: float | None = None
        """When the trouble on the health board was reported (perf_counter), if it was."""
        self._log = structlog.get_logger("rest").bind(component="rest")

    # -- time and limits ------------------------------------------------------

    def server_time_ms(self) -> int:
        return self._clock.time_ms() + self.time_offset_ms

    async def sync_time(self) -> int:
        """Measure the offset to the server clock (signed calls need it within recvWindow)."""
        before = self._clock.time_ms()
        body = await self.get("/fapi/v1/time", weight=1)
        after = self._clock.time_ms()
        try:
            server = int(body["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise InvalidResponse(f"/fapi/v1/time: unexpected reply {body!r:.200}") from None
        self.time_offset_ms = server - (before + after) // 2
        return self.time_offset_ms

    def apply_exchange_info(self, info: Mapping[str, Any]) -> None:
        """Take the REQUEST_WEIGHT per-minute limit from ``exchangeInfo`` (never hard-coded)."""
        for limit in info.get("rateLimits", []):
            if (
                limit.get("rateLimitType") == "REQUEST_WEIGHT"
                and limit.get("interval") == "MINUTE"
                and int(limit.get("intervalNum", 1)) == 1
            ):
                self.weight_limit = int(limit["limit"])

    async def _wait_for_allowance(self, weight: int) -> None:
        """Block until a call of ``weight`` may be sent; reserve it."""
        while True:
            async with self._lock:
                now = self._clock.time_ms()
                blocked_until = max(
                    self.banned_until_ms, self.paused_until_ms, self.blocked_until_ms
                )
                if blocked_until <= now:
                    minute = self.server_time_ms() // 60_000
                    if minute != self._weight_minute:
                        self._weight_minute = minute
                        self.used_weight = 0
                    budget = self.weight_limit * self.weight_safety
                    if self.used_weight + self._reserved + weight <= budget or (
                        self.used_weight + self._reserved == 0
                    ):
                        self._reserved += weight
                        return
                    WEIGHT_WAITS.inc()
                    blocked_until = now + (minute + 1) * 60_000 - self.server_time_ms() + 50
            await self._sleep(max(0.0, (blocked_until - now) / 1000))

    # -- requests -------------------------------------------------------------

    async def get(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return await self.request("GET", path, params, **kw)

    async def post(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return await self.request("POST", path, params, **kw)

    async def put(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return await self.request("PUT", path, params, **kw)

    async def delete(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        return await self.request("DELETE", path, params, **kw)

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        weight: int = 1,
        signed: bool = False,
        api_key: bool = False,
        order_client_id: str | None = None,
    ) -> Any:
        """Send one call. ``order_client_id`` marks an order: failures become outcome-unknown."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        await self._wait_for_allowance(weight)
        headers = {}
        if signed or api_key:
            if not self._api_key:
                self._release(weight)
                raise FatalExchangeError(f"{path}: an API key is required (exchange.api_key)")
            headers["X-MBX-APIKEY"] = self._api_key
        if signed:
            if not self._api_secret:
                self._release(weight)
                raise FatalExchangeError(f"{path}: an API secret is required (exchange.api_secret)")
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
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._release(weight)
            REQUESTS.labels(path, "error").inc()
            reason = f"{method} {path}: {type(exc).__name__}: {exc}".rstrip(": ")
            self._report(f"exchange REST unreachable: {reason}")
            if order_client_id is not None:
                raise OrderOutcomeUnknown(reason, client_order_id=order_client_id) from exc
            raise RetryableExchangeError(reason) from exc
        self._after_response(weight, response_headers)
        REQUESTS.labels(path, str(status)).inc()
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        if status == 200:
            # Only an answer to a call sent after the trouble began shows that it is over.
            if self._troubled_at is not None and started > self._troubled_at:
                self._troubled_at = None
                if self._health is not None:
                    self._health.clear(HEALTH_COMPONENT)
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                raise InvalidResponse(
                    f"{method} {path}: reply is not JSON: {summarize_body(body)}"
                ) from None
        self._raise_for(
            method,
            path,
            status,
            body,
            response_headers,
            order_client_id,
            elapsed_ms,
            params.get("symbol"),
        )

    def _report(self, reason: str) -> None:
        """Put the exchange's trouble on the health board (cleared by the next success of a
        call sent after it: an answer to a call sent before says nothing about it)."""
        self._troubled_at = time.perf_counter()
        if self._health is not None:
            self._health.report(HEALTH_COMPONENT, reason)

    def _release(self, weight: int) -> None:
        self._reserved = max(0, self._reserved - weight)

    def _after_response(self, weight: int, headers: Mapping[str, str]) -> None:
        self._release(weight)
        used = headers.get("x-mbx-used-weight-1m") or headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None:
            try:
                self.used_weight = int(used)
                self._weight_minute = self.server_time_ms() // 60_000
                USED_WEIGHT.set(self.used_weight)
            except ValueError:
                pass

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
        symbol: Any = None,
    ) -> None:
        code: int | None = None
        msg: str | None = None
        try:
            parsed = orjson.loads(body)
            if isinstance(parsed, dict) and "code" in parsed:
                code = int(parsed["code"])
                msg = " ".join(str(parsed.get("msg", "")).split())[:300]
        except (orjson.JSONDecodeError, ValueError, TypeError):
            pass
        if msg is None:
            msg = summarize_body(body)
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
        if status == 429 or code == -1003:
            seconds_to_minute = 60 - (self.server_time_ms() // 1000) % 60
            retry_after = self._retry_after_s(headers, float(seconds_to_minute))
            self.paused_until_ms = max(self.paused_until_ms, now + int(retry_after * 1000))
            LIMITED.labels("429").inc()
            self._log.warning("rest.rate_limited", path=path, retry_after_s=retry_after)
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
