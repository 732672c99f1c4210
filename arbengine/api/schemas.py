"""Request and response shapes as msgspec Structs.

One declaration serves three purposes: it validates what arrives (bodies and
query strings are converted into these types, so a bad value is a 400 naming
the field), it fixes the shape of what leaves (responses are encoded from
them), and it is the JSON Schema of the OpenAPI document. The document can
therefore not drift from the code it describes.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

from msgspec import Meta, Struct, field

from arbengine.domain.admin_rows import (
    MAX_INVITE_TTL_MS,
    MAX_INVITES,
    MIN_INVITE_TTL_MS,
    NOTE_MAX,
    AdminAction,
    AuditResult,
    InviteStatus,
)

# A trade or funding time far beyond any real one; keeps bigint arithmetic in SQL safe.
MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01

Symbol = Annotated[
    str, Meta(pattern=r"^[A-Z0-9]{2,30}$", description="a tracked symbol, e.g. BTCUSDT")
]
Interval = Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d"]
INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
StrategyName = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="strategy name, as in its file")
]
Username = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_.-]{3,32}$",
        description="3 to 32 letters, digits, '_', '.', '-'; stored lower-case",
    ),
]
NewPassword = Annotated[str, Meta(min_length=10, max_length=256)]
Password = Annotated[str, Meta(min_length=1, max_length=256)]
InviteCode = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description=(
            "a code from an admin (`POST /api/admin/invites`, `arbengine admin gen-invite`): "
            "single-use, and it may expire or be revoked; an "
            "unknown, used, revoked or expired code is refused with 403 invalid_invite"
        ),
    ),
]
JwtString = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
        max_length=4096,
        description="a refresh token as returned by /api/login or /api/refresh",
    ),
]
Role = Literal["user", "admin"]


class _Shape(Struct, kw_only=True):
    """Base of response shapes."""


class _Input(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request shapes: unknown fields are refused, not ignored."""


# -- errors ---------------------------------------------------------------------


class ErrorDetail(_Shape):
    code: str
    message: str
    field: str | None


class ErrorBody(_Shape):
    error: ErrorDetail


# -- auth -------------------------------------------------------------------------


class RegisterBody(_Input):
    invite_code: InviteCode
    username: Username
    password: NewPassword


class LoginBody(_Input):
    username: Username
    password: Password


class RefreshBody(_Input):
    refresh_token: JwtString


class User(_Shape):
    id: int
    username: str
    role: Role
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class Tokens(_Shape):
    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds the access token is valid."""
    refresh_expires_in: int
    user: User
    token_type: Literal["Bearer"] = "Bearer"


# -- queries ----------------------------------------------------------------------


class _Query(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of query strings. Ranges are half-open: ``from`` ≤ t < ``to``.

    ``DEFAULT_SPAN_MS``/``MAX_SPAN_MS`` bound a range in time; ``DEFAULT_BARS``/
    ``MAX_BARS`` bound it in bars of ``interval``. When ``to`` is absent it is now;
    when ``from`` is absent it is ``to`` minus the default span.
    """

    DEFAULT_SPAN_MS: ClassVar[int | None] = None
    MAX_SPAN_MS: ClassVar[int | None] = None
    DEFAULT_BARS: ClassVar[int | None] = None
    MAX_BARS: ClassVar[int | None] = None


class NoQuery(_Query):
    pass


FromMs = Annotated[int, Meta(ge=0, le=MAX_EPOCH_MS, description="start, epoch ms UTC (inclusive)")]
ToMs = Annotated[int, Meta(ge=1, le=MAX_EPOCH_MS, description="end, epoch ms UTC (exclusive)")]


class SnapshotsQuery(_Query):
    DEFAULT_SPAN_MS: ClassVar[int | None] = 3_600_000
    MAX_SPAN_MS: ClassVar[int | None] = 7 * 86_400_000

    symbol: Symbol
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=5000, description="at most 5000 rows")] = 1000


class KlineQuery(_Query):
    DEFAULT_BARS: ClassVar[int | None] = 500
    MAX_BARS: ClassVar[int | None] = 1500

    symbol: Symbol
    series: Literal["funding_rate", "mark_price"] = "funding_rate"
    interval: Interval = "1h"
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None


class TradesSummaryQuery(_Query):
    DEFAULT_BARS: ClassVar[int | None] = 500
    MAX_BARS: ClassVar[int | None] = 1500
    MAX_SPAN_MS: ClassVar[int | None] = 7 * 86_400_000

    symbol: Symbol
    interval: Interval = "1h"
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None


class LiquidationsQuery(_Query):
    DEFAULT_BARS: ClassVar[int | None] = 24
    MAX_BARS: ClassVar[int | None] = 1500

    symbol: Symbol | None = None
    interval: Interval = "1h"
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None


