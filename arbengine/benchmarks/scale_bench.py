"""``arbengine bench scale``: the daemon following 100 or 300 symbols in real time.

As a real deployment would run: the daemon as a process (``arbengine run``, the
shipped strategies rewritten to name every symbol, paper trading on) against
``arbengine sim`` in another process at real-time speed, with Binance's real
limits (2,400 request weight a minute; the daemon uses ``weight_safety`` of it)
and the daemon's default settings, on a private embedded PostgreSQL (or
``--database-url``).

Symbols (``--symbols N``): the four majors, then synthetic names ``ALT001USDT``
… for which the sim generates plausible small-cap contracts. Trade rates follow
a Zipf law down the list, ``--top-rate / rank ** --zipf`` in the sim's calm
regime (three times that when volatile): by default 30 trades/s for BTCUSDT,
15, 10 and 7.5 for the other majors, 0.3 for the 100th symbol and 0.1 for the
300th, about 156 trades/s over 100 symbols and 188 over 300: a few busy
contracts and a long, thin tail, as on Binance.

Phases:

1. warm-up: from the daemon's start until the engine says the collectors are
   ready (``engine.collectors_ready``; ``engine.collectors_not_ready`` when it
   gave up waiting), at most ``--warmup-timeout``. Indicator history is
   backfilled ``--history-backfill`` deep (the daemon's 30 days take tens of
   minutes at 100 symbols: a first start's one-off cost, not the steady state
   measured here);
2. measured, ``--measure`` long: about every ``--sample-every`` (jittered, so
   the samples do not keep one phase of the 2 s polling) the age of the newest
   premiumIndex snapshot stored for each symbol, on the exchange's clock, since
   it was received (``known_at``: what starves when polls wait) and of its value
   (its ``time``, which the exchange moves once a second, so up to a second
   more), and the daemon's RSS; at both ends its ``/metrics`` (late trades,
   tick delay and batch time histograms, REST calls) and CPU time;
3. check: every trade the sim had published by the end of the measured phase
   must be stored within a minute, and the stored ids of every symbol must be
   contiguous: nothing missing;
4. stop: SIGTERM with the market still running; the time to exit and the exit
   status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
from tqdm import tqdm

from arbengine.benchmarks import bench_database
from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.benchmarks.probes import (
    cpu_seconds,
    get_json,
    get_metrics,
    histogram_between,
    histogram_quantile,
    rss_mb,
    write_strategies,
)
from arbengine.benchmarks.processes import (
    ChildFailed,
    LoggedProcess,
    daemon_env_for_sim,
    daemon_process,
    sim_process,
)
from arbengine.domain.durations import DurationError, parse_duration_ms
from arbengine.domain.errors import ConfigError, FatalError
from arbengine.runtime.hard_stop import SHUTDOWN_MARGIN_S

MAJORS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
READY_EVENTS = ("engine.collectors_ready", "engine.collectors_not_ready")
RATE_AGE_TARGET_S = 3.0
CATCH_UP_S = 60.0
"""How long the daemon may take to store what the sim published by the end."""

NEWEST_RATES = """
SELECT s.symbol, r.ts, r.known_at
FROM unnest($1::text[]) AS s(symbol)
LEFT JOIN LATERAL (
    SELECT ts, known_at FROM rate_snapshots WHERE symbol = s.symbol ORDER BY ts DESC LIMIT 1
) r ON true
"""
LAST_IDS = "SELECT symbol, last_id FROM agg_trades_meta WHERE symbol = ANY($1::text[])"
STORED_IDS = """
SELECT symbol, count(*) AS n, min(agg_id) AS first_id, max(agg_id) AS last_id
FROM agg_trades WHERE symbol = ANY($1::text[]) GROUP BY symbol
"""
STORED_BETWEEN = (
    "SELECT count(*) FROM agg_trades WHERE symbol = ANY($1::text[]) AND ts > $2 AND ts <= $3"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--symbols", type=int, default=100,
        help="how many symbols: the 4 majors, then a long tail (default 100; try 300)",
    )  # fmt: skip
    parser.add_argument(
        "--top-rate", type=float, default=30.0,
        help="trades/s of the busiest symbol in the calm regime (default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--zipf", type=float, default=1.0,
        help="the symbol of rank r trades at top-rate / r ** zipf (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--measure", default="10m", help="how long to measure once ready (default 10m)"
    )
    parser.add_argument(
        "--warmup-timeout", default="30m",
        help="measure anyway if the engine is not ready by then (default 30m)",
    )  # fmt: skip
    parser.add_argument(
        "--history-backfill", default="1d",
        help="indicator history fetched at the start (the daemon's default is 30d; default 1d)",
    )  # fmt: skip
    parser.add_argument("--sample-every", default="1s", help="sampling period (default 1s)")
    parser.add_argument(
        "--strategies", default="strategies",
        help="directory of strategy files, run on every symbol (default ./strategies)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="ARB_NAME=VALUE",
        help="a setting of the daemon, e.g. ARB_COLLECT_RATIOS_INTERVAL=10m (repeatable)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="market seed")
    parser.add_argument(
        "--database-url", help="use this PostgreSQL (an empty database) instead of a private one"
    )


def pick_symbols(n: int) -> tuple[str, ...]:
    """The majors, then ``ALT001USDT`` …: ``n`` in all, the busiest first."""
    tail = tuple(f"ALT{i:03d}USDT" for i in range(1, n - len(MAJORS) + 1))
    return (*MAJORS, *tail)[:n]


def zipf_rates(symbols: Sequence[str], top: float, exponent: float) -> dict[str, float]:
    """Trades/s per symbol: ``top / rank ** exponent``, rank 1 first (to 4 significant digits)."""
    return {s: float(f"{top / rank**exponent:.4g}") for rank, s in enumerate(symbols, 1)}


def published(before: dict[str, Any], after: dict[str, Any]) -> int:
    """Trades the sim published between two ``/_sim/state`` views of one symbol (ids are
    contiguous; a symbol that had not traded yet starts at its first id)."""
    if after["last_id"] is None:
        return 0
    start = before["last_id"] if before["last_id"] is not None else after["first_id"] - 1
    return int(after["last_id"]) - int(start)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


@dataclass(frozen=True)
class ScaleOptions:
    symbols: tuple[str, ...]
    rates: dict[str, float]
    measure_s: float
    warmup_timeout_s: float
    history_backfill: str
    sample_every_s: float
    strategies: Path
    seed: int
    database_url: str | None
    settings: dict[str, str] = field(default_factory=dict)
    """``--set``: environment variables of the daemon on top of the benchmark's."""


