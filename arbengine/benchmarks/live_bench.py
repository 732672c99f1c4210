"""``arbengine bench live``: how fast a signal becomes a protected position, and how fast
the stop moves to breakeven after TP1.

Everything is the daemon's own, in one process on uvloop: the simulated exchange on
loopback (manual clock, added latency 0), the ``LiveExecutor`` with its signed REST client
over real sockets, its poll loop (``LivePolling``) fed by the user data stream
(``UserStream``) as ``app.py`` wires them, and the live records in PostgreSQL (a private
embedded server, or ``--database-url``). ``--signals`` long signals of ``--strategy``
(v52: stop and TP1 1.5 ATR away, TP2 3 ATR; the bench's ATR is 0.5 % of the price) are
handed to the executor one after another, taking turns on ``--symbols``. Each trade:

1. the signal is handed over (``executor.on_signal``, as the daemon's ``live.signals``
   does): entry, then stop-loss, TP1 and TP2 on the algo endpoint;
2. the symbol's price jumps ``--shock-bps`` (past TP1, short of TP2) in the next
   simulated second: TP1 fills, the user stream reports it, the executor places the
   breakeven stop, then cancels the first stop;
3. the trade is flattened, the price jumps back, and the next signal comes after
   ``--pause`` seconds (each measurement starts on a quiet loop).

Where the times are taken, all on one clock (``time.perf_counter``):

- the client's side of the wire, through an aiohttp ``TraceConfig`` on the executor's
  HTTP session (a hook at the transport, nothing of ours replaced): a request is "on the
  wire" when aiohttp writes it to the socket (``on_request_headers_sent``; these calls
  have no body, so the request is complete), and "acknowledged" when the exchange's answer
  has arrived (``on_request_end``). The client's send time rather than the sim's receive
  time, because the sim runs in the same event loop: when its handler starts says more
  about the loop's queue than about the executor, and the send time is the last moment
  the executor controls (on a real link, one-way transit comes on top);
- signal → entry on the wire: from ``on_signal`` called to the entry order written;
- entry fill → stop-loss acknowledged: from the entry's answer (a MARKET order answers
  ``FILLED``: the executor learns of its fill there) to the stop-loss's answer;
- TP1 fill → breakeven stop acknowledged: from the start of the simulated second in which
  the sim fills TP1 (the sim computes that second synchronously in this loop, so nothing
  of the executor's runs before it ends: an upper bound by the sim's step, well under a
  millisecond) to the breakeven stop's answer: the user stream's report, the hand-over
  and the placement are all inside;
- the breakeven move's duration and unprotected time are the executor's own
  ``trade.breakeven_moved`` events (``live_replace``), read back from ``live_events``.

Targets (issue 14): signal → entry p99 ≤ 20 ms, entry fill → stop-loss acknowledged
p99 ≤ 100 ms; the position never unprotected longer than one round trip during the
breakeven move (0 expected: the new stop is acknowledged before the first is cancelled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import uvloop

from arbengine.benchmarks import bench_database
from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.domain.errors import FatalError
from arbengine.domain.events import Signal
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.user_events import Resync, UserEvent
from arbengine.exchange.user_stream import UserStream
from arbengine.logs import configure_logging
from arbengine.pipeline.signal_pipeline import exit_rule
from arbengine.runtime.clock import SystemClock
from arbengine.settings import DatabaseSettings, ExchangeSettings, shipped
from arbengine.signals.strategy import Strategy, StrategyError, parse_strategy
from arbengine.sim.faults import FaultRequest, LatencySpec
from arbengine.sim.server import SimConfig, SimServer
from arbengine.store.database import open_database
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import ALGO_PATH, ORDER_PATH, ExecutorSettings, LiveExecutor
from arbengine.trading.live_ids import client_id
from arbengine.trading.live_plan import trade_key
from arbengine.trading.live_service import LivePolling
from arbengine.trading.live_trade import TradeState

SIGNAL_TO_ENTRY_P99_MS = 20.0
FILL_TO_STOP_P99_MS = 100.0
ATR_FRACTION = 0.005
"""The bench's ATR, as a fraction of the price: v52's stop and TP1 0.75 % away."""
STEP_MS = 1000
"""The sim's market moves in one-second blocks; a shock applies from the next one."""