class HistoryQuery(_Query):
    symbol: Symbol | None = None


class SignalsHistoryQuery(_Query):
    DEFAULT_SPAN_MS: ClassVar[int | None] = 7 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    strategy: StrategyName | None = None
    symbol: Symbol | None = None
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=1000, description="at most 1000 rows")] = 100


class SignalsLatestQuery(_Query):
    strategy: StrategyName | None = None
    symbol: Symbol | None = None


class PaperTradesQuery(_Query):
    DEFAULT_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    strategy: StrategyName | None = None
    symbol: Symbol | None = None
    status: Literal["open", "closed"] | None = None
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=1000, description="at most 1000 rows")] = 100


class PaperSummaryQuery(_Query):
    strategy: StrategyName | None = None
    symbol: Symbol | None = None


# -- system -------------------------------------------------------------------------


class DegradationInfo(_Shape):
    component: str
    """Who reports it: ``stream``, ``rest``, ``collect``, ``collector``, ``pollers``, or a
    supervised component's name (restarting)."""
    subject: str | None
    """What inside it is affected (a symbol, a connection), or null for all of it."""
    reason: str
    """One line, for a person."""
    since: float
    """When it began, epoch seconds."""


class Health(_Shape):
    status: Literal["ok", "degraded", "unavailable"]
    """``ok``; ``degraded`` (200: serving, but something is wrong, see ``reasons``);
    ``unavailable`` (503: the database does not answer)."""
    process: Literal["ok"]
    database: str
    reasons: list[DegradationInfo] = field(default_factory=list)


class SkippedSymbolInfo(_Shape):
    symbol: str
    reason: str
    since: float


class SymbolsInfo(_Shape):
    configured: list[str]
    collecting: list[str]
    """The configured symbols the exchange lists (empty until exchangeInfo was read)."""
    checked: bool
    """False until the exchange's symbol list has been read once."""
    skipped: list[SkippedSymbolInfo]
    """Unknown at start, or stopped while running (delisted): not collected."""


class BackfillSeries(_Shape):
    series: str
    """``agg_trades`` (the tape's catch-up), ``funding_rate``, or a ratio series' kind."""
    done: int
    """Symbols whose history of this series has been fetched since start."""
    total: int
    requests: int
    """REST calls made for it so far."""
    started_at: float
    finished_at: float | None
    """Epoch seconds; null while symbols are still waiting."""


class RequestGroupInfo(_Shape):
    name: str
    """``futures_data`` (``/futures/data/*``) or ``funding`` (fundingRate, fundingInfo)."""
    limit: int
    allowed: int
    """The share of ``limit`` we use (``exchange.weight_safety``)."""
    window_s: float
    used: int
    """Requests in the last ``window_s``."""
    paused_until_ms: int | None
    """After a 429 for this group: nothing of it before then."""


class OrderCountInfo(_Shape):
    interval_s: float
    """10 or 60: the account's ``ORDERS`` limits, from exchangeInfo."""
    limit: int
    allowed: int
    """The share of ``limit`` we use (``exchange.weight_safety``): new orders wait beyond."""
    used: int
    """New orders counted in the window: ours, or the exchange's count when higher."""


class RestBudgetInfo(_Shape):
    weight_limit: int
    """REQUEST_WEIGHT per minute, from exchangeInfo."""
    budget: int
    """The share of it we use."""
    used_weight: int
    """The exchange's count this minute, as its last answer said."""
    live_demand: float
    """Weight per minute the live pollers declared they need."""
    live_reserve: int
    """Weight per minute kept free of repair and backfill (demand plus headroom)."""
    lower_share: int
    """Weight per minute repair and backfill may use, together, paced through the minute."""
    live_used: int
    lower_used: int
    groups: list[RequestGroupInfo]
    waiting: dict[str, int]
    """Calls waiting now, by priority (live, repair, backfill)."""
    paused_until_ms: int | None
    """After a 429, 418 or 403: no call before then."""
    orders: list[OrderCountInfo] = []
    """The account's new-order counts (only a client that places orders sends any)."""


class SymbolReadiness(_Shape):
    symbol: str
    state: Literal["ready", "waiting", "not_collected"]
    """``ready``: evaluated. ``waiting``: not evaluated until its history is in (trades held).
    ``not_collected``: the collectors do not follow it (not configured, delisted, unknown to
    the exchange): evaluated on what is stored, not waited for."""
    since: float
    """Since when it is in this state, epoch seconds."""
    waiting_for: list[str]
    """Inputs whose first round after start is not in yet: ``tape`` (trades caught up over
    REST), ``premium_index``, or an indicator series (``ls_global``, ``open_interest`` …)."""
    strategies: list[str]
    """The enabled strategies that evaluate it."""
    reason: str
    """One line, for a person."""
    held_trades: int
    """Trades received and not applied yet (settling, or waiting for its history)."""


