"""The notifier's half of ``arbengine bench risk`` (``risk_bench`` runs it): does 1,000
alerts a second slow the engine's tick?

One event loop, as in the daemon: the signal core evaluates a tick every
``--tick-interval`` (its 15 s ticks, compressed) while, in the second phase, a
publisher puts ``--events-per-s`` alerts into a notifier whose two sinks (Discord
embeds and the JSON webhook) drain into a receiver on loopback. Reported per phase:
the tick's compute time (p50, p99) and how late each tick started (event-loop lag,
p99: what the notifier's sending could add), and for the notifier the cost of one
``publish`` (p99), the alerts delivered, dropped (Discord takes a few messages a
second: its queue drops its oldest, as designed) and given up.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import orjson
from aiohttp import web

from arbengine.benchmarks.bench_report import BenchRow
from arbengine.benchmarks.engine_bench import (
    HOUR_MS,
    T0_MS,
    TICK_MS,
    _Gen,
    _indicators,
    _profile,
    _strategy_set,
    _symbols,
)
from arbengine.domain.events import Signal
from arbengine.notify.alerts import signal_alert
from arbengine.notify.notifier import Notifier, discord_webhook, json_webhook
from arbengine.signals.signal_core import SignalCore

PUBLISH_PERIOD_S = 0.01


@dataclass(frozen=True)
class NotifyFigures:
    events_per_s: int
    published: int
    delivered: int
    dropped: int
    given_up: int
    publish_p99_us: float
    tick_p50_ms_without: float
    tick_p99_ms_without: float
    tick_p50_ms_with: float
    tick_p99_ms_with: float
    lag_p99_ms_without: float
    lag_p99_ms_with: float


class _Receiver:
    """Counts the alerts posted to it (Discord embeds, JSON alerts); answers 204."""

    def __init__(self) -> None:
        self.alerts = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.alerts += len(body.get("embeds") or body.get("alerts") or ())
        return web.Response(status=204)


@asynccontextmanager
async def _receiving() -> AsyncIterator[tuple[_Receiver, str]]:
    receiver = _Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield receiver, f"http://127.0.0.1:{port}/api/webhooks/1/bench"
    finally:
        await runner.cleanup()


class _Engine:
    """The signal core at ``history_h`` of synthetic history, fed tick by tick."""

    def __init__(self, symbols: int, history_h: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.symbols = _symbols(symbols)
        strategies, _ = _strategy_set("strategies", self.symbols)
        self.core = SignalCore(strategies)
        rates = _profile(symbols, 3_000_000)
        self.gens = [
            _Gen(s, self.rng, rate / 86_400_000, 100.0 if i else 30000.0, 0.01 if i else 0.1, 1)
            for i, (s, rate) in enumerate(zip(self.symbols, rates, strict=True))
        ]
        for h in range(history_h):
            for gen in self.gens:
                self.core.add_trades(gen.trades(T0_MS + h * HOUR_MS, T0_MS + (h + 1) * HOUR_MS))
            for symbol in self.symbols:
                _indicators(self.core, symbol, T0_MS + (h + 1) * HOUR_MS - 1000, self.rng)
        self.t = T0_MS + history_h * HOUR_MS
        self.tick()  # the first tick builds the large-order tails: not a steady one

    def tick(self) -> float:
        """Feed the next 15 s and evaluate it; the evaluation's milliseconds."""
        self.t += TICK_MS
        for symbol, gen in zip(self.symbols, self.gens, strict=True):
            self.core.add_trades(gen.trades(self.t - TICK_MS + 500, self.t + 500))
            _indicators(self.core, symbol, self.t - 1000, self.rng)
        began = time.perf_counter()
        self.core.evaluate(self.t)
        return (time.perf_counter() - began) * 1000.0


async def _tick_phase(
    engine: _Engine, ticks: int, interval_s: float
) -> tuple[list[float], list[float]]:
    loop = asyncio.get_running_loop()
    compute: list[float] = []
    lag: list[float] = []
    gc.collect()
    due = loop.time()
    for _ in range(ticks):
        due += interval_s
        await asyncio.sleep(max(0.0, due - loop.time()))
        lag.append(max(0.0, loop.time() - due) * 1000.0)
        compute.append(engine.tick())
    return compute, lag