WireKey = tuple[str, str, str]
"""(method, path, client id) of an order call."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signals",
        type=int,
        default=80,
        help="signals traded back to back (default 80: ~500 orders, within the share of the "
        "account's 1200 orders a minute the client keeps to; past it orders wait a minute)",
    )
    parser.add_argument(
        "--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT",
        help="symbols the signals take turns on (comma list)",
    )  # fmt: skip
    parser.add_argument(
        "--strategies", default=None,
        help="directory of strategy files (default ./strategies, else the shipped ones)",
    )  # fmt: skip
    parser.add_argument("--strategy", default="v52", help="the strategy traded (default v52)")
    parser.add_argument(
        "--risk-usd", type=float, default=50.0, help="risk per trade in USD (default 50)"
    )
    parser.add_argument(
        "--shock-bps", type=float, default=100.0,
        help="price jump that fills TP1 (default 100: past v52's TP1, short of its TP2)",
    )  # fmt: skip
    parser.add_argument(
        "--pause", type=float, default=0.05, help="seconds of quiet before each step"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds a step may take before failing"
    )
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a private one")
    parser.add_argument("--log-level", default="warning", help="the daemon parts' log level")


# -- the wire, seen from the client ----------------------------------------------------


class WireLog:
    """When each order call was written to the socket and when its answer arrived, from an
    aiohttp ``TraceConfig`` on the executor's session (the first of each, by client id)."""

    def __init__(self) -> None:
        self.sent: dict[WireKey, float] = {}
        self.answered: dict[WireKey, float] = {}
        self._arrivals: dict[WireKey, asyncio.Event] = {}

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_request_headers_sent.append(self._on_sent)
        config.on_request_end.append(self._on_answered)
        return config

    async def answer(self, key: WireKey, timeout_s: float, what: str) -> float:
        """When ``key``'s answer arrived, waiting for it at most ``timeout_s``."""
        if key not in self.answered:
            arrived = self._arrivals.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(arrived.wait(), timeout_s)
            except TimeoutError:
                raise FatalError(f"bench live: no answer to {what} in {timeout_s:g} s") from None
        return self.answered[key]

    def round_trips_ms(self, method: str, path: str) -> list[float]:
        return [
            (self.answered[k] - self.sent[k]) * 1000
            for k in self.answered
            if k[0] == method and k[1] == path and k in self.sent
        ]

    async def _on_sent(
        self, _: aiohttp.ClientSession, __: Any, params: aiohttp.TraceRequestHeadersSentParams
    ) -> None:
        key = _order_key(params.method, params.url)
        if key is not None:
            self.sent.setdefault(key, time.perf_counter())

    async def _on_answered(
        self, _: aiohttp.ClientSession, __: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        key = _order_key(params.method, params.url)
        if key is not None and key not in self.answered:
            self.answered[key] = time.perf_counter()
            arrived = self._arrivals.pop(key, None)
            if arrived is not None:
                arrived.set()


def _order_key(method: str, url: Any) -> WireKey | None:
    path = url.path
    if path not in (ORDER_PATH, ALGO_PATH):
        return None
    query = url.query
    cid = query.get("newClientOrderId") or query.get("clientAlgoId")
    return None if cid is None else (method, path, cid)


# -- the run ---------------------------------------------------------------------------


@dataclass
class _Figures:
    signal_to_entry_ms: list[float] = field(default_factory=list)
    fill_to_stop_ms: list[float] = field(default_factory=list)
    tp1_to_breakeven_ms: list[float] = field(default_factory=list)
    breakeven_round_trip_ms: dict[int, float] = field(default_factory=dict)
    """Trade id → the breakeven stop's placement round trip (the unprotected bound)."""
    moves: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Trade id → its ``trade.breakeven_moved`` detail."""


class _SimMarketClock(SystemClock):
    """The executor's market clock: the sim's (manual) time; waits are wall waits."""

    def __init__(self, sim: SimServer) -> None:
        self._sim = sim

    def time_ms(self) -> int:
        return self._sim.sim_time_ms


def _load_strategy(directory: str | None, name: str) -> Strategy:
    root = Path(directory) if directory else Path("strategies")
    if directory is None and not root.is_dir():
        root = shipped("strategies")
    path = root / f"{name}.json"
    if not path.is_file():
        raise FatalError(f"bench live: no strategy file {path}")
    try:
        return parse_strategy(json.loads(path.read_text()), str(path))
    except (ValueError, StrategyError) as exc:
        raise FatalError(f"bench live: {path}: {exc}") from None


@asynccontextmanager
async def _running(*tasks: tuple[Callable[[], Any], Callable[[], None]]) -> AsyncIterator[None]:
    """Run each ``(run, request_stop)`` as a task for the block; stop them after it."""
    started = [asyncio.create_task(run()) for run, _ in tasks]
    try:
        yield
    finally:
        for _, stop in tasks:
            stop()
        await asyncio.wait(started, timeout=5)
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
    for task in started:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class _Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        sim: SimServer,
        session: aiohttp.ClientSession,
        wire: WireLog,
        executor: LiveExecutor,
        strategy: Strategy,
    ) -> None:
        self.args = args
        self.sim = sim
        self.session = session
        self.wire = wire
        self.executor = executor
        self.strategy = strategy
        self.figures = _Figures()
        self._last_tick = 0

    async def trade(self, n: int, symbol: str) -> int:
        args, wire, executor = self.args, self.wire, self.executor
        timeout = float(args.timeout)
        signal = await self._signal(symbol)
        key = trade_key(signal)
        entry, stop = client_id(key, "entry"), client_id(key, "sl")
        breakeven = client_id(key, "breakeven_sl")

        await asyncio.sleep(args.pause)
        handed_at = time.perf_counter()
        trade_id = await executor.on_signal(signal)
        if trade_id is None:
            raise FatalError(
                f"bench live: signal {n} ({symbol}) was not traded: see live_events "
                "(signal.skipped says why)"
            )
        trade = executor.trade(trade_id)
        if trade is None or trade.state != TradeState.PROTECTED:
            state = "closed" if trade is None else trade.state
            raise FatalError(f"bench live: trade {trade_id} ({symbol}) is {state}, not protected")
        sent = wire.sent[("POST", ORDER_PATH, entry)]
        filled = await wire.answer(("POST", ORDER_PATH, entry), timeout, "the entry")
        stop_acked = await wire.answer(("POST", ALGO_PATH, stop), timeout, "the stop-loss")
        self.figures.signal_to_entry_ms.append((sent - handed_at) * 1000)
        self.figures.fill_to_stop_ms.append((stop_acked - filled) * 1000)

        await asyncio.sleep(args.pause)
        step_started = await self._fill(symbol, client_id(key, "tp1"))
        acked = await wire.answer(("POST", ALGO_PATH, breakeven), timeout, "the breakeven stop")
        await wire.answer(("DELETE", ALGO_PATH, stop), timeout, "the first stop's cancel")
        self.figures.tp1_to_breakeven_ms.append((acked - step_started) * 1000)
        be_sent = wire.sent[("POST", ALGO_PATH, breakeven)]
        self.figures.breakeven_round_trip_ms[trade_id] = (acked - be_sent) * 1000

        await asyncio.sleep(args.pause)
        await executor.flatten(trade_id)
        await self._until(lambda: executor.trade(trade_id) is None, f"trade {trade_id} closed")
        await self._shock(symbol, -float(args.shock_bps))
        await self.sim.advance_by(2 * STEP_MS)
        return trade_id

    async def _fill(self, symbol: str, tp1: str) -> float:
        """Jump the price past TP1 and step the sim one second at a time until TP1 has
        filled there; when that second's step started."""
        await self._shock(symbol, float(self.args.shock_bps))
        for _ in range(3):
            started = time.perf_counter()
            await self.sim.advance_by(STEP_MS)
            algo = self.sim.account.algo_by_client.get(tp1)
            if algo is not None and algo.status == "FINISHED":
                return started
        raise FatalError(
            f"bench live: a {self.args.shock_bps:g} bps jump of {symbol} did not fill TP1"
        )

    async def _signal(self, symbol: str) -> Signal:
        async with self.session.get(
            f"{self.sim.rest_url}/fapi/v1/ticker/price", params={"symbol": symbol}
        ) as response:
            price = float((await response.json())["price"])
        tick = max(self.sim.sim_time_ms, self._last_tick + 1)
        self._last_tick = tick
        return Signal(
            tick_ms=tick,
            symbol=symbol,
            strategy=self.strategy.name,
            strategy_hash=self.strategy.hash,
            direction=1,
            score=100.0,
            coverage=100.0,
            price=price,
            atr=price * ATR_FRACTION,
            features={},
            contributions={},
        )

    async def _shock(self, symbol: str, bps: float) -> None:
        """Jump the price from the next simulated second the sim generates."""
        async with self.session.post(
            f"{self.sim.control_url}/market", json={"symbol": symbol, "shock_bps": bps}
        ) as response:
            if response.status != 200:
                raise FatalError(f"bench live: the sim refused a shock: {await response.text()}")

    async def _until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.perf_counter() + float(self.args.timeout)
        while not done():
            if time.perf_counter() > deadline:
                raise FatalError(f"bench live: {what}: not within {self.args.timeout:g} s")
            await asyncio.sleep(0.005)


async def _bench(args: argparse.Namespace) -> tuple[_Figures, dict[str, Any]]:
    configure_logging(str(args.log_level))
    symbols = tuple(s.strip().upper() for s in str(args.symbols).split(",") if s.strip())
    if not symbols or int(args.signals) < 1:
        raise FatalError("bench live: --signals must be at least 1 and --symbols not empty")
    strategy = _load_strategy(args.strategies, str(args.strategy))
    config = SimConfig(
        port=0,
        manual=True,
        symbols=symbols,
        history_days=0,
        faults=FaultRequest(latency=LatencySpec(rest_ms=0, ws_ms=0)),
    )
    async with (
        bench_database(args.database_url) as url,
        open_database(DatabaseSettings(url=url), owner=False) as db,
        SimServer(config) as sim,
    ):
        await sim.advance_by(10 * STEP_MS)  # a market to trade in
        wire = WireLog()
        async with aiohttp.ClientSession(trace_configs=[wire.trace_config()]) as session:
            rest = BinanceRest(
                session,
                sim.rest_url,
                api_key=sim.config.api_key,
                api_secret=sim.config.api_secret,
                weight_safety=ExchangeSettings().weight_safety,
            )
            await rest.sync_time()
            settings = ExecutorSettings(
                strategies=frozenset({strategy.name}),
                risk_per_trade_usd=Decimal(str(args.risk_usd)),
                max_positions=len(symbols),
                leverage=5,
            )
            records = LiveRecords(db)
            executor = LiveExecutor(
                rest,
                records,
                settings,
                {strategy.name: exit_rule(strategy)},
                clock=_SimMarketClock(sim),
            )
            await executor.load_rules(symbols)  # as the daemon does at start
            polling = LivePolling(executor, settings.poll_interval_s)
            connected = asyncio.Event()

            async def on_event(event: UserEvent) -> None:
                if isinstance(event, Resync):
                    connected.set()
                await polling.on_event(event)

            stream = UserStream(rest, sim.private_ws_url, on_event, session=session)
            bench = _Bench(args, sim, session, wire, executor, strategy)
            started = datetime.now(UTC)
            trade_ids: list[int] = []
            async with _running(
                (stream.run, stream.request_stop), (polling.run, polling.request_stop)
            ):
                try:
                    await asyncio.wait_for(connected.wait(), float(args.timeout))
                except TimeoutError:
                    raise FatalError("bench live: the user data stream did not connect") from None
                for n in range(int(args.signals)):
                    trade_ids.append(await bench.trade(n, symbols[n % len(symbols)]))
            events = await records.events_between(
                started - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1)
            )
            wanted = set(trade_ids)
            for event in events:
                trade_id = event.detail.get("trade_id")
                if event.kind == "trade.breakeven_moved" and trade_id in wanted:
                    assert isinstance(trade_id, int)
                    bench.figures.moves[trade_id] = event.detail
            round_trips = wire.round_trips_ms("POST", ALGO_PATH) + wire.round_trips_ms(
                "POST", ORDER_PATH
            )
    params: dict[str, Any] = {
        "signals": int(args.signals),
        "symbols": ",".join(symbols),
        "strategy": f"{strategy.name} ({strategy.hash[:12]})",
        "sim": "in process, loopback, manual clock, added latency 0",
        "times": "client side of the wire (aiohttp trace): written to the socket, answer in",
        "order_round_trip_p50_ms": round(_pct(round_trips, 50), 3),
    }
    return bench.figures, params


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _spread(metric: str, values: list[float], target_p99: float | None) -> list[BenchRow]:
    rows = [BenchRow(f"{metric} p{q}", _pct(values, q), "ms") for q in (50, 90)]
    p99 = _pct(values, 99)
    if target_p99 is None:
        rows.append(BenchRow(f"{metric} p99", p99, "ms"))
    else:
        rows.append(BenchRow(f"{metric} p99", p99, "ms", f"<= {target_p99:g}", p99 <= target_p99))
    rows.append(BenchRow(f"{metric} max", max(values, default=float("nan")), "ms"))
    return rows