class EngineInfo(_Shape):
    ready: int
    """Symbols being evaluated (ready, or not collected)."""
    waiting: int
    """Symbols waiting for their history."""
    held_trades: int
    symbols: list[SymbolReadiness]


class ServerInfo(_Shape):
    version: str
    started_at: float
    uptime_s: float
    tasks: list[dict[str, Any]]
    """Supervised components: state, ``reason`` while restarting, restarts, last error."""
    channels: list[dict[str, Any]]
    database_size_bytes: int | None
    symbols: SymbolsInfo | None = None
    """Null when the daemon does not collect."""
    degraded: list[DegradationInfo] = field(default_factory=list)
    backfill: list[BackfillSeries] | None = None
    """Start-up history per series (null when the daemon does not collect)."""
    rest: RestBudgetInfo | None = None
    """The exchange REST budget (null when the daemon does not collect)."""
    engine: EngineInfo | None = None
    """Per symbol of the strategies: evaluated, or what it waits for; null when the engine
    is off."""


class TableSize(_Shape):
    name: str
    bytes: int
    """On disk with its indexes and TOAST; a partitioned table's is its partitions' sum."""
    rows_estimate: int | None
    """The planner's count from the last ANALYZE (autovacuum runs it as a table grows):
    an estimate, kept cheap on a tape of billions of rows; partitions never analysed are
    left out; null when nothing of the table was analysed yet."""
    partitions: int
    """0 for a table that is not partitioned."""


class PartitionInfo(_Shape):
    name: str
    from_ms: int | None
    """Start of its range (inclusive): every partitioned table here is partitioned by a
    time in epoch ms (``agg_trades`` by trade time); null for a bound that is not a number."""
    to_ms: int | None
    """End of its range (exclusive)."""
    bytes: int
    rows_estimate: int | None
    """As in ``TableSize``: null until the partition is first analysed."""


class PartitionedTable(_Shape):
    table: str
    key: str
    """How it is partitioned, as PostgreSQL says it: ``RANGE (ts)``."""
    count: int
    bytes: int
    oldest_ms: int | None
    """Start of the oldest partition's range: the oldest time the table can hold."""
    newest_ms: int | None
    """End of the newest partition's range: rows at or after it have no partition yet."""
    partitions: list[PartitionInfo]
    """Oldest first."""


class DatabaseInfo(_Shape):
    size_bytes: int
    """The whole database on disk (``pg_database_size``)."""
    tables: list[TableSize]
    """Every table of the schema (partitions counted in their table), largest first."""
    partitioned: list[PartitionedTable]


# -- funding ------------------------------------------------------------------------


class Rate(_Shape):
    symbol: str
    ts: int | None
    """Time of the latest premiumIndex sample; null when none is stored yet."""
    mark_price: float | None
    index_price: float | None
    funding_rate: float | None
    funding_interval_hours: float
    annualised_rate: float | None
    """funding_rate × (24 / funding_interval_hours) × 365."""
    next_funding_time: int | None


class Rates(_Shape):
    as_of: int
    rates: list[Rate]


class Snapshot(_Shape):
    ts: int
    mark_price: float
    index_price: float
    estimated_settle_price: float | None
    funding_rate: float
    interest_rate: float | None
    next_funding_time: int | None


class Snapshots(_Shape):
    symbol: str
    from_: int = field(name="from")
    to: int
    rows: list[Snapshot]
    next_from: int | None
    """When ``limit`` cut the answer short: ask again with this ``from``."""


class Bar(_Shape):
    ts: int
    """Bar start, epoch ms UTC (aligned to the interval)."""
    open: float
    high: float
    low: float
    close: float
    samples: int


class Kline(_Shape):
    symbol: str
    series: Literal["funding_rate", "mark_price"]
    interval: Interval
    from_: int = field(name="from")
    to: int
    bars: list[Bar]


class FundingStats(_Shape):
    symbol: str
    samples: int
    """Settled funding rates in the window."""
    mean: float | None
    min: float | None
    max: float | None
    annualised: float | None
    """mean × (24 / funding_interval_hours) × 365."""
    funding_interval_hours: float
    first_ts: int | None
    last_ts: int | None


class Stats(_Shape):
    as_of: int
    from_: int = field(name="from")
    to: int
    stats: list[FundingStats]


class YtdStats(_Shape):
    symbol: str
    samples: int
    mean: float | None
    cumulative: float | None
    """Sum of the settled rates since 1 January (what a position held all year received)."""
    annualised: float | None
    funding_interval_hours: float
    first_ts: int | None
    last_ts: int | None