def _signal(n: int) -> Signal:
    return Signal(
        tick_ms=T0_MS + n, symbol="BTCUSDT", strategy="v52", strategy_hash="0" * 16,
        direction=1 if n % 2 else -1, score=70.0 + n % 30, coverage=1.0, price=97000.0,
        atr=120.0, features={"flow_fast": 0.3},
        contributions={"flow_mid": 0.4, "vwap_dev_fast": 0.2, "funding_rate": -0.05},
    )  # fmt: skip


async def _publish(notifier: Notifier, per_s: int, stop: asyncio.Event, costs_ns: list[int]) -> int:
    loop = asyncio.get_running_loop()
    per_period = max(1, round(per_s * PUBLISH_PERIOD_S))
    due = loop.time()
    n = 0
    while not stop.is_set():
        due += PUBLISH_PERIOD_S
        await asyncio.sleep(max(0.0, due - loop.time()))
        for _ in range(per_period):
            alert = signal_alert(_signal(n))
            began = time.perf_counter_ns()
            notifier.publish(alert)
            costs_ns.append(time.perf_counter_ns() - began)
            n += 1
    return n


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


async def measure_notify(
    *,
    symbols: int = 20,
    ticks: int = 60,
    tick_interval_s: float = 0.2,
    events_per_s: int = 1000,
    history_h: int = 2,
    seed: int = 7,
) -> NotifyFigures:
    """The engine tick without, then with, ``events_per_s`` alerts into a notifier."""
    engine = _Engine(symbols, history_h, seed)
    without, lag_without = await _tick_phase(engine, ticks, tick_interval_s)
    async with _receiving() as (receiver, url):
        notifier = Notifier(
            [discord_webhook(url), json_webhook(url + "/json")], rng=random.Random(seed)
        )
        sending = asyncio.create_task(notifier.run())
        stop = asyncio.Event()
        costs: list[int] = []
        publishing = asyncio.create_task(_publish(notifier, events_per_s, stop, costs))
        with_, lag_with = await _tick_phase(engine, ticks, tick_interval_s)
        stop.set()
        published = await publishing
        notifier.request_stop()
        await asyncio.wait_for(sending, 30)
    dropped = sum(s.outbox.dropped_total for s in notifier.senders)
    return NotifyFigures(
        events_per_s=events_per_s,
        published=published,
        delivered=receiver.alerts,
        dropped=dropped,
        given_up=2 * published - receiver.alerts - dropped,
        publish_p99_us=_pct([c / 1000 for c in costs], 99),
        tick_p50_ms_without=_pct(without, 50),
        tick_p99_ms_without=_pct(without, 99),
        tick_p50_ms_with=_pct(with_, 50),
        tick_p99_ms_with=_pct(with_, 99),
        lag_p99_ms_without=_pct(lag_without, 99),
        lag_p99_ms_with=_pct(lag_with, 99),
    )


def notify_rows(f: NotifyFigures) -> list[BenchRow]:
    """The figures as report rows (``arbengine bench risk`` adds them to the gate's)."""
    return [
        BenchRow("notify.events_published", float(f.published), "alerts"),
        BenchRow("notify.publish.p99", f.publish_p99_us, "us"),
        BenchRow("notify.tick_without.p50", f.tick_p50_ms_without, "ms"),
        BenchRow("notify.tick_without.p99", f.tick_p99_ms_without, "ms"),
        BenchRow("notify.tick_with.p50", f.tick_p50_ms_with, "ms"),
        BenchRow("notify.tick_with.p99", f.tick_p99_ms_with, "ms"),
        BenchRow("notify.loop_lag_without.p99", f.lag_p99_ms_without, "ms"),
        BenchRow("notify.loop_lag_with.p99", f.lag_p99_ms_with, "ms"),
        BenchRow("notify.delivered", float(f.delivered), "alerts (both sinks)"),
        BenchRow("notify.dropped", float(f.dropped), "alerts (full queue)"),
        BenchRow("notify.given_up", float(f.given_up), "alerts"),
    ]
