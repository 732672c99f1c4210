"""Typed, frozen settings: ``config/arbengine.toml`` overridden by ``ARB_*`` variables.

Every value is validated once, at start-up, so a typo in a key or a port of
``"80a"`` stops the process with one line naming the key, instead of failing
an hour later in some task. Secrets are redacted wherever settings are shown.

Environment names are ``ARB_<SECTION>_<KEY>`` (``[http] port`` → ``ARB_HTTP_PORT``);
a secret may instead be read from a file named by ``ARB_<SECTION>_<KEY>_FILE``.
``ARB_CONFIG`` names the TOML file (default ``config/arbengine.toml``; where there is
none, the copy shipped inside the package).

The package ships the default settings file and strategies (``arbengine/defaults``,
links to the top-level ``config/`` and ``strategies/`` in the source tree), so the
daemon runs from any working directory.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import os
import re
import tomllib
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, cast

import msgspec

from arbengine.domain.durations import EXAMPLES, Duration, decode_hook, encode_hook
from arbengine.domain.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/arbengine.toml")
LOCAL_STRATEGIES_DIR = Path("strategies")
ENV_PREFIX = "ARB_"
RESERVED_ENV = frozenset({"ARB_CONFIG"})
REDACTED = "***"

Port = Annotated[int, msgspec.Meta(ge=0, le=65535, description="0 picks a free port")]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every settings section."""

    SECRETS: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        def shown(name: str) -> str:
            value = getattr(self, name)
            return REDACTED if name in self.SECRETS and value else repr(value)

        fields = ", ".join(f"{name}={shown(name)}" for name in self.__struct_fields__)
        return f"{type(self).__name__}({fields})"


class DatabaseSettings(_Section, frozen=True):
    SECRETS: ClassVar[frozenset[str]] = frozenset({"url"})

    url: str = ""
    """PostgreSQL URL. Empty: start the embedded server in ``data_dir``."""
    data_dir: str = "./var/pg"
    pool_min_size: PositiveInt = 2
    pool_max_size: PositiveInt = 10
    connect_timeout: Duration = Duration("10s")
    write_timeout: Duration = Duration("10s")
    """A write (a batch of the market or the signal writer, connection included) not done in
    this long is abandoned and retried as when the database is down; longer per 50,000 rows."""
    trade_retention_months: NonNegativeInt = 0
    """Drop ``agg_trades`` partitions older than this many months; 0 keeps everything."""
    partition_check_interval: Duration = Duration("1d")

    def __post_init__(self) -> None:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")


class ArchiveSettings(_Section, frozen=True):
    """The tape archive (``store/tape_archive.py``): days of ``agg_trades`` the continuity
    check has proven complete, sealed once into one Parquet file per symbol-day, which
    backtests read instead of PostgreSQL."""

    dir: str = "./var/archive"
    """A directory, or a URL pyarrow's filesystems open (``s3://bucket/prefix``,
    ``gs://bucket/prefix``, ``file:///path``). Empty: no archive (nothing is sealed,
    backtests read PostgreSQL only)."""
    seal_interval: Duration = Duration("10m")
    """How often the daemon looks for days to seal (each pass runs in a worker process)."""

    def __post_init__(self) -> None:
        if self.seal_interval.ms < 1000:
            raise ValueError("seal_interval must be at least 1s")
        if "://" in self.dir:
            parts = urllib.parse.urlsplit(self.dir)
            if not re.fullmatch(r"[a-z][a-z0-9+.-]*", parts.scheme):
                raise ValueError("dir: not a directory or a URL like s3://bucket/prefix")


class HttpSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    cors_origins: list[str] = msgspec.field(default_factory=list)
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    """Addresses or CIDR networks of reverse proxies whose ``X-Forwarded-For`` is believed."""
    keepalive_timeout: Duration = Duration("75s")
    """A connection with no request under way is closed after this long."""
    header_timeout: Duration = Duration("10s")
    """A request's line and headers must arrive within this long of its first byte."""
    body_timeout: Duration = Duration("10s")
    """A request's body must arrive within this long of its headers."""
    send_timeout: Duration = Duration("60s")
    """A client that takes none of a response for this long is disconnected."""
    max_connections: PositiveInt = 4096
    """Connections served at once; more are refused with 503 (see ``descriptor_reserve``)."""
    descriptor_reserve: PositiveInt = 1024
    """File descriptors kept for everything but API connections (collectors, database pool,
    trading): connections are capped so that this many always remain."""

    def __post_init__(self) -> None:
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {proxy!r} is not an IP address or CIDR network"
                ) from None
        for name in ("keepalive_timeout", "header_timeout", "body_timeout", "send_timeout"):
            if getattr(self, name).ms <= 0:
                raise ValueError(f"{name} must be longer than 0s")