def _duration_s(flag: str, text: str, problems: list[str]) -> float:
    try:
        ms = parse_duration_ms(text)
    except DurationError as exc:
        problems.append(f"{flag}: {exc}")
        return 0.0
    if ms <= 0:
        problems.append(f"{flag}: must be longer than 0, got {text!r}")
    return ms / 1000


def _options(args: argparse.Namespace) -> ScaleOptions:
    problems: list[str] = []
    measure = _duration_s("--measure", str(args.measure), problems)
    warmup = _duration_s("--warmup-timeout", str(args.warmup_timeout), problems)
    sample = _duration_s("--sample-every", str(args.sample_every), problems)
    _duration_s("--history-backfill", str(args.history_backfill), problems)
    if args.symbols < 1:
        problems.append(f"--symbols must be at least 1, got {args.symbols}")
    if args.symbols > 999 + len(MAJORS):
        problems.append(f"--symbols must be at most {999 + len(MAJORS)}, got {args.symbols}")
    if not args.top_rate > 0:
        problems.append("--top-rate must be positive")
    if not args.zipf >= 0:
        problems.append("--zipf must be 0 or more")
    settings = {}
    for item in args.set:
        name, eq, value = str(item).partition("=")
        if not (name.startswith("ARB_") and eq):
            problems.append(f"--set: expected ARB_NAME=VALUE, got {item!r}")
        settings[name] = value
    strategies = Path(args.strategies)
    if not sorted(strategies.glob("*.json")):
        problems.append(f"--strategies: no *.json strategy files in {strategies}")
    if problems:
        raise ConfigError("bench scale: " + "; ".join(problems))
    symbols = pick_symbols(int(args.symbols))
    return ScaleOptions(
        symbols=symbols,
        rates=zipf_rates(symbols, float(args.top_rate), float(args.zipf)),
        measure_s=measure,
        warmup_timeout_s=warmup,
        history_backfill=str(args.history_backfill),
        sample_every_s=sample,
        strategies=strategies,
        seed=int(args.seed),
        database_url=args.database_url,
        settings=settings,
    )