class Ytd(_Shape):
    as_of: int
    year: int
    from_: int = field(name="from")
    to: int
    stats: list[YtdStats]


class FundingPoint(_Shape):
    symbol: str
    ts: int
    """Funding time."""
    funding_rate: float
    mark_price: float | None


class History(_Shape):
    from_: int = field(name="from")
    to: int
    rows: list[FundingPoint]


# -- signals --------------------------------------------------------------------------


class SignalLog(_Shape):
    id: int
    strategy: str
    strategy_hash: str
    symbol: str
    tick: int
    direction: int
    score: float
    coverage: float
    price: float
    atr: float
    features: Any
    """Feature values at the tick."""
    contributions: Any
    """Each rule's contribution to the score: the breakdown of why it fired."""
    created_at: dt.datetime


class SignalHistory(_Shape):
    from_: int = field(name="from")
    to: int
    rows: list[SignalLog]
    truncated: bool


class EvaluationInfo(_Shape):
    strategy: str
    strategy_hash: str
    symbol: str
    tick: int
    direction: int | None
    score: float | None
    coverage: float | None
    fired: bool
    reason: str | None
    """Why it did not fire."""
    features: Any
    contributions: Any
    gates: Any
    created_at: dt.datetime


class NotEvaluated(_Shape):
    strategy: str
    symbol: str
    waiting_for: list[str]
    """As in ``/api/server``: ``tape``, ``premium_index`` or an indicator series."""
    since: float
    """Waiting since, epoch seconds."""
    reason: str


class SignalLatest(_Shape):
    rows: list[EvaluationInfo]
    waiting: list[NotEvaluated] = field(default_factory=list)
    """Strategy and symbol pairs the engine does not evaluate now because the symbol's
    history since start is not in yet (a row above, if any, is from before)."""


# Evaluations over time, one evaluation in full, and the strategy definitions: what the
# dashboard's Signals page reads (the score line, the breakdown, the threshold).


class SignalsEvaluationsQuery(_Query):
    DEFAULT_SPAN_MS: ClassVar[int | None] = 6 * 3_600_000
    MAX_SPAN_MS: ClassVar[int | None] = 7 * 86_400_000

    strategy: StrategyName
    symbol: Symbol
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=20000, description="at most 20000 rows")] = 6000


AtMs = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_EPOCH_MS,
        description="epoch ms UTC: the evaluation at this tick, or else the latest before it",
    ),
]


class SignalsEvaluationQuery(_Query):
    strategy: StrategyName
    symbol: Symbol
    at: AtMs | None = None
    """Absent: the latest evaluation."""


class EvaluationPoint(_Shape):
    """One evaluation, without its breakdown (one per tick: a day is thousands)."""

    tick: int
    direction: int | None
    score: float | None
    coverage: float | None
    fired: bool
    reason: str | None
    """Why it did not fire (null when it fired)."""


class Evaluations(_Shape):
    strategy: str
    symbol: str
    from_: int = field(name="from")
    to: int
    rows: list[EvaluationPoint]
    """Newest first."""
    truncated: bool
    """``limit`` cut the answer short: the oldest ticks of the range are left out."""


class EvaluationAt(_Shape):
    evaluation: EvaluationInfo | None
    """Null when no evaluation is stored at or before the time asked about."""


class StrategyInfo(_Shape):
    name: str
    hash: str
    """The content hash every evaluation, signal and paper trade of this version carries."""
    enabled: bool
    symbols: list[str]
    tick_ms: int
    threshold: float
    """``entry.threshold``: the score at or above which it may fire."""
    min_coverage: float
    """``entry.min_coverage``, percent."""
    document: Any
    """The strategy file with every default written out (what the hash is taken of)."""


class Strategies(_Shape):
    strategies: list[StrategyInfo]
    """Empty when the engine is off (this daemon loads no strategies)."""


# -- trades ---------------------------------------------------------------------------


class DailyCompleteness(_Shape):
    day: dt.date
    first_id: int
    last_id: int
    rows: int
    completeness: float


class TradeMeta(_Shape):
    symbol: str
    first_id: int | None
    last_id: int | None
    first_ts: int | None
    last_ts: int | None
    rows: int
    gaps_seen: int
    gaps_repaired: int
    holes_left: int
    holes: list[list[int]]
    """Trade id ranges [from_id, to_id] that could not be repaired."""
    completeness: float | None
    """Stored ids / (last_id − first_id + 1) over the whole tape."""
    daily: list[DailyCompleteness]
    """The last 7 UTC days checked by the continuity task."""
    updated_at: dt.datetime | None