class RuntimeSettings(_Section, frozen=True):
    shutdown_deadline: Duration = Duration("20s")
    """SIGTERM to exit: stop intake, drain channels, flush writes, stop the database. A hard
    bound: the process exits within it plus ``hard_stop.SHUTDOWN_MARGIN_S`` (3 s), whatever is
    stuck."""
    restart_initial: Duration = Duration("500ms")
    restart_max: Duration = Duration("30s")
    healthy_after: Duration = Duration("60s")
    """A component running this long has its restart backoff reset."""
    max_restarts: PositiveInt = 5
    restart_window: Duration = Duration("5m")
    """More than ``max_restarts`` restarts of one component within this window stop the daemon."""
    channel_capacity: PositiveInt = 50_000


class ExchangeSettings(_Section, frozen=True):
    SECRETS: ClassVar[frozenset[str]] = frozenset({"api_key", "api_secret"})

    rest_url: str = "https://fapi.binance.com"
    ws_url: str = "wss://fstream.binance.com/market"
    """Market streams base: ``<ws_url>/stream?streams=…``."""
    private_ws_url: str = "wss://fstream.binance.com/private"
    coinbase_url: str = "https://api.exchange.coinbase.com"
    api_key: str = ""
    api_secret: str = ""
    recv_window: Annotated[int, msgspec.Meta(ge=1, le=60000)] = 5000
    request_timeout: Duration = Duration("10s")
    weight_safety: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    """Use at most this share of the per-minute request weight limit from exchangeInfo."""
    forbidden_backoff: Duration = Duration("5m")
    """After an HTTP 403 (the exchange's firewall) every REST call waits this long (or the
    Retry-After it sent)."""
    futures_data_limit: PositiveInt = 1000
    """Requests to ``/futures/data/*`` (ratio and open-interest history) per
    ``futures_data_window`` per IP: Binance's own count for them (they weigh nothing)."""
    futures_data_window: Duration = Duration("5m")
    funding_limit: PositiveInt = 500
    """Requests to ``fundingRate`` and ``fundingInfo`` together per ``funding_window`` per IP."""
    funding_window: Duration = Duration("5m")


class CollectSettings(_Section, frozen=True):
    enabled: bool = True
    """Collect market data from the exchange (off: the daemon only serves what is stored)."""
    symbols: list[str] = msgspec.field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    )
    streams_per_connection: Annotated[int, msgspec.Meta(ge=3, le=200)] = 200
    max_backfill: Duration = Duration("24h")
    """A start-up backfill reaching further back starts here instead and records the hole."""
    initial_backfill: Duration = Duration("0s")
    """With no stored trades, backfill this far back at first start (0s: start live)."""
    repair_grace: Duration = Duration("500ms")
    """A gap may close by itself (reordered frames) before REST is asked."""
    max_connection_age: Duration = Duration("23h")
    silence_timeout: Duration = Duration("30s")
    reconnect_initial: Duration = Duration("1s")
    reconnect_max: Duration = Duration("60s")
    stream_flush_interval: Duration = Duration("20ms")
    premium_index_interval: Duration = Duration("2s")
    open_interest_interval: Duration = Duration("30s")
    ratios_interval: Duration = Duration("5m")
    ratio_period: Literal["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"] = "5m"
    funding_history_interval: Duration = Duration("1h")
    history_backfill: Duration = Duration("30d")
    """How far back funding, open-interest and ratio history is fetched at first start
    (Binance keeps the ratio series for about 30 days only: we store them ourselves)."""
    coinbase_interval: Duration = Duration("5s")
    continuity_check_interval: Duration = Duration("10m")
    symbols_refresh_interval: Duration = Duration("1h")
    """How often exchangeInfo is read again: rate limits, server time, and which configured
    symbols the exchange still lists (an unlisted one stops, the others go on)."""
    writer_batch_rows: PositiveInt = 20000
    writer_flush_interval: Duration = Duration("250ms")
    writer_max_buffer_rows: PositiveInt = 1000000

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols must list at least one symbol")
        for symbol in self.symbols:
            if not re.fullmatch(r"[A-Z0-9]{2,30}", symbol):
                raise ValueError(f"symbol {symbol!r} is not an upper-case Binance symbol")