@dataclass
class Figures:
    """What a run found, for the report."""

    strategy_names: list[str] = field(default_factory=list)
    ready_event: str | None = None
    warmup_s: float = math.nan
    rate_ages_s: list[float] = field(default_factory=list)
    """Per symbol and sample: how long ago the newest snapshot was received."""
    rate_value_ages_s: list[float] = field(default_factory=list)
    """Per symbol and sample: how old the newest snapshot's value is (its ``time``)."""
    rss_mb: list[float] = field(default_factory=list)
    rss_at_start_mb: float = math.nan
    measured_s: float = math.nan
    window_s: float = math.nan
    """The measured phase on the sim's clock."""
    daemon_cpu: float = math.nan
    """Share of one core."""
    sim_cpu: float = math.nan
    metrics_start: dict[str, float] = field(default_factory=dict)
    metrics_end: dict[str, float] = field(default_factory=dict)
    stored_in_window: float = math.nan
    published_in_window: float = math.nan
    behind: float = math.nan
    missing: float = math.nan
    stored: float = math.nan
    exit_s: float = math.nan
    exit_status: float = math.nan
    deadline_s: float = 20.0
    restarts: float = 0.0

    def counted(self, name: str) -> float:
        """How much a counter grew over the measured phase."""
        return self.metrics_end.get(name, 0.0) - self.metrics_start.get(name, 0.0)


class _Scale:
    def __init__(self, opts: ScaleOptions, work: Path, database_url: str) -> None:
        self.opts = opts
        self.work = work
        self.database_url = database_url
        self.figures = Figures()
        self._window_ms = (0, 0)
        """The measured phase on the exchange's clock."""

    def _sim_args(self) -> list[str]:
        o = self.opts
        rates = ",".join(f"{s}={r:g}" for s, r in o.rates.items())
        return [
            "--speed", "1", "--symbols", ",".join(o.symbols),
            "--trade-rate", f"{min(o.rates.values()):g},{rates}", "--seed", str(o.seed),
        ]  # fmt: skip

    def _daemon_env(self, urls: dict[str, str]) -> dict[str, str]:
        return {
            **daemon_env_for_sim(self.work, self.database_url, self.opts.symbols, urls),
            "ARB_COLLECT_HISTORY_BACKFILL": self.opts.history_backfill,
            **self.opts.settings,
        }

    async def run(self) -> None:
        f = self.figures
        f.strategy_names = write_strategies(
            "scale", self.opts.strategies, self.work / "strategies", self.opts.symbols
        )
        async with (
            sim_process(self._sim_args()) as (sim, urls),
            aiohttp.ClientSession() as http,
        ):
            started = time.monotonic()
            async with daemon_process(self._daemon_env(urls), self.work) as daemon:
                api = str((await daemon.wait_for("daemon.started", 300))["http"])
                f.rss_at_start_mb = rss_mb(daemon.pid)
                f.ready_event = await daemon.wait_for_any(
                    READY_EVENTS, max(0.0, self.opts.warmup_timeout_s - time.monotonic() + started)
                )
                f.warmup_s = time.monotonic() - started
                pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=1)
                try:
                    end_ids = await self._measure(http, urls, pool, sim, daemon, api)
                    await self._wait_stored(pool, end_ids)
                    await self._stop(daemon)
                    await self._count(pool, end_ids)
                finally:
                    await pool.close()

    async def _exchange_offset_ms(self, http: aiohttp.ClientSession, urls: dict[str, str]) -> int:
        """The sim's clock minus ours (near 0 at speed 1; measured, not assumed)."""
        before = time.time()
        state = await get_json(http, f"{urls['control']}/state")
        return int(state["server_time_ms"]) - round((before + time.time()) * 500)

    async def _measure(
        self,
        http: aiohttp.ClientSession,
        urls: dict[str, str],
        pool: asyncpg.Pool,
        sim: LoggedProcess,
        daemon: LoggedProcess,
        api: str,
    ) -> dict[str, int]:
        """Sample for ``--measure``; the sim's last trade id per symbol at the end."""
        o, f = self.opts, self.figures
        symbols = list(o.symbols)
        offset_ms = await self._exchange_offset_ms(http, urls)
        f.metrics_start = await get_metrics(http, api)
        cpu = (cpu_seconds(daemon.pid), cpu_seconds(sim.pid))
        began = time.monotonic()
        first_state = await get_json(http, f"{urls['control']}/state")
        # The window is the sim's: trades up to its time at each end are published.
        window_start_ms = int(first_state["sim_time_ms"])
        with _progress(o.measure_s) as bar:
            while (elapsed := time.monotonic() - began) < o.measure_s:
                for child in (sim, daemon):
                    if not child.running:
                        raise ChildFailed(child.explain("exited during the measurement"))
                now_ms = round(time.time() * 1000) + offset_ms
                for row in await pool.fetch(NEWEST_RATES, symbols):
                    # A symbol with no snapshot yet is as old as the measurement.
                    ts, known = row["ts"], row["known_at"]
                    ts = window_start_ms if ts is None else int(ts)
                    known = window_start_ms if known is None else int(known)
                    f.rate_ages_s.append(max(0, now_ms - known) / 1000)
                    f.rate_value_ages_s.append(max(0, now_ms - ts) / 1000)
                f.rss_mb.append(rss_mb(daemon.pid))
                bar.update(round(elapsed) - bar.n)
                bar.set_postfix(rss=f"{f.rss_mb[-1]:.0f}MB")
                # Jittered, so samples do not keep one phase of the 2 s polling cycle.
                pause = random.uniform(0.5, 1.5) * o.sample_every_s
                await asyncio.sleep(max(0.0, min(pause, o.measure_s - elapsed)))
        last_state = await get_json(http, f"{urls['control']}/state")
        window_end_ms = int(last_state["sim_time_ms"])
        f.metrics_end = await get_metrics(http, api)
        f.measured_s = time.monotonic() - began
        f.daemon_cpu = (cpu_seconds(daemon.pid) - cpu[0]) / f.measured_s
        f.sim_cpu = (cpu_seconds(sim.pid) - cpu[1]) / f.measured_s
        f.window_s = (window_end_ms - window_start_ms) / 1000
        f.published_in_window = float(
            sum(published(first_state["symbols"][s], last_state["symbols"][s]) for s in symbols)
        )
        self._window_ms = (window_start_ms, window_end_ms)
        return {s: int(last_state["symbols"][s]["last_id"] or 0) for s in symbols}

    async def _wait_stored(self, pool: asyncpg.Pool, end_ids: dict[str, int]) -> None:
        """Until every trade published by the end of the measurement is stored (at most
        ``CATCH_UP_S``); what is still missing then is counted as behind."""
        deadline = time.monotonic() + CATCH_UP_S
        while True:
            stored = {
                r["symbol"]: int(r["last_id"]) for r in await pool.fetch(LAST_IDS, list(end_ids))
            }
            behind = sum(max(0, last - stored.get(s, 0)) for s, last in end_ids.items() if last)
            if behind == 0 or time.monotonic() > deadline:
                self.figures.behind = float(behind)
                return
            await asyncio.sleep(0.5)

    async def _stop(self, daemon: LoggedProcess) -> None:
        """SIGTERM with the market running, as an orchestrator would stop it."""
        f = self.figures
        f.restarts = float(daemon.counts["supervisor.restarting"])
        sent = time.monotonic()
        f.exit_status = float(await daemon.stop(f.deadline_s + 60))
        f.exit_s = time.monotonic() - sent
        stopping = daemon.first.get("daemon.stopping", {})
        f.deadline_s = float(stopping.get("deadline_s", f.deadline_s))

    async def _count(self, pool: asyncpg.Pool, end_ids: dict[str, int]) -> None:
        """Stored ids against the sim's tape: contiguous from each symbol's first stored id
        (the daemon starts live on an empty database) to past the end of the measurement."""
        f = self.figures
        rows = await pool.fetch(STORED_IDS, list(end_ids))
        f.stored = float(sum(int(r["n"]) for r in rows))
        f.missing = float(
            sum(int(r["last_id"]) - int(r["first_id"]) + 1 - int(r["n"]) for r in rows)
        )
        lo, hi = self._window_ms
        f.stored_in_window = float(await pool.fetchval(STORED_BETWEEN, list(end_ids), lo, hi))


