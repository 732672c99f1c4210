"""The route table: each route's handler, inputs, output and possible errors, in one place.

``build_app`` registers these and ``openapi.build_document`` describes them, so
a route cannot exist without being documented, nor be documented differently
from how it behaves (the query and body types that validate a request are the
ones the document's schemas come from).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from arbengine.api import (
    admin_routes,
    auth_routes,
    control_routes,
    data_routes,
    live_routes,
    risk_routes,
    signal_routes,
    system_routes,
    tape_routes,
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
    path_params: type[s._PathParams] | None = None
    """The parameters in ``path`` (``{id}``): each one a field, validated like a query's."""
    body: type[s._Input] | None = None
    status: int = 200
    status_of: Callable[[Any], int] | None = None
    """Status chosen by the result (health: 200 or 503)."""
    errors: tuple[int, ...] = ()
    description: str = ""
    validate_query: bool = True
    """False for the page's files, whose URLs browsers may decorate."""

    def __post_init__(self) -> None:
        named = set(re.findall(r"\{([^{}]+)\}", self.path))
        declared = set(self.path_params.__struct_fields__) if self.path_params else set()
        assert named == declared, f"{self.path}: path parameters {named} but {declared} declared"

    @property
    def authenticated(self) -> bool:
        return self.auth or self.admin

    @property
    def operation_id(self) -> str:
        if self.path == "/":
            return "page"
        name = self.path.strip("/").removeprefix("api/").replace("{", "").replace("}", "")
        for ch in "/.-":
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
                "Each invite code works once (and may expire, or be revoked): an unknown, "
                "used, revoked or expired code is 403 invalid_invite, a taken username 409 "
                "username_taken (the code "
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
            "/api/server/database",
            system_routes.server_database,
            "Database size, every table's size and row estimate, and the partitions",
            "system",
            s.DatabaseInfo,
            auth=True,
            errors=(400, *AUTH_ERRORS, 503),
            description=(
                "From the catalogue, never by counting rows: sizes on disk with indexes, "
                "the planner's row estimates (as of the last ANALYZE), and per partitioned "
                "table (agg_trades, by month) its partitions oldest first with their ranges "
                "in epoch ms."
            ),
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
            "/api/trades/days",
            tape_routes.days,
            "Tape completeness per UTC day of one symbol",
            "trades",
            s.TradesDays,
            auth=True,
            query=s.TradesDaysQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description=(
                "The days overlapping the range that the continuity check has counted, "
                "newest first: first and last trade id, trades stored, ids missing between "
                "them, completeness (stored / (last − first + 1)) and when it was counted."
            ),
        ),
        Route(
            "GET",
            "/api/trades/gaps",
            tape_routes.gaps,
            "Gaps the tape met in one symbol: repaired, holes, under way",
            "trades",
            s.TradesGaps,
            auth=True,
            query=s.TradesGapsQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description=(
                "Each gap of trade ids with its outcome (repaired, hole, partly_repaired, "
                "open), when it was seen and settled, and where it lies in time: between "
                "the stored trades around it (prev_ts, next_ts). Gaps overlapping the range, "
                "newest ids first."
            ),
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
            "/api/live/status",
            risk_routes.live_status,
            "Whether live trading runs in this daemon, and where",
            "live",
            risk_routes.LiveStatus,
            auth=True,
            errors=AUTH_ERRORS,
            description=(
                "`enabled`: live trading, its risk guard and the emergency controls run here "
                "(otherwise GET /api/risk and the control routes answer 409 live_off); "
                "`environment`: testnet or production, null when off."
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
        # -- admin: users, invite codes, the audit ---------------------------------------
        Route(
            "GET",
            "/api/admin/users",
            admin_routes.users,
            "Every user: role, ban, last login, active sessions (admins only)",
            "admin",
            s.AdminUsers,
            admin=True,
            query=s.AdminUsersQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description="By id, at most limit rows; next_after pages on.",
        ),
        Route(
            "POST",
            "/api/admin/users/{id}/ban",
            admin_routes.ban,
            "Ban a user at once, revoking their sessions (admins only)",
            "admin",
            s.AdminUserReply,
            admin=True,
            path_params=s.UserPath,
            errors=(400, *AUTH_ERRORS, 404, 409, 503),
            description=(
                "The user's access tokens are refused from their next request (403 banned) "
                "and every refresh token is revoked. Banning a banned user answers 200 "
                "unchanged. 409 self_ban: an admin cannot ban themself. Audited."
            ),
        ),
        Route(
            "POST",
            "/api/admin/users/{id}/unban",
            admin_routes.unban,
            "Lift a ban (admins only)",
            "admin",
            s.AdminUserReply,
            admin=True,
            path_params=s.UserPath,
            errors=(400, *AUTH_ERRORS, 404, 503),
            description=(
                "Sessions revoked by the ban stay revoked: the user logs in again. Unbanning "
                "a user who is not banned answers 200 unchanged. Audited."
            ),
        ),
        Route(
            "POST",
            "/api/admin/users/{id}/role",
            admin_routes.set_role,
            "Make a user an admin, or a plain user (admins only)",
            "admin",
            s.AdminUserReply,
            admin=True,
            path_params=s.UserPath,
            body=s.RoleBody,
            errors=(*BODY_ERRORS, *AUTH_ERRORS, 404, 409, 503),
            description=(
                "In force from the user's next request. The role they have already answers "
                "200 unchanged. 409 self_demotion: an admin cannot take their own admin "
                "role, so a deployment always keeps an admin. Audited."
            ),
        ),
        Route(
            "GET",
            "/api/admin/invites",
            admin_routes.invites,
            "Invite codes, newest first, with who made and used them (admins only)",
            "admin",
            s.AdminInvites,
            admin=True,
            query=s.AdminInvitesQuery,
            errors=(400, *AUTH_ERRORS, 404, 503),
            description=(
                "All of them, or those of one status; at most limit rows, next_after pages "
                "on (an after that is no code: 404)."
            ),
        ),
        Route(
            "POST",
            "/api/admin/invites",
            admin_routes.create_invites,
            "Make single-use invite codes (admins only)",
            "admin",
            s.CreatedInvites,
            admin=True,
            body=s.InviteBody,
            status=201,
            errors=(*BODY_ERRORS, *AUTH_ERRORS, 503),
            description=(
                "count codes (default 1), each valid for expires_in seconds (default: until "
                "used or revoked), with an optional note. Audited."
            ),
        ),
        Route(
            "POST",
            "/api/admin/invites/{code}/revoke",
            admin_routes.revoke_invite,
            "Revoke an unused invite code (admins only)",
            "admin",
            s.AdminInviteReply,
            admin=True,
            path_params=s.InvitePath,
            errors=(400, *AUTH_ERRORS, 404, 409, 503),
            description=(
                "It registers nobody from then on (403 invalid_invite). A revoked code "
                "answers 200 unchanged; 409 invite_used: a used code stays on record. "
                "Audited."
            ),
        ),
        Route(
            "GET",
            "/api/admin/audit",
            admin_routes.audit,
            "What admins did to users and invites, latest first (admins only)",
            "admin",
            s.AuditLog,
            admin=True,
            query=s.AuditQuery,
            errors=(400, *AUTH_ERRORS, 503),
            description=(
                "One row per action, through the API (who admin:<name>) or the command line "
                "(cli:<os user>), refusals included; at most limit rows, next_after pages on."
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