class EngineSettings(_Section, frozen=True):
    enabled: bool = True
    """Run the signal engine and paper trading on the collected data."""
    strategies_dir: str = ""
    """Empty: ``./strategies`` if there is one, else the strategies shipped with the package.
    A directory named here must exist."""
    grace: Duration = Duration("2s")
    """A tick with no later trade yet is evaluated once the clock passes it by this much."""
    settle: Duration = Duration("1500ms")
    """Each trade is applied once the exchange clock has passed its time by this much, so
    the events before it (liquidations, pushed up to ~1 s late) are applied first."""
    max_catch_up: Duration = Duration("24h")
    """Ticks missed while the daemon was down are evaluated at start, this far back at most."""

    def __post_init__(self) -> None:
        if self.settle.ms > self.grace.ms:
            raise ValueError(
                f"settle ({self.settle}) must not exceed grace ({self.grace}): a tick made due "
                "by the clock would miss trades still settling"
            )


class AuthSettings(_Section, frozen=True):
    SECRETS: ClassVar[frozenset[str]] = frozenset({"jwt_secret"})

    jwt_secret: str = ""
    """HS256 key. Empty: generated once and kept in ``secret_file`` (mode 0600)."""
    secret_file: str = "./var/jwt.secret"
    access_ttl: Duration = Duration("15m")
    refresh_ttl: Duration = Duration("30d")
    login_attempts_per_ip: PositiveInt = 20
    """Failed logins from one address (any account) per ``login_window``; then 429."""
    login_attempts_per_account_ip: PositiveInt = 5
    """Failed logins to one account from one address per ``login_window``; then 429."""
    login_delay_after: PositiveInt = 5
    """Failed logins to one account (from any address) per ``login_window`` answered at once;
    each further attempt waits first, so an attack slows the account down but never locks
    out its owner."""
    login_delay_initial: Duration = Duration("1s")
    login_delay_max: Duration = Duration("10s")
    """The wait doubles from ``login_delay_initial`` with each further failure, up to this."""
    login_window: Duration = Duration("15m")
    register_attempts_per_ip: PositiveInt = 10

    def __post_init__(self) -> None:
        if self.jwt_secret and len(self.jwt_secret) < 32:
            raise ValueError("jwt_secret must be at least 32 characters (or empty to generate one)")
        if self.login_delay_initial.ms > self.login_delay_max.ms:
            raise ValueError("login_delay_initial must not exceed login_delay_max")