def report(figures: _Figures, params: dict[str, Any]) -> BenchReport:
    moves = figures.moves
    unprotected = {t: float(d["unprotected_ms"]) for t, d in moves.items()}
    replace = [float(d["replace_ms"]) for d in moves.values()]
    within_round_trip = all(
        unprotected.get(t, float("inf")) <= rt for t, rt in figures.breakeven_round_trip_ms.items()
    )
    traded = len(figures.signal_to_entry_ms)
    return BenchReport(
        name="live",
        params=params,
        rows=[
            BenchRow("signals traded", float(traded), "trades"),
            *_spread("signal -> entry order on the wire", figures.signal_to_entry_ms,
                     SIGNAL_TO_ENTRY_P99_MS),
            *_spread("entry fill -> stop-loss acknowledged", figures.fill_to_stop_ms,
                     FILL_TO_STOP_P99_MS),
            *_spread("TP1 fill -> breakeven stop acknowledged", figures.tp1_to_breakeven_ms,
                     None),
            BenchRow(
                "breakeven moves recorded (trade.breakeven_moved)", float(len(moves)), "trades",
                f"= {traded}", len(moves) == traded,
            ),
            BenchRow("breakeven replace p99", _pct(replace, 99), "ms"),
            BenchRow(
                "unprotected during the breakeven move, max",
                max(unprotected.values(), default=float("nan")), "ms",
                "<= one round trip (0 expected)", bool(moves) and within_round_trip,
            ),
        ],
    )  # fmt: skip


def run(args: argparse.Namespace) -> BenchReport:
    figures, params = uvloop.run(_bench(args))
    return report(figures, params)
