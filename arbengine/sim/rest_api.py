"""REST endpoints (Binance USD-M and Coinbase), thin handlers over the market and the account.

Every Binance response, error or not, carries ``X-MBX-USED-WEIGHT-1M``; order
endpoints add ``X-MBX-ORDER-COUNT-10S`` / ``-1M``. Faults are applied before
the rate limiter in this order: hang, latency, forced 5xx, forced 429/418.
``/futures/data/*``, ``fundingRate`` and ``fundingInfo`` weigh nothing and are
counted against their own per-IP request limits instead (``limits.py``). Every
answer to a Binance path is counted per path and status (``requests.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from arbengine.sim import market_summaries as summaries
from arbengine.sim.error_reply import SimApiError, mandatory
from arbengine.sim.faults import ORDER_REJECTIONS, OrderCall, hits
from arbengine.sim.leverage_brackets import brackets
from arbengine.sim.limits import group_of
from arbengine.sim.market_model import HIST_KINDS, HIST_PERIODS, HOUR_MS
from arbengine.sim.request_auth import check_api_key, parse_params, verify_signed
from arbengine.sim.symbols import RATE_LIMITS, exchange_info, fmt_units
from arbengine.sim.wshub import Conn, serve_connection

if TYPE_CHECKING:
    from arbengine.sim.server import SimServer
    from arbengine.sim.trade_history import TradeHistory

SimHandler = Callable[[dict[str, str]], Any]
Weight = int | Callable[[Mapping[str, str]], int]

UNKNOWN_OUTCOME = {
    "code": -1007,
    "msg": "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
}
DROP_CONNECTION = object()
"""A handler's answer meaning: cut the connection, answer nothing (``order_drop``)."""
SERVER_ERROR = {"code": -1001, "msg": "Internal error; unable to process your request."}
# A web application firewall answers with its own HTML page, not Binance JSON.
FORBIDDEN_PAGE = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n'
    b"<HTML><HEAD><TITLE>ERROR: The request could not be satisfied</TITLE></HEAD>\n"
    b"<BODY><H1>403 ERROR</H1><H2>The request could not be satisfied.</H2>\n"
    b"Request blocked (simulated web application firewall).</BODY></HTML>\n"
)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@dataclass(frozen=True, slots=True)
class SimRoute:
    method: str
    path: str
    handler: SimHandler
    weight: Weight
    auth: str = "none"
    """none | key (API key only) | signed."""
    order: bool = False
    """Counts against the ORDERS limits."""


def _per_symbol(light: int, heavy: int) -> Callable[[Mapping[str, str]], int]:
    """Weight that depends on whether a ``symbol`` was given."""

    def weight(params: Mapping[str, str]) -> int:
        return light if params.get("symbol") else heavy

    return weight


def _klines_weight(params: Mapping[str, str]) -> int:
    raw = params.get("limit", "")
    return summaries.klines_weight(int(raw)) if raw.isdigit() else summaries.klines_weight(500)


def _depth_weight(params: Mapping[str, str]) -> int:
    raw = params.get("limit", "")
    return summaries.DEPTH_LIMITS.get(int(raw) if raw.isdigit() else 500, 10)