class LogSettings(_Section, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    pretty: bool = False
    """Human-readable console output; also on whenever stdout is a terminal."""


TESTNET_REST_URL = "https://demo-fapi.binance.com"
TESTNET_PRIVATE_WS_URL = "wss://fstream.binancefuture.com"
"""Binance's USD-M testnet (demo trading): the live executor's endpoints unless overridden."""
PRODUCTION_HOSTS = frozenset({"fapi.binance.com", "fstream.binance.com"})
"""Hosts that move real money: a testnet configuration may not point at them."""


class LiveSettings(_Section, frozen=True):
    """Live trading on Binance USD-M. Off by default, on the testnet by default: trading
    real money needs ``environment = "production"`` written out, keys, and ``enabled``.

    ``strategies``, ``risk_per_trade_usd``, ``max_positions`` (and a pause) can also be
    changed at run time by an admin (``live_config``), which overrides them. SIGHUP
    reads the section again (all but ``enabled``, ``environment`` and the URLs apply).
    Keys are ``[exchange] api_key`` / ``api_secret``; signing uses ``[exchange] recv_window``.
    """

    enabled: bool = False
    environment: Literal["testnet", "production"] = "testnet"
    strategies: list[str] = msgspec.field(default_factory=list)
    """Names of the strategies whose signals are traded live; each must be loaded."""
    risk_per_trade_usd: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """USD lost when a trade's stop-loss is hit: quantity = this / |entry − stop|."""
    max_positions: PositiveInt = 1
    """Open live positions at once (all strategies and symbols); further signals are skipped."""
    leverage: Annotated[int, msgspec.Meta(ge=1, le=125)] = 1
    """Set on each traded symbol before its first entry; margin used is notional / leverage."""
    orphan_policy: Literal["protect", "flatten", "alert"] = "protect"
    """A position on the exchange that no live trade accounts for: give it a stop-loss,
    close it at market, or only report it."""
    reconcile_interval: Duration = Duration("30s")
    """Exchange positions and open orders are checked against the records this often."""
    rest_url: str = ""
    """Empty: the environment's (testnet: ``TESTNET_REST_URL``; production: ``[exchange]
    rest_url``)."""
    private_ws_url: str = ""
    """User data stream base; empty: the environment's, like ``rest_url``."""

    def __post_init__(self) -> None:
        for name in self.strategies:
            if not name.strip():
                raise ValueError("strategies: a strategy name must not be empty")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"strategies: a name is listed twice ({self.strategies})")
        if self.reconcile_interval.ms < 1000:
            raise ValueError("reconcile_interval must be at least 1s")
        for key, schemes in (("rest_url", ("http", "https")), ("private_ws_url", ("ws", "wss"))):
            url = getattr(self, key)
            if not url:
                continue
            parsed = urllib.parse.urlsplit(url)
            if parsed.scheme not in schemes or not parsed.hostname:
                raise ValueError(f"{key}: {url!r} is not a {' or '.join(schemes)} URL")
            if self.environment == "testnet" and parsed.hostname in PRODUCTION_HOSTS:
                raise ValueError(
                    f"{key}: {parsed.hostname} is production Binance but environment is "
                    '"testnet"; set environment = "production" to trade real money'
                )


class AlertsSettings(_Section, frozen=True):
    """Alerts to a Discord webhook and/or a generic JSON webhook (``notify/``). Off while
    both URLs are empty. The URLs carry the webhook's token: secrets (``_FILE`` forms),
    shown as ``***`` and never logged (the sinks are named ``discord`` and ``webhook``)."""

    SECRETS: ClassVar[frozenset[str]] = frozenset({"discord_webhook_url", "webhook_url"})

    discord_webhook_url: str = ""
    """``https://discord.com/api/webhooks/<id>/<token>``: alerts as embeds."""
    webhook_url: str = ""
    """Any receiver of a JSON POST: one ``{"source", "sent_at", "alerts": [...]}`` per batch."""
    queue_size: PositiveInt = 1000
    """Alerts waiting per sink; when full the oldest is dropped (counted, ``notify.dropped``)."""
    batch_window: Duration = Duration("2s")
    """Alerts arriving within this long of the first one waiting are sent in one message."""
    max_attempts: PositiveInt = 10
    """Sends of one batch before it is given up (``notify.given_up``)."""
    max_age: Duration = Duration("15m")
    """A batch not delivered this long after its first attempt is given up."""
    retry_initial: Duration = Duration("1s")
    retry_max: Duration = Duration("60s")
    """Receiver down or answering 5xx: retried after a capped, jittered exponential delay."""
    request_timeout: Duration = Duration("10s")
    signals: bool = True
    """Signals fired (score, each factor's contribution, the strategy hash)."""
    min_signal_score: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Signals scoring less than this are not alerted."""
    trades: bool = True
    """Live entries filled and trades closed (with R and USD)."""
    breaker: bool = True
    """Trading state transitions (ACTIVE / REDUCING / HALTED) and auto-resumes."""
    controls: bool = True
    """Emergency commands (pause, resume, flatten, cancel-all)."""
    tape_holes: bool = True
    """Holes recorded in a symbol's trade tape."""
    daemon: bool = True
    """The daemon started or stopping."""
    components: bool = True
    """A component that kept failing was given up (the daemon stops)."""

    def __post_init__(self) -> None:
        for key in ("discord_webhook_url", "webhook_url"):
            url = getattr(self, key)
            parsed = urllib.parse.urlsplit(url)
            if url and (parsed.scheme not in ("http", "https") or not parsed.hostname):
                # Never the value: it holds the webhook's token.
                raise ValueError(f"{key}: not an http(s) URL")
        if self.retry_initial.ms <= 0 or self.retry_initial.ms > self.retry_max.ms:
            raise ValueError("retry_initial must be longer than 0s and not exceed retry_max")
        if self.request_timeout.ms <= 0:
            raise ValueError("request_timeout must be longer than 0s")

    @property
    def enabled(self) -> bool:
        return bool(self.discord_webhook_url or self.webhook_url)