class TradesMeta(_Shape):
    symbols: list[TradeMeta]


class TradeBar(_Shape):
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    buy_volume: float
    """Taker-buy volume (the buyer was not the maker)."""
    trades: int


class TradesSummary(_Shape):
    symbol: str
    interval: Interval
    from_: int = field(name="from")
    to: int
    bars: list[TradeBar]


class TradesDaysQuery(_Query):
    """UTC days that overlap the range."""

    DEFAULT_SPAN_MS: ClassVar[int | None] = 30 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    symbol: Symbol
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None


class TradesDay(_Shape):
    day: dt.date
    first_id: int
    last_id: int
    rows: int
    """Trades stored that day."""
    missing: int
    """Ids between the day's first and last that are not stored: last − first + 1 − rows."""
    completeness: float
    """rows / (last_id − first_id + 1)."""
    checked_at: dt.datetime
    """When the continuity check last counted the day."""


class TradesDays(_Shape):
    symbol: str
    from_: int = field(name="from")
    to: int
    days: list[TradesDay]
    """Newest first; only the days the continuity check has counted."""


class TradesGapsQuery(_Query):
    """Gaps whose place in the tape (between ``prev_ts`` and ``next_ts``) overlaps the range."""

    DEFAULT_SPAN_MS: ClassVar[int | None] = 30 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    symbol: Symbol
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=1000, description="at most 1000 rows")] = 100


class TradesGap(_Shape):
    from_id: int
    to_id: int
    ids: int
    """to_id − from_id + 1."""
    outcome: Literal["repaired", "hole", "partly_repaired", "open"]
    """``repaired``: every id fetched and stored; ``hole``: the exchange no longer has these
    ids (never repairable); ``partly_repaired``: fetched except the holes listed inside it;
    ``open``: seen, no outcome yet (a repair under way, or the daemon stopped during one:
    the continuity check settles it)."""
    prev_ts: int | None
    """Time of the last stored trade before ``from_id`` (null: none stored)."""
    next_ts: int | None
    """Time of the first stored trade after ``to_id`` (null: none stored yet)."""
    seen_at: dt.datetime
    settled_at: dt.datetime | None
    """When its outcome was recorded; null while ``open``."""


class TradesGaps(_Shape):
    symbol: str
    from_: int = field(name="from")
    to: int
    rows: list[TradesGap]
    """Newest ids first."""
    truncated: bool


# -- liquidations ---------------------------------------------------------------------

LIQUIDATION_NOTE = (
    "Lower bound: Binance pushes at most one liquidation per symbol per second on the "
    "forceOrder stream, so counts and volumes can only be under-stated."
)


class LiquidationBar(_Shape):
    ts: int
    symbol: str
    side: Literal["BUY", "SELL"]
    """SELL liquidates a long, BUY a short."""
    count: int
    qty: float
    notional: float


class LiquidationTotal(_Shape):
    symbol: str
    side: Literal["BUY", "SELL"]
    count: int
    qty: float
    notional: float


class Liquidations(_Shape):
    note: str
    interval: Interval
    from_: int = field(name="from")
    to: int
    bars: list[LiquidationBar]
    totals: list[LiquidationTotal]


# -- paper trading ----------------------------------------------------------------------


class PaperTrade(_Shape):
    id: int
    strategy: str
    strategy_hash: str
    symbol: str
    direction: int
    entry_tick: int
    entry_price: float
    r_distance: float
    stop_loss: float
    take_profit_1: float | None
    take_profit_2: float | None
    quantity: float
    risk_usd: float
    status: Literal["open", "closed"]
    exits: Any
    exit_reason: str | None
    closed_at: int | None
    result_r: float | None
    result_usd: float | None
    fees: float
    funding: float
    updated_at: dt.datetime


class PaperTrades(_Shape):
    from_: int = field(name="from")
    to: int
    rows: list[PaperTrade]
    truncated: bool


class EquityPoint(_Shape):
    ts: int
    """Close time of the trade."""
    trade_id: int
    r: float
    """Cumulative R after this trade."""


class StrategySummary(_Shape):
    strategy: str
    trades: int
    open: int
    closed: int
    wins: int
    losses: int
    win_rate: float | None
    """wins / closed; null before the first close."""
    total_r: float
    total_usd: float
    equity: list[EquityPoint]


class PaperSummary(_Shape):
    strategies: list[StrategySummary]


# -- live trading ---------------------------------------------------------------------------

LiveTradeStatus = Literal["pending", "open", "closed", "not_opened"]
EventLevel = Literal["info", "warning", "error"]
EventKind = Annotated[
    str, Meta(pattern=r"^[a-z0-9_.]{1,64}$", description="a dotted event kind, e.g. live.skipped")
]
OrderRole = Annotated[
    str, Meta(pattern=r"^[a-z0-9_]{1,32}$", description="entry, stop_loss, take_profit_1, …")
]