@contextlib.contextmanager
def _progress(seconds: float) -> Iterator[Any]:
    with tqdm(
        total=round(seconds), unit="s", desc="scale", disable=not sys.stderr.isatty(),
        bar_format="{desc}: {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}] {postfix}",
    ) as bar:  # fmt: skip
        yield bar


# ---------------------------------------------------------------------------------------------
# Report


def waiting_rows(metrics: dict[str, float]) -> list[BenchRow]:
    """Symbols the engine still waits for at the end, where it says (per-symbol readiness)."""
    waiting = metrics.get("arb_engine_symbols_waiting")
    if waiting is None:
        return []
    return [BenchRow("symbols not ready at the end", waiting, "symbols", "== 0", waiting == 0)]


def report(opts: ScaleOptions, f: Figures) -> BenchReport:
    n = len(opts.symbols)
    ages = f.rate_ages_s
    age_p99 = percentile(ages, 99)
    delay = histogram_between(f.metrics_start, f.metrics_end, "arb_engine_tick_delay_seconds")
    batch = histogram_between(f.metrics_start, f.metrics_end, "arb_engine_batch_seconds")
    late = f.counted("arb_engine_late_trades_total")
    premium = f.counted('arb_rest_requests_total{path="/fapi/v1/premiumIndex"}')
    peak = max(f.rss_mb) if f.rss_mb else math.nan
    exit_target = f.deadline_s + SHUTDOWN_MARGIN_S
    ready = f.ready_event == READY_EVENTS[0]
    minutes = f.measured_s / 60
    return BenchReport(
        name="scale",
        params={
            "symbols": n,
            "trade_rates": f"{opts.rates[opts.symbols[0]]:g}..{opts.rates[opts.symbols[-1]]:g}",
            "total_rate": round(sum(opts.rates.values()), 1),
            "measure_s": opts.measure_s,
            "history_backfill": opts.history_backfill,
            "strategies": ",".join(f.strategy_names),
            "samples": len(f.rss_mb),
            **(
                {"settings": " ".join(f"{k}={v}" for k, v in opts.settings.items())}
                if opts.settings
                else {}
            ),
        },
        rows=[
            BenchRow("warm-up until the engine was ready", f.warmup_s, "s", "ready", ready),
            BenchRow("newest rate snapshot age p50", percentile(ages, 50), "s"),
            BenchRow(
                "newest rate snapshot age p99",
                age_p99,
                "s",
                f"<= {RATE_AGE_TARGET_S:g}",
                bool(age_p99 <= RATE_AGE_TARGET_S),
            ),
            BenchRow("newest rate snapshot age max", max(ages) if ages else math.nan, "s"),
            BenchRow(
                "newest rate snapshot value age p99", percentile(f.rate_value_ages_s, 99), "s"
            ),
            BenchRow("premiumIndex calls", premium / minutes if minutes else math.nan, "/min"),
            BenchRow(
                "REST 429/418/403 answers",
                f.counted("arb_rest_rate_limited_total"),
                "answers",
            ),
            BenchRow("trades published by the sim", f.published_in_window / f.window_s, "trades/s"),
            BenchRow("trades ingested", f.stored_in_window / f.window_s, "trades/s"),
            BenchRow("trades stored in all", f.stored, "trades"),
            BenchRow("ids missing", f.missing, "trades", "== 0", f.missing == 0),
            BenchRow(
                f"trades not stored {CATCH_UP_S:.0f} s after the end",
                f.behind,
                "trades",
                "== 0",
                f.behind == 0,
            ),
            BenchRow("late trades after readiness", late, "trades", "== 0", late == 0),
            BenchRow(
                "late trades before readiness",
                f.metrics_start.get("arb_engine_late_trades_total", 0.0),
                "trades",
            ),
            BenchRow(
                "late indicator values after readiness",
                f.counted("arb_engine_late_events_total"),
                "values",
            ),
            BenchRow("evaluations", f.counted("arb_engine_evaluations_total"), "evaluations"),
            *waiting_rows(f.metrics_end),
            BenchRow("engine tick delay p50", histogram_quantile(delay, 0.5), "s"),
            BenchRow("engine tick delay p99", histogram_quantile(delay, 0.99), "s"),
            BenchRow("engine batch time p99", histogram_quantile(batch, 0.99) * 1000, "ms"),
            BenchRow("daemon RSS at start", f.rss_at_start_mb, "MB"),
            BenchRow("daemon RSS peak", peak, "MB"),
            BenchRow("daemon RSS per symbol", peak / n, "MB"),
            BenchRow(
                "daemon RSS growth per symbol since start", (peak - f.rss_at_start_mb) / n, "MB"
            ),
            BenchRow("daemon CPU", f.daemon_cpu * 100, "% of a core"),
            BenchRow("sim CPU", f.sim_cpu * 100, "% of a core"),
            BenchRow("component restarts", f.restarts, "restarts", "== 0", f.restarts == 0),
            BenchRow(
                "SIGTERM to exit",
                f.exit_s,
                "s",
                f"<= {exit_target:g}",
                bool(f.exit_s <= exit_target),
            ),
            BenchRow("daemon exit status", f.exit_status, "", "== 0", f.exit_status == 0),
        ],
    )


async def _bench(opts: ScaleOptions) -> BenchReport:
    with tempfile.TemporaryDirectory(prefix="arbengine-scale-") as tmp:
        async with bench_database(opts.database_url) as url:
            scale = _Scale(opts, Path(tmp), url)
            try:
                await scale.run()
            except ChildFailed as exc:
                raise FatalError(f"bench scale: {exc}") from None
    return report(opts, scale.figures)


def run(args: argparse.Namespace) -> BenchReport:
    import uvloop

    return uvloop.run(_bench(_options(args)))