class RiskSettings(_Section, frozen=True):
    """The risk guard in front of the live executor (always on with ``[live] enabled``).

    Every entry passes the gate (``trading/risk_rules.py``); the monitor checks the
    account and the data every ``check_interval`` and moves the trading state between
    ACTIVE, REDUCING (exits only) and HALTED (the circuit breaker). A zero loss or
    balance limit is off; the data age limits are always on.
    """

    max_positions: PositiveInt = 3
    """Open positions on the account at once (all symbols, ours or not)."""
    max_positions_per_symbol: PositiveInt = 1
    daily_loss_r: Annotated[float, msgspec.Meta(ge=0)] = 3.0
    """Realised loss of the UTC day in R (closed live trades) that halts trading; 0: off."""
    daily_loss_usd: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Realised loss of the UTC day in USD, fees and funding counted, that halts; 0: off."""
    unrealised_loss_usd: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Unrealised loss of the open positions (USD) that halts trading; 0: off."""
    balance_floor_usd: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """USDT wallet balance at or below which trading halts; 0: off."""
    reduce_at: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    """Share of a loss limit at which the state goes REDUCING (exits only)."""
    max_tape_age: Duration = Duration("60s")
    """A symbol whose last trade arrived longer ago gets no new entry."""
    max_premium_index_age: Duration = Duration("30s")
    max_indicator_age: Duration = Duration("15m")
    """Each indicator series a strategy reads (open interest, ratios, …)."""
    max_user_stream_age: Duration = Duration("30s")
    """The user data stream disconnected, or behind the account as REST shows it, for
    longer than this: REDUCING until it is in step again."""
    hold_timeout: Duration = Duration("70m")
    """A live trade held longer is closed at market."""
    check_interval: Duration = Duration("5s")
    rest_check_interval: Duration = Duration("60s")
    """Positions and balance are read over REST this often (the stream in between)."""
    cooldown: Duration = Duration("30m")
    """A breaker resumes after this long once its condition has cleared (the daily-loss
    breaker at the next UTC day), never while the admin's pause is set."""
    flatten_on_halt: bool = True
    """A breaker closes every position at market."""

    def __post_init__(self) -> None:
        if self.check_interval.ms < 100:
            raise ValueError("check_interval must be at least 100ms")
        if self.rest_check_interval.ms < self.check_interval.ms:
            raise ValueError("rest_check_interval must be at least check_interval")
        if self.max_positions_per_symbol > self.max_positions:
            raise ValueError("max_positions_per_symbol must not exceed max_positions")


@dataclass(frozen=True)
class LiveEndpoints:
    """Where the live executor sends orders and reads its user data stream."""

    rest_url: str
    private_ws_url: str