class LiveTradesQuery(_Query):
    """Live trades by signal tick."""

    DEFAULT_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    strategy: StrategyName | None = None
    symbol: Symbol | None = None
    status: LiveTradeStatus | None = None
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=1000, description="at most 1000 rows")] = 100


class LivePositionsQuery(_Query):
    strategy: StrategyName | None = None
    symbol: Symbol | None = None


class LiveOrdersQuery(_Query):
    """Orders by the time they were first stored."""

    DEFAULT_SPAN_MS: ClassVar[int | None] = 7 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    strategy: StrategyName | None = None
    symbol: Symbol | None = None
    role: OrderRole | None = None
    state: Literal["open", "done"] | None = None
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=1000, description="at most 1000 rows")] = 100


class LiveEventsQuery(_Query):
    DEFAULT_SPAN_MS: ClassVar[int | None] = 7 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    strategy: StrategyName | None = None
    symbol: Symbol | None = None
    kind: EventKind | None = None
    level: EventLevel | None = None
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None
    limit: Annotated[int, Meta(ge=1, le=1000, description="at most 1000 rows")] = 100


class LiveSummaryQuery(_Query):
    """Trades whose signal tick is in the range (like LiveTradesQuery)."""

    DEFAULT_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000
    MAX_SPAN_MS: ClassVar[int | None] = 366 * 86_400_000

    strategy: StrategyName | None = None
    symbol: Symbol | None = None
    from_: FromMs | None = field(default=None, name="from")
    to: ToMs | None = None


class LiveFill(_Shape):
    time: int
    price: float
    quantity: float
    fee: float
    client_order_id: str
    trade_id: int | None = None
    reason: str | None = None


class LivePlanDifference(_Shape):
    what: str
    paper: float | None
    live: float | None
    why: str


class LiveTrade(_Shape):
    id: int
    strategy: str
    strategy_hash: str
    symbol: str
    signal_tick: int
    direction: int
    status: LiveTradeStatus
    quantity: float
    entry_price: float | None
    stop_price: float
    r_distance: float
    risk_usd: float
    entry_fills: list[LiveFill]
    exit_fills: list[LiveFill]
    fees: float
    funding: float
    realised_r: float | None
    realised_usd: float | None
    exit_reason: str | None
    plan_differences: list[LivePlanDifference]
    opened_at: int | None
    closed_at: int | None
    updated_at: dt.datetime
    paper_entry_tick: int | None
    """The paper twin: ``/api/paper/trades`` row (strategy, symbol, entry_tick = this)."""
    paper_entry_price: float | None
    paper_result_r: float | None
    entry_slippage_bps: float | None
    """direction × (live entry − paper entry) / paper entry × 10⁴: positive when live
    entered worse than paper. Null without a twin or before the entry fill."""
    entry_slippage_r: float | None
    """The same difference in R: direction × (live entry − paper entry) / r_distance."""
    exit_slippage_r: float | None
    """Σ over the exits by reason: live quantity share × direction × (the paper's exit
    price by the same rule − the live average) / r_distance, positive when live got
    worse; null until both sides are closed."""
    exit_slippage_bps: float | None
    """The same, each price difference over the paper's exit price × 10⁴."""
    fees_r: float | None
    """Live fees / (quantity × r_distance), once closed."""
    paper_fees_r: float | None
    funding_r: float | None
    """Live funding (FUNDING_FEE income while open; negative when paid) in R, once closed."""
    paper_funding_r: float | None
    split_r: float | None
    """What the live exit quantities (TP1 floored to the lot step) or an exit the paper
    has not take differently from the paper's fractions, in R."""
    r_vs_paper: float | None
    """realised_r − the twin's result_r, once both are closed: equal to −entry_slippage_r
    − exit_slippage_r − (fees_r − paper_fees_r) + (funding_r − paper_funding_r) + split_r."""
    exit_reasons: list[str]
    """The live exits' reasons in the paper's words (sl, tp1, breakeven, tp2, max_hold,
    or flatten, exchange), in order."""
    paper_exit_reasons: list[str] | None
    same_exits: bool | None
    """Both closed by the same rules in the same order; null until both are closed."""


class LiveTrades(_Shape):
    from_: int = field(name="from")
    to: int
    rows: list[LiveTrade]
    truncated: bool


class LiveStatusChange(_Shape):
    status: str
    time: int
    note: str | None = None