def _int(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit():
        raise SimApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def _limit(params: Mapping[str, str], default: int, maximum: int) -> int:
    limit = _int(params, "limit", default)
    assert limit is not None
    if not 1 <= limit <= maximum:
        raise SimApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    return limit


class RestApi:
    def __init__(self, sim: SimServer) -> None:
        self.sim = sim
        acc = sim.account
        self.routes: list[SimRoute] = [
            SimRoute("GET", "/fapi/v1/ping", lambda p: {}, 1),
            SimRoute("GET", "/fapi/v1/time", self.time, 1),
            SimRoute("GET", "/fapi/v1/exchangeInfo", self.exchange_info, 1),
            SimRoute("GET", "/fapi/v1/aggTrades", self.agg_trades, 20),
            SimRoute("GET", "/fapi/v1/premiumIndex", self.premium_index, _per_symbol(1, 10)),
            # Weight 0: counted against the funding request limit (500 / 5 min / IP) instead.
            SimRoute("GET", "/fapi/v1/fundingRate", self.funding_rate, 0),
            SimRoute("GET", "/fapi/v1/fundingInfo", self.funding_info, 0),
            SimRoute("GET", "/fapi/v1/openInterest", self.open_interest, 1),
            SimRoute("GET", "/fapi/v1/ticker/price", self.ticker_price, _per_symbol(1, 2)),
            SimRoute("GET", "/fapi/v2/ticker/price", self.ticker_price, _per_symbol(1, 2)),
            SimRoute("GET", "/fapi/v1/ticker/bookTicker", self.book_ticker, _per_symbol(2, 5)),
            SimRoute("GET", "/fapi/v1/ticker/24hr", self.ticker_24hr, _per_symbol(1, 40)),
            SimRoute("GET", "/fapi/v1/klines", self.klines, _klines_weight),
            SimRoute("GET", "/fapi/v1/depth", self.depth, _depth_weight),
            # Weight 0: counted against the /futures/data request limit (1000 / 5 min / IP).
            *[SimRoute("GET", f"/futures/data/{kind}", self._hist(kind), 0) for kind in HIST_KINDS],
            SimRoute("POST", "/fapi/v1/listenKey", self.listen_key_create, 1, "key"),
            SimRoute("PUT", "/fapi/v1/listenKey", self.listen_key_keepalive, 1, "key"),
            SimRoute("DELETE", "/fapi/v1/listenKey", self.listen_key_delete, 1, "key"),
            SimRoute("POST", "/fapi/v1/order", self.new_order, 0, "signed", order=True),
            SimRoute("GET", "/fapi/v1/order", acc.query_order, 1, "signed"),
            SimRoute("DELETE", "/fapi/v1/order", self.cancel_order, 1, "signed"),
            SimRoute("DELETE", "/fapi/v1/allOpenOrders", acc.cancel_all, 1, "signed"),
            SimRoute("GET", "/fapi/v1/openOrders", acc.open_orders, _per_symbol(1, 40), "signed"),
            SimRoute("GET", "/fapi/v1/allOrders", acc.all_orders, 5, "signed"),
            SimRoute("POST", "/fapi/v1/algoOrder", self.new_algo, 0, "signed", order=True),
            SimRoute("GET", "/fapi/v1/algoOrder", acc.query_algo, 1, "signed"),
            SimRoute("DELETE", "/fapi/v1/algoOrder", self.cancel_algo, 1, "signed"),
            SimRoute(
                "DELETE",
                "/fapi/v1/algoOpenOrders",
                self._events(acc.cancel_all_algos),
                1,
                "signed",
            ),
            SimRoute(
                "GET", "/fapi/v1/openAlgoOrders", acc.open_algos, _per_symbol(1, 40), "signed"
            ),
            SimRoute("GET", "/fapi/v1/allAlgoOrders", acc.all_algos, 5, "signed"),
            SimRoute(
                "GET", "/fapi/v3/positionRisk", lambda p: acc.position_risk(p, 3), 5, "signed"
            ),
            SimRoute(
                "GET", "/fapi/v2/positionRisk", lambda p: acc.position_risk(p, 2), 5, "signed"
            ),
            SimRoute("GET", "/fapi/v3/balance", lambda p: acc.balance(), 5, "signed"),
            SimRoute("GET", "/fapi/v2/balance", lambda p: acc.balance(), 5, "signed"),
            SimRoute("GET", "/fapi/v3/account", lambda p: acc.account(3), 5, "signed"),
            SimRoute("GET", "/fapi/v2/account", lambda p: acc.account(2), 5, "signed"),
            SimRoute("POST", "/fapi/v1/leverage", acc.set_leverage, 1, "signed"),
            SimRoute("POST", "/fapi/v1/marginType", acc.set_margin_type, 1, "signed"),
            SimRoute("GET", "/fapi/v1/positionSide/dual", acc.get_dual, 30, "signed"),
            SimRoute("POST", "/fapi/v1/positionSide/dual", acc.set_dual, 1, "signed"),
            SimRoute("GET", "/fapi/v1/multiAssetsMargin", acc.get_multi_assets, 30, "signed"),
            SimRoute("GET", "/fapi/v1/leverageBracket", self.leverage_bracket, 1, "signed"),
            SimRoute("GET", "/fapi/v1/userTrades", acc.user_trades, 5, "signed"),
            SimRoute("GET", "/fapi/v1/income", acc.income_history, 30, "signed"),
            SimRoute("GET", "/fapi/v1/commissionRate", acc.commission_rate, 20, "signed"),
        ]

    # ==== wiring ===============================================================================

    def add_routes(self, app: web.Application) -> None:
        by_path: dict[str, dict[str, SimRoute]] = {}
        for route in self.routes:
            by_path.setdefault(route.path, {})[route.method] = route
        for path, methods in by_path.items():
            app.router.add_route("*", path, self._dispatcher(path, methods))
        app.router.add_get("/coinbase/products/{product}/ticker", self.coinbase_ticker)
        for base in ("/market", ""):
            app.router.add_get(base + "/ws", self.market_ws)
            app.router.add_get(base + "/ws/{streams:.*}", self.market_ws)
            app.router.add_get(base + "/stream", self.market_ws)
        app.router.add_get("/public/ws/{streams:.*}", self.market_ws)
        app.router.add_get("/public/stream", self.market_ws)
        app.router.add_get("/private/ws", self.private_ws)
        app.router.add_get("/private/ws/{key}", self.private_ws)
        app.router.add_get("/private/stream", self.private_ws)
        app.router.add_route("*", "/{tail:(fapi|futures).*}", self.not_found)

    async def not_found(self, request: web.Request) -> web.Response:
        response = await self._guarded(
            request,
            1,
            lambda: json_response(
                {"code": -5000, "msg": f"Path {request.path}, Method {request.method} is invalid"},
                404,
            ),
        )
        self.sim.requests.record(request.path, response.status, self.sim.wall())
        return response

    def _dispatcher(
        self, path: str, methods: dict[str, SimRoute]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def dispatch(request: web.Request) -> web.Response:
            route = methods.get(request.method)
            if route is None:
                response = await self._guarded(
                    request,
                    1,
                    lambda: json_response(
                        {"code": -1000, "msg": f"Method {request.method} is not allowed on {path}"},
                        405,
                    ),
                )
            else:
                response = await self._handle(request, route)
            self.sim.requests.record(path, response.status, self.sim.wall())
            return response

        return dispatch

    async def _faults_gate(self, request: web.Request) -> web.Response | None:
        sim = self.sim
        faults = sim.faults
        symbol = request.query.get("symbol")
        # Checked again and again: a "clear" (or a shorter hang) answers held calls at once.
        while hang := faults.hanging("rest", time.monotonic(), request.path, symbol):  # noqa: ASYNC110
            await asyncio.sleep(min(hang, 0.05))
        if faults.rest_latency_ms:
            await asyncio.sleep(faults.rest_latency_ms / 1000.0)
        if (
            faults.http_5xx
            and request.path.startswith(faults.http_5xx_path)
            and faults.http_5xx_symbol in (None, request.query.get("symbol"))
        ):
            faults.http_5xx -= 1
            status = faults.http_5xx_status
            if status == 403:
                return web.Response(body=FORBIDDEN_PAGE, status=403, content_type="text/html")
            if 400 <= status < 500 and status != 408:
                return web.Response(
                    text=f"{status} {_reason(status)} (simulated)",
                    status=status,
                    content_type="text/plain",
                )
            return json_response(UNKNOWN_OUTCOME if status == 408 else SERVER_ERROR, status)
        if faults.rest_429:
            faults.rest_429 -= 1
            return self._limit_reply(429, faults.rest_429_retry, "Too many requests (simulated).")
        if faults.rest_418:
            faults.rest_418 -= 1
            return self._limit_reply(418, faults.rest_418_retry, "IP banned (simulated).")
        return None

    def _limit_reply(self, status: int, retry_after: int, msg: str) -> web.Response:
        used = self.sim.limiter.used_weight("127.0.0.1", self.sim.wall())
        return json_response(
            {"code": -1003, "msg": msg},
            status,
            {"Retry-After": str(retry_after), "X-MBX-USED-WEIGHT-1M": str(used)},
        )

    async def _guarded(
        self, request: web.Request, weight: int, produce: Callable[[], web.Response]
    ) -> web.Response:
        early = await self._faults_gate(request)
        if early is not None:
            return early
        verdict = self.sim.limiter.check(_ip(request), weight, self.sim.wall())
        headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used_weight)}
        if verdict.status != 200:
            headers["Retry-After"] = str(verdict.retry_after)
            return json_response(
                {"code": verdict.code, "msg": verdict.msg}, verdict.status, headers
            )
        response = produce()
        response.headers.update(headers)
        return response

    async def _handle(self, request: web.Request, route: SimRoute) -> web.Response:
        early = await self._faults_gate(request)
        if early is not None:
            return early
        sim = self.sim
        now_s = sim.wall()
        body = (await request.text()) if request.can_read_body else ""
        query = request.rel_url.raw_query_string
        try:
            params = parse_params(query, body)
            weight = route.weight(params) if callable(route.weight) else route.weight
        except SimApiError:
            params, weight = {}, 1
        ip = _ip(request)
        verdict = sim.limiter.check(ip, weight, now_s)
        group = group_of(route.path)
        if verdict.status == 200 and group is not None:
            verdict = sim.limiter.count(ip, group, now_s)
        headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used_weight)}
        if verdict.status != 200:
            headers["Retry-After"] = str(verdict.retry_after)
            return json_response(
                {"code": verdict.code, "msg": verdict.msg}, verdict.status, headers
            )
        try:
            if route.auth in ("key", "signed"):
                check_api_key(request.headers.get("X-MBX-APIKEY"), sim.config.api_key)
            if route.auth == "signed":
                params = verify_signed(
                    query,
                    body,
                    sim.config.api_secret,
                    sim.server_time_ms(),
                    sim.config.check_timestamps,
                )
            else:
                params = parse_params(query, body)
            if route.order:
                limited, c10, c60 = sim.limiter.order(now_s)
                headers["X-MBX-ORDER-COUNT-10S"] = str(c10)
                headers["X-MBX-ORDER-COUNT-1M"] = str(c60)
                if limited is not None:
                    headers["Retry-After"] = str(limited.retry_after)
                    return json_response({"code": limited.code, "msg": limited.msg}, 429, headers)
            result = route.handler(params)
            if result is DROP_CONNECTION:
                if request.transport is not None:
                    request.transport.abort()
                # Never delivered (the transport is gone); 499 is what the call counts as.
                return web.Response(status=499)
            if isinstance(result, web.Response):
                result.headers.update(headers)
                return result
            return json_response(result, 200, headers)
        except SimApiError as err:
            return json_response(err.body(), err.status, headers)

    def _flush_events(self) -> None:
        events = self.sim.account.drain()
        if events:
            self.sim.hub.publish_user(events)
            self.sim.hub.flush()

    def _events(self, fn: SimHandler) -> SimHandler:
        def run(params: dict[str, str]) -> Any:
            try:
                return fn(params)
            finally:
                self._flush_events()

        return run

    # ==== market data ==========================================================================

    def _symbol(self, params: Mapping[str, str], required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise mandatory("symbol")
            return None
        if symbol not in self.sim.market.books or symbol in self.sim.delisted:
            raise SimApiError(-1121, "Invalid symbol.")
        return symbol

    def _listed_books(self) -> list[Any]:
        return [b for s, b in self.sim.market.books.items() if s not in self.sim.delisted]

    def time(self, params: dict[str, str]) -> dict[str, Any]:
        return {"serverTime": self.sim.server_time_ms()}

    def exchange_info(self, params: dict[str, str]) -> dict[str, Any]:
        limits = self.sim.config.limits
        rate_limits = [dict(r) for r in RATE_LIMITS]
        rate_limits[0]["limit"] = limits.weight_per_minute
        rate_limits[1]["limit"] = limits.orders_per_minute
        rate_limits[2]["limit"] = limits.orders_per_10s
        listed = [s for s in self.sim.market.specs.values() if s.symbol not in self.sim.delisted]
        return exchange_info(listed, self.sim.server_time_ms(), rate_limits)

    def agg_trades(self, params: dict[str, str]) -> list[dict[str, object]]:
        symbol = self._symbol(params)
        assert symbol is not None
        limit = _limit(params, 500, 1000)
        from_id = _int(params, "fromId")
        start = _int(params, "startTime")
        end = _int(params, "endTime")
        tape = self.sim.market.books[symbol].tape
        if from_id is not None and (start is not None or end is not None):
            raise SimApiError(-1128, "Combination of optional parameters invalid.")
        if start is not None or end is not None:
            if start is None:
                assert end is not None
                start = end - HOUR_MS
            elif end is None:
                end = start + HOUR_MS
            if start > end:
                raise SimApiError(-1023, "Start time is greater than end time.")
            if end - start > HOUR_MS:
                raise SimApiError(-1127, "More than 1 hours between startTime and endTime.")
        missing = self.sim.faults.missing_from_rest.get(symbol)
        if missing:
            lo, hi = tape.select(from_id, start, end, tape.released)
            newest = from_id is None and start is None
            return rows_outside(tape, lo, hi, limit, missing, newest=newest)
        lo, hi = tape.select(from_id, start, end, limit)
        return tape.rows(lo, hi)

    def premium_index(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params, required=False)
        market = self.sim.market
        now = market.now_ms
        if symbol is not None:
            return market.books[symbol].premium_index(now)
        return [book.premium_index(now) for book in self._listed_books()]

    def funding_rate(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        limit = _limit(params, 100, 1000)
        start, end = _int(params, "startTime"), _int(params, "endTime")
        books = [self.sim.market.books[symbol]] if symbol else self._listed_books()
        rows: list[dict[str, Any]] = []
        for book in books:
            rows += book.funding_rows(start, end, limit)
        rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
        return rows[:limit] if start is not None else rows[-limit:]

    def funding_info(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "symbol": spec.symbol,
                "adjustedFundingRateCap": "0.03000000",
                "adjustedFundingRateFloor": "-0.03000000",
                "fundingIntervalHours": spec.funding_interval_hours,
                "disclaimer": False,
            }
            for spec in self.sim.market.specs.values()
            if spec.funding_interval_hours != 8 and spec.symbol not in self.sim.delisted
        ]

    def open_interest(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        assert symbol is not None
        book = self.sim.market.books[symbol]
        oi, t = book.open_interest()
        units = round(oi * book.spec.qty_scale)
        return {
            "openInterest": fmt_units(units, book.spec.qty_precision),
            "symbol": symbol,
            "time": t,
        }

    def _one_or_all(self, params: dict[str, str], one: Callable[[str], dict[str, Any]]) -> Any:
        """A ticker's answer: one object for ``symbol``, else a list over every listed symbol."""
        symbol = self._symbol(params, required=False)
        return one(symbol) if symbol else [one(b.spec.symbol) for b in self._listed_books()]

    def ticker_price(self, params: dict[str, str]) -> Any:
        market = self.sim.market

        def one(sym: str) -> dict[str, Any]:
            book = market.books[sym]
            last = book.tape.last_trade()
            price = last[1] if last else book.quote()[0]
            return {
                "symbol": sym,
                "price": fmt_units(price, book.spec.price_precision),
                "time": market.now_ms,
            }

        return self._one_or_all(params, one)

    def book_ticker(self, params: dict[str, str]) -> Any:
        market = self.sim.market

        def one(sym: str) -> dict[str, Any]:
            book = market.books[sym]
            bid, ask = book.quote()
            pp, qp = book.spec.price_precision, book.spec.qty_precision
            depth = fmt_units(summaries.top_size(book.spec), qp)
            return {
                "symbol": sym,
                "bidPrice": fmt_units(bid, pp),
                "bidQty": depth,
                "askPrice": fmt_units(ask, pp),
                "askQty": depth,
                "time": market.now_ms,
                "lastUpdateId": market.now_ms,
            }

        return self._one_or_all(params, one)

    def ticker_24hr(self, params: dict[str, str]) -> Any:
        market = self.sim.market

        def one(sym: str) -> dict[str, Any]:
            book = market.books[sym]
            return summaries.ticker_24hr(book.tape, book.spec, book.quote()[0], market.now_ms)

        return self._one_or_all(params, one)

    def klines(self, params: dict[str, str]) -> list[list[Any]]:
        symbol = self._symbol(params)
        assert symbol is not None
        interval = params.get("interval")
        if not interval:
            raise mandatory("interval")
        if interval not in summaries.INTERVALS:
            raise SimApiError(-1120, "Invalid interval.")
        limit = _limit(params, 500, 1500)
        start, end = _int(params, "startTime"), _int(params, "endTime")
        if start is not None and end is not None and start > end:
            raise SimApiError(-1023, "Start time is greater than end time.")
        book = self.sim.market.books[symbol]
        return summaries.klines(
            book.tape, book.spec, interval, start, end, limit, self.sim.market.now_ms
        )

    def depth(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        assert symbol is not None
        limit = _int(params, "limit", 500)
        if limit not in summaries.DEPTH_LIMITS:
            raise SimApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        book = self.sim.market.books[symbol]
        bid, ask = book.quote()
        return summaries.depth(book.spec, bid, ask, limit, self.sim.market.now_ms)

    def leverage_bracket(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params, required=False)
        specs = self.sim.market.specs
        if symbol is not None:
            return brackets(specs[symbol])
        return [brackets(specs[b.spec.symbol]) for b in self._listed_books()]

    def _hist(self, kind: str) -> SimHandler:
        def handler(params: dict[str, str]) -> list[dict[str, Any]]:
            symbol = self._symbol(params)
            assert symbol is not None
            period = params.get("period")
            if not period:
                raise mandatory("period")
            if period not in HIST_PERIODS:
                raise SimApiError(-1130, "Data sent for parameter 'period' is not valid.")
            limit = _limit(params, 30, 500)
            market = self.sim.market
            return market.books[symbol].hist_rows(
                kind,
                period,
                _int(params, "startTime"),
                _int(params, "endTime"),
                limit,
                market.now_ms,
            )

        return handler

    async def coinbase_ticker(self, request: web.Request) -> web.Response:
        early = await self._faults_gate(request)
        if early is not None:
            return early
        ticker = self.sim.market.coinbase_ticker(request.match_info["product"])
        if ticker is None:
            return json_response({"message": "NotFound"}, 404)
        return json_response(ticker)

    # ==== trading ==============================================================================

    def new_order(self, params: dict[str, str]) -> Any:
        return self._order_with_faults(self.sim.account.place_order, params, "order")

    def new_algo(self, params: dict[str, str]) -> Any:
        return self._order_with_faults(self.sim.account.place_algo, params, "algo")

    def cancel_order(self, params: dict[str, str]) -> Any:
        return self._order_with_faults(self.sim.account.cancel_order, params, "cancel")

    def cancel_algo(self, params: dict[str, str]) -> Any:
        return self._order_with_faults(self.sim.account.cancel_algo, params, "cancel")

    def _order_with_faults(self, place: SimHandler, params: dict[str, str], call: OrderCall) -> Any:
        """``place`` (a new order, algo order, or a cancel) under the order faults set
        ``on`` calls of this kind."""
        faults = self.sim.faults
        if faults.order_reject and hits(faults.order_reject_on, call):
            faults.order_reject -= 1
            code = faults.order_reject_code
            self.sim.log.info("sim.fault.order_reject", code=code, call=call)
            raise SimApiError(code, self._rejection_message(code, params))
        if faults.order_drop and hits(faults.order_drop_on, call):
            faults.order_drop -= 1
            if faults.order_drop_execute:
                try:
                    place(params)
                except SimApiError:
                    pass
                finally:
                    self._flush_events()
            self.sim.log.info("sim.fault.order_drop", executed=faults.order_drop_execute, call=call)
            return DROP_CONNECTION
        if faults.fill_delay and hits(faults.fill_delay_on, call):
            faults.fill_delay -= 1
            try:
                return place(params)
            finally:
                self._publish_later(faults.fill_delay_ms)
        if faults.order_5xx and hits(faults.order_5xx_on, call):
            faults.order_5xx -= 1
            if faults.order_5xx_execute:
                try:
                    place(params)
                except SimApiError:
                    pass
                finally:
                    self._flush_events()
            self.sim.log.info("sim.fault.order_5xx", executed=faults.order_5xx_execute, call=call)
            return json_response(UNKNOWN_OUTCOME, faults.order_5xx_status)
        try:
            return place(params)
        finally:
            self._flush_events()

    def _rejection_message(self, code: int, params: Mapping[str, str]) -> str:
        spec = self.sim.market.specs.get(params.get("symbol", ""))
        min_notional = spec.min_notional if spec is not None else 5
        return ORDER_REJECTIONS[code].format(min_notional=min_notional)

    def _publish_later(self, delay_ms: int) -> None:
        """Hold the user-stream events the call produced for ``delay_ms`` (a slow fill report)."""
        events = self.sim.account.drain()
        if not events:
            return
        self.sim.log.info("sim.fault.fill_delay", delay_ms=delay_ms, events=len(events))

        def publish() -> None:
            self.sim.hub.publish_user(events)
            self.sim.hub.flush()

        asyncio.get_running_loop().call_later(delay_ms / 1000.0, publish)

    def listen_key_create(self, params: dict[str, str]) -> dict[str, Any]:
        return {"listenKey": self.sim.listen_keys.create(time.monotonic())}

    def listen_key_keepalive(self, params: dict[str, str]) -> dict[str, Any]:
        key = self.sim.listen_keys.keepalive(time.monotonic())
        if key is None:
            raise SimApiError(-1125, "This listenKey does not exist.")
        return {"listenKey": key}

    def listen_key_delete(self, params: dict[str, str]) -> dict[str, Any]:
        self.sim.listen_keys.delete()
        return {}

    # ==== websockets ===========================================================================

    async def market_ws(self, request: web.Request) -> web.StreamResponse:
        combined = request.path.endswith("/stream")
        if combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        else:
            names = [n for n in request.match_info.get("streams", "").split("/") if n]
        if len(names) > self.sim.config.ws.max_streams:
            return json_response({"code": -1, "msg": "too many streams"}, 400)
        conn = Conn(self.sim.hub, request, "market", combined)
        self.sim.hub.subscribe(conn, names)
        if conn.listen_keys:
            conn.kind = "private"
        unknown = [s for s in conn.streams if not self._known_stream(s)]
        if unknown:
            self.sim.log.warning("sim.ws.unknown_stream", streams=unknown[:5])
        return await serve_connection(self.sim.hub, conn)

    def _known_stream(self, name: str) -> bool:
        if name.startswith("!"):
            return True
        sym, _, _ = name.partition("@")
        listed = sym.upper() in self.sim.market.books and sym.upper() not in self.sim.delisted
        return listed and sym == sym.lower()

    async def private_ws(self, request: web.Request) -> web.StreamResponse:
        combined = request.path.endswith("/stream")
        keys = [k for k in request.query.get("listenKey", "").split("/") if k]
        if request.match_info.get("key"):
            keys.append(request.match_info["key"])
        if combined:
            keys += [k for k in request.query.get("streams", "").split("/") if k]
        valid = [k for k in keys if self.sim.listen_keys.valid(k, time.monotonic())]
        if not valid:
            return json_response({"code": -1125, "msg": "This listenKey does not exist."}, 400)
        conn = Conn(self.sim.hub, request, "private", combined)
        events = [e for e in request.query.get("events", "").split("/") if e]
        conn.events = set(events) if events else None
        self.sim.hub.subscribe(conn, valid)
        return await serve_connection(self.sim.hub, conn)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _ip(request: web.Request) -> str:
    return request.remote or "127.0.0.1"


def rows_outside(
    tape: TradeHistory,
    lo: int,
    hi: int,
    limit: int,
    missing: list[tuple[int, int]],
    *,
    newest: bool,
) -> list[dict[str, object]]:
    """The first (or, with ``newest``, the last) ``limit`` REST rows of ``[lo, hi)`` whose ids
    are in none of the ``missing`` ranges: trades answered as if they never existed."""

    def present(i: int, j: int) -> list[dict[str, object]]:
        ids = tape.cols(i, j).a.tolist()
        rows = tape.rows(i, j)
        return [
            r for a, r in zip(ids, rows, strict=True) if not any(x <= a <= y for x, y in missing)
        ]

    out: list[dict[str, object]] = []
    if newest:
        j = hi
        while j > lo and len(out) < limit:
            i = max(lo, j - limit)
            out = present(i, j) + out
            j = i
        return out[-limit:]
    i = lo
    while i < hi and len(out) < limit:
        j = min(hi, i + limit)
        out += present(i, j)
        i = j
    return out[:limit]