def live_endpoints(settings: Settings) -> LiveEndpoints:
    """``[live]`` URLs where given, else the environment's: the testnet's own, or for
    production the ``[exchange]`` endpoints that market data uses."""
    live, exchange = settings.live, settings.exchange
    if live.environment == "production":
        rest, private_ws = exchange.rest_url, exchange.private_ws_url
    else:
        rest, private_ws = TESTNET_REST_URL, TESTNET_PRIVATE_WS_URL
    return LiveEndpoints(live.rest_url or rest, live.private_ws_url or private_ws)


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    archive: ArchiveSettings = msgspec.field(default_factory=ArchiveSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    runtime: RuntimeSettings = msgspec.field(default_factory=RuntimeSettings)
    exchange: ExchangeSettings = msgspec.field(default_factory=ExchangeSettings)
    collect: CollectSettings = msgspec.field(default_factory=CollectSettings)
    engine: EngineSettings = msgspec.field(default_factory=EngineSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    live: LiveSettings = msgspec.field(default_factory=LiveSettings)
    alerts: AlertsSettings = msgspec.field(default_factory=AlertsSettings)
    risk: RiskSettings = msgspec.field(default_factory=RiskSettings)

    def __post_init__(self) -> None:
        """Rules across sections (named by their keys, never showing a secret's value)."""
        live, exchange = self.live, self.exchange
        if not live.enabled:
            return
        where = "on production" if live.environment == "production" else "on the testnet"
        missing = [k for k in ("api_key", "api_secret") if not getattr(exchange, k)]
        if missing:
            names = " and ".join(f"exchange.{k}" for k in missing)
            variables = ", ".join(f"ARB_EXCHANGE_{k.upper()}[_FILE]" for k in missing)
            raise ValueError(f"live.enabled {where} requires {names} (set {variables})")
        if not live.strategies:
            raise ValueError("live.enabled requires at least one strategy in live.strategies")

    def redacted(self) -> dict[str, dict[str, Any]]:
        """Plain data for display, every secret replaced by ``***``."""
        out: dict[str, dict[str, Any]] = {}
        for section_name in self.__struct_fields__:
            section = getattr(self, section_name)
            values = msgspec.to_builtins(section, enc_hook=encode_hook)
            for key in section.SECRETS:
                if values.get(key):
                    values[key] = REDACTED
            out[section_name] = values
        return out


def shipped(name: str) -> Path:
    """A default shipped inside the package: ``arbengine.toml`` or ``strategies``.

    (An installed package is a directory on disk, so this is a plain path.)
    """
    return Path(str(importlib.resources.files("arbengine").joinpath("defaults", name)))


def strategies_dir(engine: EngineSettings) -> Path:
    """The strategy directory the engine uses (see ``EngineSettings.strategies_dir``)."""
    if engine.strategies_dir:
        return Path(engine.strategies_dir)
    if LOCAL_STRATEGIES_DIR.is_dir():
        return LOCAL_STRATEGIES_DIR
    return shipped("strategies")


def _section_types() -> dict[str, type[_Section]]:
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    types: dict[str, type[_Section]] = {}
    for field in info.fields:
        assert isinstance(field.type, msgspec.inspect.StructType)
        types[field.name] = cast(type[_Section], field.type.cls)
    return types


def _field_kinds(section: type[_Section]) -> dict[str, msgspec.inspect.Type]:
    """Each key's declared type (a Literal's choices in declared order, not msgspec's)."""
    info = msgspec.inspect.type_info(section)
    assert isinstance(info, msgspec.inspect.StructType)
    hints = typing.get_type_hints(section)
    kinds: dict[str, msgspec.inspect.Type] = {}
    for f in info.fields:
        kind = f.type
        if isinstance(kind, msgspec.inspect.LiteralType):
            kind = msgspec.inspect.LiteralType(typing.get_args(hints[f.name]))
        kinds[f.name] = kind
    return kinds


def _env_overrides(
    env: Mapping[str, str], sections: dict[str, type[_Section]]
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], str]]:
    """Values from ``ARB_*`` variables, and which variable set each (for error messages)."""
    values: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section_name, _, key = rest.partition("_")
        if section_name not in sections or not key:
            known = ", ".join(sorted(sections))
            raise ConfigError(
                f"{name}: unknown setting section {section_name!r} (expected one of: {known})"
            )
        section = sections[section_name]
        kinds = _field_kinds(section)
        raw: Any = env[name]
        if key.endswith("_file") and key[: -len("_file")] in section.SECRETS:
            key = key[: -len("_file")]
            try:
                raw = Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"{name}: cannot read secret file {raw!r}: {exc.strerror}"
                ) from None
        if key not in kinds:
            known = ", ".join(sorted(kinds))
            raise ConfigError(f"{name}: unknown setting {section_name}.{key} (known keys: {known})")
        if isinstance(kinds[key], msgspec.inspect.ListType):
            raw = [item.strip() for item in raw.split(",") if item.strip()]
        values.setdefault(section_name, {})[key] = raw
        origin[(section_name, key)] = name
    return values, origin


