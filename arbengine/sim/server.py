"""The embeddable simulated exchange: one aiohttp server on one port serving everything.

``async with SimServer(SimConfig(port=0)) as sim:`` binds, starts the clock and
serves until the block exits::

    sim.rest_url        http://127.0.0.1:PORT            (/fapi/…, /futures/data/…)
    sim.market_ws_url   ws://127.0.0.1:PORT/market   (<base>/ws/<s>, <base>/stream?streams=a/b)
    sim.private_ws_url  ws://127.0.0.1:PORT/private  (<base>/ws/<listenKey>, <base>/ws?listenKey=…)
    sim.coinbase_url    http://127.0.0.1:PORT/coinbase   (<base>/products/BTC-USD/ticker)
    sim.control_url     http://127.0.0.1:PORT/_sim       (faults, clock, state: see control.py)

The legacy root paths ``/ws/…`` and ``/stream`` also serve market streams (and a
listen key given there serves the user stream, as the old Binance host did).

Three clock modes (``SimConfig``): realtime at ``speed``× (default 1×), as fast as
possible (``speed=0``; time only moves while a market client is connected, and
as fast as the slowest one drains), and manual (``manual=True``; time moves only
on ``await sim.advance_to(t)`` or ``POST /_sim/clock``), which makes stream and
REST contents exact for tests.

``GET /fapi/v1/time`` answers *server time*, which runs at wall-clock pace
(equal to simulated time at start) and is what signed timestamps are checked
against, so a client that syncs its offset once stays valid at any speed and in
manual mode; market timestamps (trade ``T``, mark ``E``, funding) are simulated
time.

In-process accessors for tests: ``sim.tape(symbol)`` (columnar tape; rows up to
``released`` are exactly what the stream has sent), ``sim.market`` (books: marks,
funding, liquidations), ``sim.account`` (positions, orders, fills, income),
``sim.state()``, ``sim.apply_faults(FaultRequest)``, ``await sim.advance_to(t)``;
``await sim.wait()`` serves until ``stop()`` (for a supervisor).

History is bounded (``retention``): trades older than ``trade_history_ms`` of
simulated time (26 h) are forgotten, and REST answers about them as Binance does
about data past its history, so a sim left running keeps a steady size.

Each clock step is synchronous: the market releases what the new time reveals,
the account reacts (triggers, funding, liquidation), the hub queues frames and
flushes them. REST handlers run between steps, so every request sees one
consistent instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from arbengine.logs import get_logger
from arbengine.sim.account import Account
from arbengine.sim.control import add_control_routes
from arbengine.sim.faults import FaultRequest, FaultState
from arbengine.sim.limits import LimitConfig, RateLimiter
from arbengine.sim.listenkeys import ListenKeys
from arbengine.sim.market_model import (
    BLOCK_MS,
    Market,
    ModelParams,
    Release,
    SyntheticMarket,
    agg_trade_payloads,
    liquidation_payload,
    mark_payload,
)
from arbengine.sim.market_summaries import trade_payloads
from arbengine.sim.recording_replay import ReplayMarket
from arbengine.sim.request_auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from arbengine.sim.requests import RequestLog
from arbengine.sim.rest_api import RestApi
from arbengine.sim.retention import MAX_TRADES, TRADE_HISTORY_MS, Retention
from arbengine.sim.sim_clock import ClockMode, SimClock, wall_ms
from arbengine.sim.symbols import DEFAULT_SYMBOLS, spec_for
from arbengine.sim.trade_history import TradeHistory
from arbengine.sim.wshub import Hub, WsRules, canonical_stream


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 9000
    """0 picks a free port (read it back from ``SimServer.port``)."""
    seed: int = 1
    speed: float = 1.0
    """Simulated seconds per wall second; 0 (or inf) means as fast as clients drain."""
    manual: bool = False
    """Time moves only when asked (tests): ``advance_to`` / ``POST /_sim/clock``."""
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    trade_rate: float = 20.0
    """aggTrades per simulated second per symbol in the calm regime (×3 when volatile)."""
    trade_rates: Mapping[str, float] = field(default_factory=dict)
    """Per-symbol overrides of ``trade_rate``."""
    start_ms: int | None = None
    """Simulated start (epoch ms, rounded down to the second); None is now."""
    replay: str | None = None
    """Serve this recorded combined-stream file instead of the synthetic market."""
    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    balance: str = "10000"
    leverage: int = 20
    taker_fee: str = "0.0005"
    maker_fee: str = "0.0002"
    volatility: float = 1.0
    """Multiplier of every symbol's volatility."""
    liquidations: float = 1.0
    """Multiplier of the chance of a liquidation in any second (capped at one a second)."""
    history_days: int = 30
    funding_interval_hours: Mapping[str, int] = field(default_factory=dict)
    limits: LimitConfig = field(default_factory=LimitConfig)
    check_timestamps: bool = True
    listen_key_ttl_s: float = 3600.0
    ws: WsRules = field(default_factory=WsRules)
    trade_history_ms: int = TRADE_HISTORY_MS
    """Simulated time of trades kept per symbol: REST history reaches back this far."""
    max_tape: int = MAX_TRADES
    """Trades kept per symbol at most, whatever ``trade_history_ms`` allows (≈ 49 bytes each)."""
    tick_s: float = 0.01
    """Realtime clock resolution (wall seconds between steps)."""
    max_step_messages: int = 4096
    """As-fast-as-possible mode: aim for this many aggTrades per step."""
    faults: FaultRequest | None = None
    """Faults in force from the start (same schema as ``POST /_sim/faults``)."""

    @property
    def retention(self) -> Retention:
        return Retention(trades_ms=self.trade_history_ms, max_trades=self.max_tape)

    @property
    def clock_mode(self) -> ClockMode:
        if self.manual:
            return ClockMode.MANUAL
        if self.speed <= 0 or math.isinf(self.speed):
            return ClockMode.MAX
        return ClockMode.REALTIME


