"""The route table: each route's handler, inputs, output and possible errors, in one place.

``build_app`` registers these and ``openapi.build_document`` describes them, so
a route cannot exist without being documented, nor be documented differently
from how it behaves (the query and body types that validate a request are the
ones the document's schemas come from).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from arbengine.api import (
    auth_routes,
    control_routes,
    data_routes,
    live_routes,
    risk_routes,
    signal_routes,
    system_routes,
)
from arbengine.api import schemas as s
from arbengine.api.services import Call
from arbengine.api.site import Site, file_handler

CallHandler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST", "PUT"]
    path: str
    handler: CallHandler
    summary: str
    tag: str
    response: Any
    """The 2xx body's type (a Struct), ``None`` for no body, or a content type string."""
    auth: bool = False
    admin: bool = False
    """Admins only (implies ``auth``): anyone else is refused with 403 ``forbidden``
    before the query or body is looked at."""
    query: type[s._Query] = s.NoQuery
    body: type[s._Input] | None = None
    status: int = 200
    status_of: Callable[[Any], int] | None = None
    """Status chosen by the result (health: 200 or 503)."""
    errors: tuple[int, ...] = ()
    description: str = ""
    validate_query: bool = True
    """False for the page's files, whose URLs browsers may decorate."""

    @property
    def authenticated(self) -> bool:
        return self.auth or self.admin

    @property
    def operation_id(self) -> str:
        if self.path == "/":
            return "page"
        name = self.path.strip("/").removeprefix("api/")
        for ch in "/.-{}":
            name = name.replace(ch, "_")
        # The dashboard's URLs share names with API paths (/admin, /api/admin/...).
        prefix = "page" if not self.path.startswith("/api/") else self.method.lower()
        return f"{prefix}_{name}"


AUTH_ERRORS = (401, 403)
LIVE_ERRORS = (400, *AUTH_ERRORS, 503)
BODY_ERRORS = (400, 413, 415)