_ERROR_PATH = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`$")


def _error_path(exc: msgspec.ValidationError) -> tuple[str, ...]:
    """The keys msgspec names after ``- at `$`` (``$.http.port`` → ``("http", "port")``);
    only the path is read from its message, never its wording."""
    match = _ERROR_PATH.search(str(exc))
    return tuple(re.findall(r"\.(\w+)", match.group(1))) if match else ()


def _bounds(kind: msgspec.inspect.IntType | msgspec.inspect.FloatType, value: float) -> str:
    """The bound ``value`` breaks, in words."""
    noun = "an integer" if isinstance(kind, msgspec.inspect.IntType) else "a number"
    if kind.ge is not None and value < kind.ge:
        return f"expected {noun} ≥ {kind.ge}"
    if kind.gt is not None and value <= kind.gt:
        return f"expected {noun} > {kind.gt}"
    if kind.le is not None and value > kind.le:
        return f"expected {noun} ≤ {kind.le}"
    if kind.lt is not None and value >= kind.lt:
        return f"expected {noun} < {kind.lt}"
    return f"expected {noun}"


def _expected(kind: msgspec.inspect.Type, got: Any) -> str:
    """What a setting of type ``kind`` needs, said for ``got`` (the value that was refused)."""
    if isinstance(kind, msgspec.inspect.Metadata):
        kind = kind.type
    if isinstance(kind, msgspec.inspect.CustomType) and kind.cls is Duration:
        return f"expected a duration like {EXAMPLES}"
    if isinstance(kind, msgspec.inspect.LiteralType):
        return "expected one of " + ", ".join(map(str, kind.values))  # in declared order
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        number = int if isinstance(kind, msgspec.inspect.IntType) else float
        try:
            value = msgspec.convert(got, number, strict=False)
        except msgspec.ValidationError:
            return f"expected {number.__name__}"
        return _bounds(kind, value)
    if isinstance(kind, msgspec.inspect.ListType):
        return f"expected a list of {_expected(kind.item_type, None).removeprefix('expected ')}"
    if isinstance(kind, msgspec.inspect.BoolType):
        return "expected bool"
    if isinstance(kind, msgspec.inspect.StrType):
        return "expected str"
    return "invalid value"  # pragma: no cover - every settings type is named above


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate; raise ConfigError with one line naming the key."""
    env = os.environ if env is None else env
    explicit = path is not None or "ARB_CONFIG" in env
    path = path or Path(env.get("ARB_CONFIG", str(DEFAULT_CONFIG_PATH)))
    if not explicit and not path.exists():
        path = shipped("arbengine.toml")
    file_values: dict[str, Any] = {}
    if path.exists():
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"{path}: settings file not found")

    sections = _section_types()
    for section_name, section_values in file_values.items():
        if section_name not in sections:
            known = ", ".join(sorted(sections))
            raise ConfigError(
                f"{path}: unknown section [{section_name}] (expected one of: {known})"
            )
        if not isinstance(section_values, dict):
            raise ConfigError(f"{path}: {section_name} must be a [{section_name}] table")
        kinds = _field_kinds(sections[section_name])
        for key in section_values:
            if key not in kinds:
                raise ConfigError(f"{path}: [{section_name}] {key}: unknown key")

    env_values, origin = _env_overrides(env, sections)
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in file_values.items()}
    for section_name, section_values in env_values.items():
        merged.setdefault(section_name, {}).update(section_values)

    try:
        return msgspec.convert(merged, type=Settings, strict=False, dec_hook=decode_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, path, origin, merged, sections)) from None


def _explain(
    exc: msgspec.ValidationError,
    path: Path,
    origin: dict[tuple[str, str], str],
    merged: dict[str, dict[str, Any]],
    sections: dict[str, type[_Section]],
) -> str:
    """``ARB_HTTP_PORT (http.port): expected an integer ≤ 65535 (got '70000')``: the key from
    msgspec's error path, what it needs from its declared type."""
    keys = _error_path(exc)
    if len(keys) < 2:
        # A section's own check (``__post_init__``): the message is ours, msgspec adds the path;
        # a check across sections (``Settings.__post_init__``) names its keys itself.
        ours = _ERROR_PATH.sub("", str(exc))
        return f"settings [{keys[0]}]: {ours}" if keys else f"settings: {ours}"
    section, key = keys[0], keys[1]
    section_type = sections[section]
    where = origin.get((section, key))
    label = f"{where} ({section}.{key})" if where else f"{path}: [{section}] {key}"
    got = merged.get(section, {}).get(key)
    shown = REDACTED if key in section_type.SECRETS else repr(got)
    return f"{label}: {_expected(_field_kinds(section_type)[key], got)} (got {shown})"