class LiveOrder(_Shape):
    id: int
    client_order_id: str
    exchange_order_id: int | None
    kind: Literal["order", "algo"]
    role: str
    symbol: str
    side: Literal["BUY", "SELL"]
    type: str
    quantity: float | None
    price: float | None
    trigger_price: float | None
    reduce_only: bool
    close_position: bool
    status: str
    status_time: int
    status_history: list[LiveStatusChange]
    filled_quantity: float
    average_price: float | None
    trade_id: int | None
    strategy: str | None
    """The strategy of its trade; null for an order of no trade of ours (an orphan's stop)."""
    open: bool
    """Still on the exchange: not filled, cancelled, expired, finished, rejected or unknown."""
    created_at: dt.datetime
    updated_at: dt.datetime


class LiveOrders(_Shape):
    from_: int = field(name="from")
    to: int
    rows: list[LiveOrder]
    truncated: bool


class LivePosition(_Shape):
    trade: LiveTrade
    orders: list[LiveOrder]
    """Its orders still open on the exchange: the stop-loss and take-profits protecting it."""
    protected: bool
    """An open stop-loss order covers it."""


class LivePositions(_Shape):
    rows: list[LivePosition]


class LiveEvent(_Shape):
    id: int
    event_id: str
    at: dt.datetime
    level: EventLevel
    kind: str
    symbol: str | None
    strategy: str | None
    detail: dict[str, Any]
    who: str
    """executor, reconciler, admin:<name> or cli."""


class LiveEvents(_Shape):
    from_: int = field(name="from")
    to: int
    rows: list[LiveEvent]
    truncated: bool


class LiveStrategySummary(_Shape):
    strategy: str
    trades: int
    open: int
    """Pending or open."""
    closed: int
    not_opened: int
    wins: int
    losses: int
    win_rate: float | None
    """wins / closed; null before the first close."""
    total_r: float
    total_usd: float
    fees: float
    funding: float
    twins: int
    """Closed trades whose paper twin is closed too: the ones the paper comparison is over."""
    same_exits: int
    """Of ``twins``, those that exited by the same rules in the same order."""
    entry_slippage_r: float | None
    """Mean entry slippage in R over trades with a twin and an entry fill (null: none)."""
    entry_slippage_bps: float | None
    exit_slippage_r: float | None
    """Mean exit slippage over ``twins`` (null: none), like the per-trade value."""
    exit_slippage_bps: float | None
    fees_r: float | None
    """Mean live fees in R over ``twins``; ``paper_fees_r`` the twins' mean."""
    paper_fees_r: float | None
    funding_r: float | None
    paper_funding_r: float | None
    r_vs_paper: float | None
    """Sum of realised_r − paper result_r over ``twins`` (null: none)."""


class LiveSummary(_Shape):
    from_: int = field(name="from")
    to: int
    strategies: list[LiveStrategySummary]


class LiveConfigBody(_Input):
    """The whole run-time live configuration: every field is required (a PUT replaces it)."""

    strategies: Annotated[list[StrategyName], Meta(max_length=64)]
    """Names of loaded strategies to trade live; empty: trade none."""
    risk_per_trade_usd: Annotated[float, Meta(gt=0, le=1_000_000)]
    max_positions: Annotated[int, Meta(ge=1, le=1000)]
    paused: bool
    """True: open no new live trade (open ones stay protected and are still managed)."""


class LiveConfig(_Shape):
    strategies: list[str]
    risk_per_trade_usd: float
    max_positions: int
    paused: bool
    source: Literal["settings", "api"]
    """``settings``: no change was made through the API yet, the file's [live] is in force."""
    changed_by: str | None
    changed_at: dt.datetime | None


class LiveConfigView(_Shape):
    current: LiveConfig
    history: list[LiveConfig]
    """The changes made through the API, newest first (at most 100)."""
    loaded_strategies: list[str] | None
    """The strategies the daemon has loaded (null: none, the engine is off)."""


class LiveFlattenBody(_Input):
    """One of: ``trade_id`` (that trade), ``symbol`` (every position on it), or nothing /
    ``all: true`` (every position of the account; entries are paused too)."""

    trade_id: Annotated[int, Meta(ge=1)] | None = None
    """An open live trade to close at market (``id`` in ``/api/live/positions``)."""
    symbol: Symbol | None = None
    all: bool = False


class LiveControlPosition(_Shape):
    symbol: str
    amount: str
    """Signed position amount, as the exchange states it."""


class LiveControlState(_Shape):
    paused: bool
    """New live entries paused (the manual pause, ``live_config.paused``)."""
    positions: list[LiveControlPosition]
    """The account's open positions on the exchange."""
    open_orders: int
    """Open orders and algo orders of the account on the exchange."""