def api_routes() -> list[Route]:
    return [
        # -- public -----------------------------------------------------------------
        Route(
            "GET",
            "/api/health",
            system_routes.health,
            "Liveness, database reachability and what is degraded",
            "system",
            s.Health,
            status_of=system_routes.health_status,
            errors=(400, 503),
            description=(
                "200 `ok`, or 200 `degraded` with `reasons` while the daemon serves but "
                "something is wrong (the exchange unreachable, a stream down, a symbol "
                "skipped, trade ids going backwards, a component restarting); 503 "
                "`unavailable` with the database error only when the database does not answer."
            ),
        ),
        Route(
            "GET",
            "/api/rates",
            data_routes.rates,
            "Latest premiumIndex per tracked symbol, with annualised funding",
            "funding",
            s.Rates,
            errors=(400, 503),
            description=(
                "Mark and index price, current funding rate, its annualised value "
                "(rate × 24 / funding interval hours × 365, interval from the latest "
                "funding_interval_hours indicator, default 8) and the next funding time. "
                "Cached for 3 s."
            ),
        ),
        Route(
            "GET",
            "/api/openapi.json",
            system_routes.openapi_document,
            "This document",
            "system",
            "application/json",
            errors=(400,),
        ),
        Route(
            "GET",
            "/metrics",
            system_routes.metrics,
            "Prometheus metrics",
            "system",
            "text/plain",
            validate_query=False,
        ),
        # -- auth --------------------------------------------------------------------
        Route(
            "POST",
            "/api/register",
            auth_routes.register,
            "Create an account with a single-use invite code",
            "auth",
            s.Tokens,
            body=s.RegisterBody,
            status=201,
            errors=(*BODY_ERRORS, 403, 409, 429, 503),
            description=(
                "Each invite code works once (and may expire): an unknown, used or expired "
                "code is 403 invalid_invite, a taken username 409 username_taken (the code "
                "stays usable). The code is consumed atomically: of concurrent registrations "
                "with one code, one succeeds. Limited per client address "
                "(register_attempts_per_ip per login_window; 429 with Retry-After)."
            ),
        ),
        Route(
            "POST",
            "/api/login",
            auth_routes.login,
            "Exchange a username and password for an access and a refresh token",
            "auth",
            s.Tokens,
            body=s.LoginBody,
            errors=(*BODY_ERRORS, 401, 403, 429, 503),
            description=(
                "Failed attempts are limited per client address and per account from one "
                "address (429 with Retry-After); an account that many addresses fail on is "
                "answered more slowly, never locked."
            ),
        ),
        Route(
            "POST",
            "/api/refresh",
            auth_routes.refresh,
            "Rotate a refresh token: spend it, get a new pair",
            "auth",
            s.Tokens,
            body=s.RefreshBody,
            errors=(*BODY_ERRORS, 401, 403, 503),
            description=(
                "Each refresh token works once. Presenting a spent one revokes every token "
                "of its login (401 refresh_reused)."
            ),
        ),
        Route(
            "POST",
            "/api/logout",
            auth_routes.logout,
            "Revoke the refresh token's login",
            "auth",
            None,
            body=s.RefreshBody,
            status=204,
            errors=(*BODY_ERRORS, 401, 503),
        ),
        Route(
            "GET",
            "/api/me",
            auth_routes.me,
            "The authenticated user",
            "auth",
            s.User,
            auth=True,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        # -- authenticated reads ------------------------------------------------------
        Route(
            "GET",
            "/api/server",
            system_routes.server,
            "Version, uptime, task states, channel depths, database size, symbols, degradations",
            "system",
            s.ServerInfo,
            auth=True,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        Route(
            "GET",
            "/api/snapshots",
            data_routes.snapshots,
            "Stored premiumIndex samples of one symbol",
            "funding",
            s.Snapshots,
            auth=True,
            query=s.SnapshotsQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description="Oldest first.",
        ),
        Route(
            "GET",
            "/api/kline",
            data_routes.kline,
            "OHLC bars of the funding rate or the mark price",
            "funding",
            s.Kline,
            auth=True,
            query=s.KlineQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description="Built from rate_snapshots.",
        ),
        Route(
            "GET",
            "/api/stats",
            data_routes.stats,
            "7-day funding mean, min, max and annualised mean per symbol",
            "funding",
            s.Stats,
            auth=True,
            errors=(400, *AUTH_ERRORS, 503),
            description="From settled funding rates. Cached for 60 s.",
        ),
        Route(
            "GET",
            "/api/stats/ytd",
            data_routes.stats_ytd,
            "Year-to-date funding per symbol, annualised",
            "funding",
            s.Ytd,
            auth=True,
            errors=(400, *AUTH_ERRORS, 503),
            description="From settled funding rates since 1 January UTC. Cached for 1 h.",
        ),
        Route(
            "GET",
            "/api/history",
            data_routes.history,
            "Settled funding rates of the last 7 days",
            "funding",
            s.History,
            auth=True,
            query=s.HistoryQuery,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        Route(
            "GET",
            "/api/signals/history",
            data_routes.signals_history,
            "Fired signals with their feature values and score breakdown",
            "signals",
            s.SignalHistory,
            auth=True,
            query=s.SignalsHistoryQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description="Newest first, by tick.",
        ),
        Route(
            "GET",
            "/api/signals/latest",
            data_routes.signals_latest,
            "The latest evaluation per strategy and symbol",
            "signals",
            s.SignalLatest,
            auth=True,
            query=s.SignalsLatestQuery,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        Route(
            "GET",
            "/api/signals/evaluations",
            signal_routes.evaluations,
            "One strategy's evaluations of one symbol over time, without their breakdown",
            "signals",
            s.Evaluations,
            auth=True,
            query=s.SignalsEvaluationsQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description=(
                "Every evaluated tick in the range, newest first: direction, score, coverage, "
                "whether it fired and why not. The breakdown of one tick is "
                "/api/signals/evaluation."
            ),
        ),
        Route(
            "GET",
            "/api/signals/evaluation",
            signal_routes.evaluation,
            "One evaluation with its features, factors, gates and strategy hash",
            "signals",
            s.EvaluationAt,
            auth=True,
            query=s.SignalsEvaluationQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description=(
                "The evaluation at tick `at`, or else the latest before it; without `at` the "
                "latest. `evaluation` is null when there is none."
            ),
        ),
        Route(
            "GET",
            "/api/strategies",
            signal_routes.strategies,
            "The strategies the engine runs now, with defaults filled in and their hash",
            "signals",
            s.Strategies,
            auth=True,
            errors=(400, *AUTH_ERRORS, 503),
            description=(
                "After any reload; disabled ones included (enabled false). Empty when the "
                "engine is off. Evaluations stored under another hash were made by an "
                "earlier version of the file."
            ),
        ),
        Route(
            "GET",
            "/api/trades/meta",
            data_routes.trades_meta,
            "Trade tape extent, gaps, holes and completeness per symbol",
            "trades",
            s.TradesMeta,
            auth=True,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        Route(
            "GET",
            "/api/trades/summary",
            data_routes.trades_summary,
            "OHLCV bars from the stored trade tape",
            "trades",
            s.TradesSummary,
            auth=True,
            query=s.TradesSummaryQuery,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        Route(
            "GET",
            "/api/liquidations",
            data_routes.liquidations,
            "Liquidations per bar and side (a lower bound)",
            "liquidations",
            s.Liquidations,
            auth=True,
            query=s.LiquidationsQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description=s.LIQUIDATION_NOTE,
        ),
        Route(
            "GET",
            "/api/paper/trades",
            data_routes.paper_trades,
            "Paper trades, newest entry first",
            "paper",
            s.PaperTrades,
            auth=True,
            query=s.PaperTradesQuery,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        Route(
            "GET",
            "/api/paper/summary",
            data_routes.paper_summary,
            "Per strategy: counts, win rate, total R and the equity curve",
            "paper",
            s.PaperSummary,
            auth=True,
            query=s.PaperSummaryQuery,
            errors=(400, *AUTH_ERRORS, 503),
        ),
        # -- live trading ------------------------------------------------------------------
        Route(
            "GET",
            "/api/live/trades",
            live_routes.trades,
            "Live trades with their paper twin, newest signal first",
            "live",
            s.LiveTrades,
            auth=True,
            query=s.LiveTradesQuery,
            errors=LIVE_ERRORS,
            description=(
                "By signal tick. Each trade's fills, fees, funding, realised R and USD, the "
                "differences from the paper plan the exchange forced, and the comparison "
                "with its paper twin (entry slippage in R and bps, R difference)."
            ),
        ),
        Route(
            "GET",
            "/api/live/positions",
            live_routes.positions,
            "Open live trades with the orders protecting them",
            "live",
            s.LivePositions,
            auth=True,
            query=s.LivePositionsQuery,
            errors=LIVE_ERRORS,
            description=(
                "Pending and open trades, oldest signal first, each with its orders still "
                "open on the exchange (stop-loss, take-profits) and whether a stop covers it."
            ),
        ),
        Route(
            "GET",
            "/api/live/orders",
            live_routes.orders,
            "Orders and algo orders sent, with their status history",
            "live",
            s.LiveOrders,
            auth=True,
            query=s.LiveOrdersQuery,
            errors=LIVE_ERRORS,
            description="By the time each was first stored, newest first.",
        ),
        Route(
            "GET",
            "/api/live/events",
            live_routes.events,
            "What the executor, the reconciler and admins did, and why",
            "live",
            s.LiveEvents,
            auth=True,
            query=s.LiveEventsQuery,
            errors=LIVE_ERRORS,
            description="Newest first.",
        ),
        Route(
            "GET",
            "/api/live/summary",
            live_routes.summary,
            "Per strategy: counts, win rate, R and USD, fees, funding, slippage vs paper",
            "live",
            s.LiveSummary,
            auth=True,
            query=s.LiveSummaryQuery,
            errors=LIVE_ERRORS,
            description="Over the trades whose signal tick is in the range.",
        ),
        Route(
            "GET",
            "/api/live/config",
            live_routes.get_config,
            "The run-time live configuration in force, and its changes (admins only)",
            "live",
            s.LiveConfigView,
            admin=True,
            errors=LIVE_ERRORS,
            description=(
                "Admins only (403 forbidden for others). Until an admin changes it, the "
                "settings file's [live] values are in force (source settings)."
            ),
        ),
        Route(
            "PUT",
            "/api/live/config",
            live_routes.put_config,
            "Replace the run-time live configuration (admins only)",
            "live",
            s.LiveConfigView,
            admin=True,
            body=s.LiveConfigBody,
            errors=(*BODY_ERRORS, *AUTH_ERRORS, 503),
            description=(
                "Admins only (403 forbidden for others). Strategies must be loaded ones "
                "(400 unknown_strategy). Stored with who and when, recorded as a "
                "live.config_changed event, and applied by the executor from its next tick."
            ),
        ),
        Route(
            "POST",
            "/api/live/flatten",
            control_routes.flatten,
            "Close live positions at market: one trade, one symbol, or all (admins only)",
            "live",
            s.LiveControlReply,
            admin=True,
            body=s.LiveFlattenBody,
            status_of=control_routes.flatten_status,
            errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 503),
            description=(
                'Admins only (403 forbidden for others). Body: {"trade_id"}, {"symbol"}, '
                'or {} / {"all": true} (every position; entries are paused too). Trades '
                "are closed by the executor with reduce-only MARKET orders (exit reason "
                "manual_flatten), a position no trade drives by a reduce-only MARKET order "
                "of its size. 202 requested with the state now; the positions are then read "
                "back until zero and the command completed (live_commands, a control.flatten "
                "event). 200 done when there is nothing to close. 404 not_found: no open "
                "trade of that id in this daemon's executor; 409 live_off: live trading does "
                "not run here; 503 unavailable: the exchange or the database did not answer."
            ),
        ),
        Route(
            "POST",
            "/api/live/pause",
            control_routes.pause,
            "Pause new live entries now (admins only)",
            "live",
            s.LiveControlReply,
            admin=True,
            errors=(*AUTH_ERRORS, 409, 503),
            description=(
                "Admins only. Writes a live_config row with paused true (the other values "
                "kept), in force at once; open trades are still driven and protected. "
                "Pausing a paused daemon answers done, already paused."
            ),
        ),
        Route(
            "POST",
            "/api/live/resume",
            control_routes.resume,
            "Allow new live entries again (admins only)",
            "live",
            s.LiveControlReply,
            admin=True,
            errors=(*AUTH_ERRORS, 409, 503),
            description=(
                "Admins only. Writes a live_config row with paused false, in force at once. "
                "The risk guard's own state (REDUCING, HALTED) is not changed by it."
            ),
        ),
        Route(
            "POST",
            "/api/live/cancel-all",
            control_routes.cancel_all,
            "Cancel every open order that protects no position, and pause (admins only)",
            "live",
            s.LiveControlReply,
            admin=True,
            errors=(*AUTH_ERRORS, 409, 503),
            description=(
                "Admins only. Cancels every open order and algo order of the account except "
                "those protecting an open position (the orders of a trade the executor "
                "drives, and stops closing a held position), and pauses entries: a position "
                "is never left without its stop (to be out of it, flatten)."
            ),
        ),
        Route(
            "GET",
            "/api/risk",
            risk_routes.risk,
            "The risk guard: trading state, limits, current values, last transitions",
            "live",
            risk_routes.RiskReply,
            auth=True,
            errors=(*AUTH_ERRORS, 409),
            description=(
                "ACTIVE (entries allowed), REDUCING (exits only) or HALTED (the circuit "
                "breaker), with the rule, the reason and the values that put it there, the "
                "admin's pause, the [risk] limits, the values of the monitor's last round "
                "and its last transitions. 409 live_off: live trading does not run here."
            ),
        ),
    ]


def page_routes(site: Site) -> list[Route]:
    """The dashboard: one route per page (the shell naming its module), then its assets."""
    routes = [
        Route(
            "GET",
            url,
            file_handler(file),
            "The dashboard's home page" if url == "/" else f"The dashboard's {url[1:]} page",
            "page",
            file.content_type,
            validate_query=False,
        )
        for url, file in sorted(site.pages.items())
    ]
    routes += [
        Route(
            "GET",
            url,
            file_handler(file),
            f"The dashboard's {url.removeprefix('/static/')}",
            "page",
            file.content_type,
            validate_query=False,
        )
        for url, file in sorted(site.assets.items())
    ]
    return routes