class _View:
    """The account's window on the market."""

    def __init__(self, market: Market) -> None:
        self._market = market

    def now_ms(self) -> int:
        return self._market.now_ms

    def quote(self, symbol: str) -> tuple[int, int]:
        return self._market.books[symbol].quote()

    def mark(self, symbol: str) -> float:
        return self._market.books[symbol].latest_mark().mark


class SimServer:
    def __init__(
        self, config: SimConfig | None = None, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        """``wall_clock`` (epoch seconds) times the rate-limit windows; tests may pin it."""
        self.config = config = config or SimConfig()
        self.wall = wall_clock
        self.log = get_logger("sim")
        wall_at_start = wall_ms()
        start = config.start_ms if config.start_ms is not None else wall_at_start
        start = start // BLOCK_MS * BLOCK_MS
        self.market: Market
        if config.replay:
            self.market = ReplayMarket(
                config.replay, config.seed, config.history_days, config.retention
            )
            start = self.market.start_ms
        else:
            specs = [
                spec_for(s, config.funding_interval_hours.get(s.upper())) for s in config.symbols
            ]
            rates = {s.symbol: config.trade_rates.get(s.symbol, config.trade_rate) for s in specs}
            self.market = SyntheticMarket(
                specs,
                start,
                config.seed,
                rates,
                config.volatility,
                config.history_days,
                config.retention,
                ModelParams().with_liquidations(config.liquidations),
            )
        self.start_ms = start
        # From the reading ``start`` was taken from: the market's construction in between
        # (its history) must not put the signing clock a second behind the wall's.
        self._time_offset = start - wall_at_start
        self.clock = SimClock(start, config.clock_mode, config.speed)
        self.faults = FaultState()
        self.delisted: set[str] = set()
        """Symbols taken off the exchange at run time: -1121 on REST, silence on streams."""
        self.limiter = RateLimiter(config.limits)
        self.requests = RequestLog()
        """REST calls answered, per path and status, and when (for tests of a client's pacing)."""
        self.account = Account(
            self.market.specs,
            _View(self.market),
            Decimal(config.balance),
            config.leverage,
            Decimal(config.taker_fee),
            Decimal(config.maker_fee),
        )
        self.listen_keys = ListenKeys(config.listen_key_ttl_s, config.seed)
        self.hub = Hub(
            self.faults,
            config.ws,
            self.log,
            lambda: self.market.now_ms,
            lambda k: self.listen_keys.valid(k, time.monotonic()),
        )
        self._streams = {
            sym: (
                f"{sym.lower()}@aggTrade",
                f"{sym.lower()}@markPrice",
                f"{sym.lower()}@markPrice@1s",
                f"{sym.lower()}@forceOrder",
            )
            for sym in self.market.symbols
        }
        self._trade_streams = {sym: f"{sym.lower()}@trade" for sym in self.market.symbols}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()
        self.port = 0
        self.steps = 0
        if config.faults is not None:
            self.apply_faults(config.faults)

    # ==== lifecycle ============================================================================

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(middlewares=[], client_max_size=1 << 20)
        self.rest = RestApi(self)
        self.rest.add_routes(app)
        add_control_routes(app, self)
        # A call held by a "hang" fault must not hold shutdown for aiohttp's default minute.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._tasks = [
            asyncio.create_task(self._run_clock(), name="sim.clock"),
            asyncio.create_task(self._housekeeping(), name="sim.housekeeping"),
        ]
        self.log.info(
            "sim.started",
            rest=self.rest_url,
            market_ws=self.market_ws_url,
            private_ws=self.private_ws_url,
            coinbase=self.coinbase_url,
            control=self.control_url,
            mode=str(self.clock.mode),
            speed=self.config.speed,
            symbols=self.market.symbols,
            start_ms=self.start_ms,
            replay=self.config.replay,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.hub.drop("all", "abort")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._stopped.set()

    async def wait(self) -> None:
        """Serve until ``stop()`` or cancellation (a supervised task); a crashed clock raises."""
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            done, _ = await asyncio.wait(
                [*self._tasks, stopped], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        for task in done:
            if task is not stopped and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    # ==== URLs =================================================================================

    @property
    def _host(self) -> str:
        host = self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    @property
    def rest_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def market_ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}/market"

    @property
    def private_ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}/private"

    @property
    def coinbase_url(self) -> str:
        return f"http://{self._host}:{self.port}/coinbase"

    @property
    def control_url(self) -> str:
        return f"http://{self._host}:{self.port}/_sim"

    def urls(self) -> dict[str, str]:
        return {
            "rest": self.rest_url,
            "market_ws": self.market_ws_url,
            "private_ws": self.private_ws_url,
            "coinbase": self.coinbase_url,
            "control": self.control_url,
        }

    # ==== accessors for tests and the control endpoint =========================================

    def server_time_ms(self) -> int:
        """The signing clock: wall time shifted so that it equals simulated time at start."""
        return wall_ms() + self._time_offset

    @property
    def sim_time_ms(self) -> int:
        return self.market.now_ms

    def tape(self, symbol: str) -> TradeHistory:
        """The symbol's full tape (``released`` rows are what the stream has sent)."""
        return self.market.books[symbol.upper()].tape

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        symbols = {}
        for sym, book in self.market.books.items():
            mark = book.latest_mark()
            bid, ask = book.quote()
            symbols[sym] = {
                "first_id": book.tape.first_id,
                "last_id": book.tape.last_id,
                "trades": book.tape.released,
                "trades_forgotten": book.tape.forgotten,
                "history_bytes": book.nbytes,
                "bid": bid / book.spec.price_scale,
                "ask": ask / book.spec.price_scale,
                "mark": mark.mark,
                "funding_rate": mark.rate,
                "next_funding_time": mark.next_funding,
                "volatile": self.market.volatile(sym),
                "liquidations": book.liquidations_published,
                "listed": sym not in self.delisted,
            }
        return {
            "mode": str(self.clock.mode),
            "speed": self.clock.speed,
            "paused": self.clock.paused,
            "sim_time_ms": self.market.now_ms,
            "server_time_ms": self.server_time_ms(),
            "start_ms": self.start_ms,
            "replay": self.config.replay,
            "replay_finished": getattr(self.market, "finished", None),
            "symbols": symbols,
            "connections": {
                "market": sum(1 for c in self.hub.conns if c.kind == "market"),
                "private": sum(1 for c in self.hub.conns if c.kind == "private"),
                "user_stream": len(self.hub.user_conns),
            },
            "messages_sent": self.hub.messages_sent,
            "requests": self.requests.counts(),
            "faults": self.faults.snapshot(now),
            "account": self.account.account(version=3),
            "urls": self.urls(),
        }

    def delist(self, symbol: str) -> None:
        """Take ``symbol`` off the exchange: gone from exchangeInfo, -1121 on every market-data
        call, nothing more on its streams (its market keeps moving, unseen)."""
        self.delisted.add(symbol)
        self.log.info("sim.symbol_delisted", symbol=symbol)

    def move_price(self, symbol: str, pct: float) -> None:
        """Move ``symbol``'s price level by ``pct`` percent now (``POST /_sim/market``); the
        account reacts to the new mark as to any (stops, liquidation)."""
        self.market.move(symbol, pct)
        mark = self.market.books[symbol].latest_mark().mark
        if self.account.algos:
            self.account.on_price(symbol, "MARK_PRICE", Decimal(f"{mark:.8f}"))
        self.account.check_liquidation()
        self.hub.publish_user(self.account.drain())
        self.hub.flush()
        self.log.info("sim.market.moved", symbol=symbol, move_pct=pct, mark=mark)

    def apply_faults(self, req: FaultRequest) -> dict[str, Any]:
        """Apply a control message (see faults.py); the resulting state."""
        now = time.monotonic()
        silences = req.silence if isinstance(req.silence, list) else [req.silence]
        for spec in silences:
            if spec and spec.symbol and spec.symbol.upper() not in self.market.books:
                raise ValueError(f"silence: unknown symbol {spec.symbol}")
        self.faults.apply(req, now)
        if req.drop_ws is not None:
            n = self.hub.drop(req.drop_ws.which, req.drop_ws.mode)
            self.log.info("sim.fault.drop_ws", connections=n, mode=req.drop_ws.mode)
        if req.malformed is not None and self.hub.conns:
            self.hub.inject_malformed(self.faults.malformed, self.faults.malformed_kind)
            self.faults.malformed = 0
        if req.expire_listen_key:
            for key in self.listen_keys.expire_all():
                self._listen_key_expired(key)
        if req.slippage is not None:
            sym = req.slippage.symbol.upper()
            if sym not in self.market.books:
                raise ValueError(f"slippage: unknown symbol {sym}")
            self.account.slippage_bps[sym] = req.slippage.bps
        if req.ban is not None:
            self.limiter.ban("127.0.0.1", self.wall(), req.ban.seconds)
        self.log.info("sim.fault.set", request=orjson.loads(orjson.dumps(_struct(req))))
        return self.faults.snapshot(now)

    # ==== the clock ============================================================================

    def _step(self, to_ms: int) -> None:
        release = self.market.advance(to_ms)
        self._account_on(release)
        self._publish(release)
        self.hub.check_ages(self.market.now_ms)
        self.hub.flush()
        self.steps += 1

    def _advance_sync(self, target: int, max_blocks: int | None = None) -> bool:
        """Step to ``target`` a block at a time; False when ``max_blocks`` stopped it early."""
        blocks = 0
        while self.market.now_ms < target:
            nxt = min(target, (self.market.now_ms // BLOCK_MS + 1) * BLOCK_MS)
            self._step(nxt)
            blocks += 1
            if max_blocks is not None and blocks >= max_blocks:
                return self.market.now_ms >= target
        return True

    async def advance_to(self, t_ms: int) -> int:
        """Manual (or paused) clock: generate and publish everything up to ``t_ms``."""
        if self.clock.mode is not ClockMode.MANUAL and not self.clock.paused:
            raise ValueError("advance needs the manual clock, or a paused realtime clock")
        async with self._lock:
            # Yield between chunks so sockets keep moving during a long advance.
            done = False
            while not done:
                done = self._advance_sync(t_ms, max_blocks=200)
                await asyncio.sleep(0)
            self.clock.set_ms(self.market.now_ms)
        return self.market.now_ms

    async def advance_by(self, ms: int) -> int:
        return await self.advance_to(self.market.now_ms + ms)

    async def _run_clock(self) -> None:
        mode = self.clock.mode
        if mode is ClockMode.MANUAL:
            await asyncio.get_running_loop().create_future()  # time moves only when asked
        if mode is ClockMode.MAX:
            await self._run_max()
            return
        tick = self.config.tick_s
        while True:
            if not self.clock.paused and not self.faults.hanging("ws", time.monotonic()):
                target = self.clock.target_ms()
                async with self._lock:
                    done = self._advance_sync(target, max_blocks=50)
                if not done:
                    await asyncio.sleep(0)
                    continue
            await asyncio.sleep(tick)

    def _max_step_ms(self) -> int:
        total = sum(self.market.trade_rates.values()) or 1.0
        return max(1, min(BLOCK_MS, int(self.config.max_step_messages * 1000 / (total * 1.5))))

    async def _run_max(self) -> None:
        step = self._max_step_ms()
        while True:
            if not self.hub.market_conns():
                self.hub.market_joined.clear()
                await self.hub.market_joined.wait()
                continue
            if self.clock.paused:
                await asyncio.sleep(0.01)
                continue
            if self.faults.hanging("ws", time.monotonic()):
                await asyncio.sleep(0.01)
                continue
            async with self._lock:
                target = self.market.now_ms + step
                self._advance_sync(target)
                self.clock.set_ms(self.market.now_ms)
            await self.hub.backpressure()
            await asyncio.sleep(0)

    async def _housekeeping(self) -> None:
        next_ping = time.monotonic() + self.config.ws.ping_interval_s
        while True:
            await asyncio.sleep(min(1.0, self.config.ws.ping_interval_s))
            now = time.monotonic()
            for key in self.listen_keys.expire_due(now):
                self._listen_key_expired(key)
            if now >= next_ping:
                self.hub.ping_all()
                next_ping = now + self.config.ws.ping_interval_s

    def _listen_key_expired(self, key: str) -> None:
        self.log.info("sim.listen_key.expired")
        now = self.market.now_ms
        self.hub.publish_user(
            [{"e": "listenKeyExpired", "E": now, "listenKey": key}], listen_key=key
        )
        self.hub.flush()

    # ==== what a step does =====================================================================

    def _account_on(self, release: Release) -> None:
        acc = self.account
        for sr in release.symbols:
            if acc.algos and sr.hi > sr.lo:
                thresholds = acc.algo_thresholds(sr.symbol, "CONTRACT_PRICE")
                if thresholds:
                    self._contract_triggers(sr.symbol, sr.lo, sr.hi)
            for point in sr.marks:
                if acc.algos:
                    acc.on_price(sr.symbol, "MARK_PRICE", Decimal(f"{point.mark:.8f}"))
                acc.check_liquidation()
            for f in sr.fundings:
                acc.on_funding(f.symbol, f.t, f.rate, f.mark)
        events = acc.drain()
        if events:
            self.hub.publish_user(events)

    def _contract_triggers(self, symbol: str, lo: int, hi: int) -> None:
        book = self.market.books[symbol]
        prices = book.tape.cols(lo, hi).price
        scale = book.spec.price_scale
        hits: list[int] = []
        for otype, side, trigger in self.account.algo_thresholds(symbol, "CONTRACT_PRICE"):
            units = int(trigger * scale)
            stop = otype.startswith("STOP")
            mask = prices >= units if (side == "BUY") == stop else prices <= units
            idx = mask.nonzero()[0]
            if len(idx):
                hits.append(int(idx[0]))
        for i in sorted(set(hits)):
            price = Decimal(int(prices[i])).scaleb(-book.spec.price_precision)
            self.account.on_price(symbol, "CONTRACT_PRICE", price)

    def _publish(self, release: Release) -> None:
        hub = self.hub
        if release.passthrough is not None:
            self._publish_passthrough(release.passthrough)
            return
        arr: list[bytes] = []
        arr_3s: list[bytes] = []
        now = time.monotonic()
        arrays_wanted = hub.has_subscribers("!markPrice@arr@1s") or hub.has_subscribers(
            "!markPrice@arr"
        )
        for sr in release.symbols:
            if sr.symbol in self.delisted:
                continue
            if self.faults.silent("market", now, sr.symbol):
                self.faults.silenced_messages += (
                    sr.hi - sr.lo + len(sr.marks) + len(sr.liquidations)
                )
                continue
            agg, mark3, mark1, force = self._streams[sr.symbol]
            marks_wanted = arrays_wanted or hub.has_subscribers(mark1) or hub.has_subscribers(mark3)
            book = self.market.books[sr.symbol]
            if sr.hi > sr.lo and hub.has_subscribers(agg):
                payloads, ids = agg_trade_payloads(book.spec, book.tape.cols(sr.lo, sr.hi))
                hub.publish(agg, payloads, ids, sr.symbol)
            trade = self._trade_streams[sr.symbol]
            if sr.hi > sr.lo and hub.has_subscribers(trade):
                hub.publish(trade, trade_payloads(book.spec, book.tape.cols(sr.lo, sr.hi)))
            # Formatted only for a listener (none during the long advance before clients).
            if marks_wanted:
                for point in sr.marks:
                    payload = orjson.dumps(mark_payload(point))
                    hub.publish(mark1, [payload])
                    arr.append(payload)
                    if (point.t // 1000) % 3 == 0:
                        hub.publish(mark3, [payload])
                        arr_3s.append(payload)
            for liq in sr.liquidations:
                payload = orjson.dumps(liquidation_payload(book.spec, liq))
                hub.publish(force, [payload])
                hub.publish("!forceOrder@arr", [payload])
        if arr and hub.has_subscribers("!markPrice@arr@1s"):
            hub.publish("!markPrice@arr@1s", [b"[" + b",".join(arr) + b"]"])
        if arr_3s and hub.has_subscribers("!markPrice@arr"):
            hub.publish("!markPrice@arr", [b"[" + b",".join(arr_3s) + b"]"])

    def _publish_passthrough(self, items: list[tuple[str, bytes, int]]) -> None:
        now = time.monotonic()
        i = 0
        n = len(items)
        while i < n:
            stream = canonical_stream(items[i][0])
            j = i
            while j < n and canonical_stream(items[j][0]) == stream:
                j += 1
            run = items[i:j]
            i = j
            prefix = stream.partition("@")[0].upper()
            if self.faults.silent("market", now, None if prefix.startswith("!") else prefix):
                self.faults.silenced_messages += len(run)
                continue
            ids = [a for _, _, a in run]
            symbol = prefix if all(a >= 0 for a in ids) else None
            self.hub.publish(stream, [p for _, p, _ in run], ids if symbol else None, symbol)


def _struct(obj: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(obj)