class LiveControlReply(_Shape):
    """An emergency command's acknowledgement (the same as the CLI's)."""

    command_id: str
    command: Literal["pause", "resume", "flatten", "cancel_all"]
    who: str
    symbol: str | None
    trade_id: int | None
    strategy: str | None
    """flatten of a trade: its strategy."""
    status: Literal["done", "requested", "failed"]
    """``requested``: a flatten under way (its verification completes the command, a
    ``control.flatten`` event says how it ended)."""
    result: str
    state: LiveControlState | None
    """After the command (null only when the exchange could not be read)."""
    detail: dict[str, Any]


# -- admin ----------------------------------------------------------------------------------

MAX_ID = 2**63 - 1
"""The largest id a bigint column holds."""
RowId = Annotated[int, Meta(ge=1, le=MAX_ID)]
InviteCodeRef = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="an invite code, as listed")
]
AdminResult = Literal["done", "unchanged"]
"""``done``: changed now; ``unchanged``: it already was so (asking twice is safe)."""
PageLimit = Annotated[int, Meta(ge=1, le=1000, description="at most 1000 rows")]
_NEXT_PAGE = "the next page: next_after of the one before"
AfterId = Annotated[int, Meta(ge=0, le=MAX_ID, description=_NEXT_PAGE)]
AfterCode = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$", description=_NEXT_PAGE)]
InviteCount = Annotated[
    int, Meta(ge=1, le=MAX_INVITES, description=f"codes to make, at most {MAX_INVITES}")
]
InviteLife = Annotated[
    int,
    Meta(
        ge=MIN_INVITE_TTL_MS // 1000,
        le=MAX_INVITE_TTL_MS // 1000,
        description="seconds each code stays usable (default: no expiry)",
    ),
]
InviteNote = Annotated[
    str, Meta(min_length=1, max_length=NOTE_MAX, description="whom the codes are for")
]


class _PathParams(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of the parameters in a route's path (``{id}``): each one is required."""


class UserPath(_PathParams):
    id: Annotated[RowId, Meta(description="a user's id, as listed by /api/admin/users")]


class InvitePath(_PathParams):
    code: InviteCodeRef


class AdminUsersQuery(_Query):
    after: AfterId | None = None
    limit: PageLimit = 100


class AdminUser(_Shape):
    id: int
    username: str
    role: Role
    banned: bool
    """A banned user's requests and refresh tokens are refused (403 banned)."""
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    active_sessions: int
    """Logins whose refresh token can still be used (not spent, revoked or expired)."""


class AdminUsers(_Shape):
    rows: list[AdminUser]
    """By id."""
    next_after: int | None
    """When ``limit`` cut the list short: ask again with ``after`` this."""


class RoleBody(_Input):
    role: Role


class AdminUserReply(_Shape):
    result: AdminResult
    user: AdminUser
    """The user now."""
    sessions_revoked: int = 0
    """A ban: the refresh tokens it revoked."""


class AdminInvitesQuery(_Query):
    status: InviteStatus | None = None
    after: AfterCode | None = None
    limit: PageLimit = 100


class InviteBody(_Input):
    count: InviteCount = 1
    expires_in: InviteLife | None = None
    note: InviteNote | None = None


class AdminInvite(_Shape):
    code: str
    status: InviteStatus
    """``usable``; ``used``; ``revoked``; ``expired`` (unused, past expires_at)."""
    created_at: dt.datetime
    created_by: str | None
    """The admin who made it; null: the command line."""
    expires_at: dt.datetime | None
    used_by: str | None
    used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    note: str | None


class AdminInvites(_Shape):
    rows: list[AdminInvite]
    """Newest first."""
    next_after: str | None
    """When ``limit`` cut the list short: ask again with ``after`` this."""


class CreatedInvites(_Shape):
    rows: list[AdminInvite]


class AdminInviteReply(_Shape):
    result: AdminResult
    invite: AdminInvite


class AuditQuery(_Query):
    after: AfterId | None = None
    limit: PageLimit = 100


class AuditEntry(_Shape):
    id: int
    at: dt.datetime
    who: str
    """``admin:<name>`` (the API) or ``cli:<os user>`` (``arbengine admin``)."""
    action: AdminAction
    target: str | None
    """A username (``#<id>`` when there was no such user), an invite code, or ``N invite
    codes``."""
    result: AuditResult
    detail: dict[str, Any]
    """``user_id``, ``sessions_revoked``, ``before``/``after`` (a role), ``codes``,
    ``expires_at``, ``note``, ``reason`` (a refusal: ``self_ban``, ``self_demotion``,
    ``not_admin``, ``invite_used``, ``name_taken``)."""


class AuditLog(_Shape):
    rows: list[AuditEntry]
    """Latest first."""
    next_after: int | None
    """When ``limit`` cut the list short: ask again with ``after`` this."""
