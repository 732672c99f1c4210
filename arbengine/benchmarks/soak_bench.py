"""``arbengine bench soak``: the daemon's memory through more than two days of market, fast.

The engine holds 26 h of trades by design, so the daemon's memory grows for
26 h of market time, and a leak hides in that growth. This runs the daemon as a
real process (``arbengine run``, the shipped strategies rewritten for the
chosen symbols, paper trading on) against ``arbengine sim`` in another process
at an accelerated clock, on a private embedded PostgreSQL (or
``--database-url``), through ``--hours`` of market. Every ``--sample-every``
wall seconds it samples the RSS of both processes and how far the daemon has
stored the tape ("market hours": the x axis, so a daemon that lags is judged
on what it has taken in).

Memory is judged once *settled*, not as soon as the window is full: a buffer
sized for the window that grew (by a quarter or a doubling) is counted in RSS
only as its new pages are first written, which for a ring takes up to another
window of market. So RSS keeps creeping, bounded, for up to a window after the
window is full, and must be flat from twice the window on (``--settled-hours``,
52 h). Reported: daemon RSS at start, when the window is full and at peak
(also per symbol); least-squares slopes from the window full to the end and
once settled, per market hour and per wall hour, with the 95 % interval and
the drift the settled slope implies over its span against the samples' own
noise (target: drift within 2σ, or 1 MB, flat within noise); the same for the sim,
whose trade history is bounded by the same 26 h; trades ingested, ids missing
at the end, late trades, evaluations, signals, websocket reconnects, tape
holes, component restarts, the ingest lag and the wall time. Each sample also
asks the API for ``/api/health``, ``/api/rates`` and ``/metrics``, as an open
page and a Prometheus scraper would.

Defaults: 60 market hours (8 of them settled) at 120× take 30 wall minutes.
4 symbols at the sim's default 20 trades/s (≈ 2.2 M trades a day each with the
volatile regimes, near BTC's 3 M) are then ≈ 12 000 trades a wall second
through collector, writer and engine next to PostgreSQL and the sim: about
half a core for daemon and sim together, well inside 2 cores (the ingest
benchmark measures ≈ 95 000 trades/s for collection alone), and the rate that
makes "MB per symbol" mean something for a busy contract.

The daemon follows the market's clock: its exchange clock never trails the
event times the streams deliver (``RemoteClock``), so ticks fall due, trades
settle and polled values are stamped on market time even at 120×. What stays
on the wall clock, and the settings chosen here:

- poller intervals and the connection rotation age are wall durations, so they
  are divided by the speed (pollers no faster than every 20 ms) to keep their
  market-time cadence real (premiumIndex every 2 market seconds …), and the
  sim's request-weight limit is lifted, as rate limits are not measured here;
- the continuity check stays at its 10 wall minutes: each pass rescans the tape
  from a wall-clock frontier (an hour before the wall clock), which at an
  accelerated clock is the start of the run;
- ``max_backfill`` and ``max_catch_up`` are wall durations, unused on a fresh
  database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
from tqdm import tqdm

from arbengine.benchmarks import bench_database
from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.benchmarks.probes import (
    get_json,
    metric_totals,
    post_json,
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
from arbengine.domain.durations import parse_duration_ms
from arbengine.domain.errors import ConfigError, FatalError

HOUR_MS = 3_600_000
MB = 1024 * 1024
WINDOW_HOURS = 26.0
"""The engine's history window (``pipeline.service.HORIZON_MS``)."""
POLLER_FLOOR_MS = 20
FLAT_FLOOR_MB = 1.0
STALL_S = 300.0
"""Wall seconds without a new trade stored after which the soak gives up."""
# Wall durations of the daemon scaled by the speed, so the market sees their real cadence.
SCALED_SETTINGS = {
    "ARB_COLLECT_PREMIUM_INDEX_INTERVAL": "2s",
    "ARB_COLLECT_OPEN_INTEREST_INTERVAL": "30s",
    "ARB_COLLECT_RATIOS_INTERVAL": "5m",
    "ARB_COLLECT_FUNDING_HISTORY_INTERVAL": "1h",
    "ARB_COLLECT_COINBASE_INTERVAL": "5s",
    "ARB_COLLECT_MAX_CONNECTION_AGE": "23h",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hours", type=float, default=60.0, help="market hours to run through (default 60)"
    )
    parser.add_argument(
        "--speed", type=float, default=120.0, help="market seconds per wall second (default 120)"
    )
    parser.add_argument(
        "--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT", help="comma-separated symbols"
    )
    parser.add_argument(
        "--trade-rate", type=float, default=20.0,
        help="aggTrades per market second per symbol in the calm regime (x3 when volatile)",
    )  # fmt: skip
    parser.add_argument(
        "--strategies", default="strategies",
        help="directory of strategy files, run on the chosen symbols (default ./strategies)",
    )  # fmt: skip
    parser.add_argument(
        "--window-hours", type=float, default=WINDOW_HOURS,
        help="market hours after which the engine's window is full (default 26)",
    )  # fmt: skip
    parser.add_argument(
        "--settled-hours", type=float,
        help="market hours after which memory must be flat (default twice --window-hours)",
    )  # fmt: skip
    parser.add_argument("--sample-every", type=float, default=5.0, help="wall seconds")
    parser.add_argument("--seed", type=int, default=1, help="market seed")
    parser.add_argument(
        "--database-url", help="use this PostgreSQL (an empty database) instead of a private one"
    )
    parser.add_argument(
        "--samples", metavar="FILE", help="also write every sample as CSV (to plot the curve)"
    )


# ---------------------------------------------------------------------------------------------
# Analysis (pure)


@dataclass(frozen=True)
class Sample:
    wall_s: float
    market_h: float
    """Market time the daemon has stored, in hours since the start."""
    daemon_mb: float
    sim_mb: float
    lag_s: float
    """Market seconds between the sim's clock and what the daemon has stored."""


@dataclass(frozen=True)
class Fit:
    """A least-squares line ``y = a + slope·x`` and how it compares with the noise."""

    slope: float
    ci95: float
    """Half-width of the slope's 95 % interval (normal approximation)."""
    span: float
    """x range fitted."""
    noise: float
    """Twice the standard deviation of the residuals."""
    n: int

    @property
    def drift(self) -> float:
        """Change the slope implies over the fitted span."""
        return self.slope * self.span

    @property
    def flat(self) -> bool:
        """The trend moves less over the span than the samples scatter around it (or than
        ``FLAT_FLOOR_MB``: RSS moves by pages and allocator arenas, so a perfectly quiet
        series has no noise to compare with)."""
        return abs(self.drift) <= max(self.noise, FLAT_FLOOR_MB)


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Fit:
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    n = len(x)
    if n < 3 or float(np.ptp(x)) == 0.0:
        raise ValueError("a slope needs at least 3 samples spread over time")
    dx = x - x.mean()
    slope = float((dx * (y - y.mean())).sum() / (dx * dx).sum())
    residuals = y - y.mean() - slope * dx
    sigma = float(np.sqrt((residuals * residuals).sum() / (n - 2)))
    stderr = sigma / float(np.sqrt((dx * dx).sum()))
    return Fit(slope, 1.96 * stderr, float(np.ptp(x)), 2.0 * sigma, n)


@dataclass(frozen=True)
class Analysis:
    start: Sample
    full: Sample
    """The first sample with the window full."""
    daemon_peak_mb: float
    sim_peak_mb: float
    daemon_after_window: Fit
    daemon_settled: Fit
    daemon_settled_wall: Fit
    sim_after_window: Fit
    sim_settled: Fit
    max_lag_s: float


def analyse(samples: Sequence[Sample], window_hours: float, settled_hours: float) -> Analysis:
    """Fits from the window full to the end, and over the settled tail (the one judged)."""
    after = [s for s in samples if s.market_h >= window_hours]
    settled = [s for s in samples if s.market_h >= settled_hours]
    if len(settled) < 3:
        raise ValueError(
            f"only {len(settled)} samples after {settled_hours:g} market hours: "
            "run longer (--hours) or sample more often (--sample-every)"
        )

    def fit(rows: Sequence[Sample], which: str, wall: bool = False) -> Fit:
        xs = [r.wall_s / 3600 if wall else r.market_h for r in rows]
        return fit_line(xs, [getattr(r, which) for r in rows])

    return Analysis(
        start=samples[0],
        full=after[0],
        daemon_peak_mb=max(s.daemon_mb for s in samples),
        sim_peak_mb=max(s.sim_mb for s in samples),
        daemon_after_window=fit(after, "daemon_mb"),
        daemon_settled=fit(settled, "daemon_mb"),
        daemon_settled_wall=fit(settled, "daemon_mb", wall=True),
        sim_after_window=fit(after, "sim_mb"),
        sim_settled=fit(settled, "sim_mb"),
        max_lag_s=max(s.lag_s for s in samples),
    )


def scaled_settings(speed: float) -> dict[str, str]:
    """The daemon's wall-clock intervals divided by the speed (pollers at least 20 ms)."""
    out = {}
    for name, real in SCALED_SETTINGS.items():
        out[name] = f"{max(POLLER_FLOOR_MS, round(parse_duration_ms(real) / speed))}ms"
    return out


# ---------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class SoakOptions:
    hours: float
    speed: float
    symbols: tuple[str, ...]
    trade_rate: float
    strategies: Path
    window_hours: float
    settled_hours: float
    sample_every: float
    seed: int
    database_url: str | None
    samples: Path | None


def _options(args: argparse.Namespace) -> SoakOptions:
    symbols = tuple(s.strip().upper() for s in str(args.symbols).split(",") if s.strip())
    opts = SoakOptions(
        hours=float(args.hours),
        speed=float(args.speed),
        symbols=symbols,
        trade_rate=float(args.trade_rate),
        strategies=Path(args.strategies),
        window_hours=float(args.window_hours),
        settled_hours=float(
            args.settled_hours if args.settled_hours is not None else 2 * args.window_hours
        ),
        sample_every=float(args.sample_every),
        seed=int(args.seed),
        database_url=args.database_url,
        samples=Path(args.samples) if args.samples else None,
    )
    problems = [
        "--symbols names none" if not symbols else "",
        "--speed must be positive" if not opts.speed > 0 else "",
        "--trade-rate must be positive" if not opts.trade_rate > 0 else "",
        "--sample-every must be positive" if not opts.sample_every > 0 else "",
        "--window-hours must be positive" if not opts.window_hours > 0 else "",
        f"--settled-hours ({opts.settled_hours:g}) must be at least --window-hours "
        f"({opts.window_hours:g})"
        if opts.settled_hours < opts.window_hours
        else "",
        f"--hours ({opts.hours:g}) must be longer than --settled-hours ({opts.settled_hours:g})"
        if not opts.hours > opts.settled_hours
        else "",
        f"--strategies: no *.json strategy files in {opts.strategies}"
        if not sorted(opts.strategies.glob("*.json"))
        else "",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError("bench soak: " + "; ".join(problems))
    return opts


class _Soak:
    def __init__(self, opts: SoakOptions, work: Path, database_url: str) -> None:
        self.opts = opts
        self.work = work
        self.database_url = database_url
        self.samples: list[Sample] = []
        self.summary: dict[str, float] = {}
        self.strategy_names: list[str] = []

    def _sim_args(self) -> list[str]:
        o = self.opts
        return [
            "--speed", f"{o.speed:g}", "--symbols", ",".join(o.symbols),
            "--trade-rate", f"{o.trade_rate:g}", "--seed", str(o.seed),
            "--weight-limit", "1000000",
        ]  # fmt: skip

    def _daemon_env(self, urls: dict[str, str]) -> dict[str, str]:
        return {
            **daemon_env_for_sim(self.work, self.database_url, self.opts.symbols, urls),
            **scaled_settings(self.opts.speed),
        }

    async def run(self) -> None:
        self.strategy_names = write_strategies(
            "soak", self.opts.strategies, self.work / "strategies", self.opts.symbols
        )
        started = time.monotonic()
        async with (
            sim_process(self._sim_args()) as (sim, urls),
            aiohttp.ClientSession() as http,
        ):
            # Market time stands still until the daemon is ready to take it all in.
            await post_json(http, f"{urls['control']}/clock", {"pause": True})
            async with daemon_process(self._daemon_env(urls), Path.cwd()) as daemon:
                api = str((await daemon.wait_for("daemon.started", 180))["http"])
                await daemon.wait_for("engine.collectors_ready", 300)
                resumed = await post_json(http, f"{urls['control']}/clock", {"resume": True})
                pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=1)
                try:
                    origin_ms = int(resumed["sim_time_ms"])
                    await self._sample_until_done(http, urls, pool, sim, daemon, origin_ms, api)
                    await post_json(http, f"{urls['control']}/clock", {"pause": True})
                    await self._finish(http, urls, pool, api)
                finally:
                    await pool.close()
                self.summary["daemon_exit"] = float(await daemon.stop(60))
                self.summary["restarts"] = float(daemon.counts["supervisor.restarting"])
        self.summary["wall_s"] = time.monotonic() - started

    async def _sample_until_done(
        self,
        http: aiohttp.ClientSession,
        urls: dict[str, str],
        pool: asyncpg.Pool,
        sim: LoggedProcess,
        daemon: LoggedProcess,
        origin_ms: int,
        api: str,
    ) -> None:
        """Sample until the daemon has stored ``hours`` of market after ``origin_ms``.

        Each sample also asks the API what an open page and a Prometheus scraper would,
        so its code paths run for the whole soak too.
        """
        o = self.opts
        began = moved = time.monotonic()
        self.summary["api_requests"] = self.summary["api_failures"] = 0.0
        with _progress(o.hours) as bar:
            while True:
                for child in (sim, daemon):
                    if not child.running:
                        raise ChildFailed(child.explain("exited during the soak"))
                for path in ("/api/health", "/api/rates", "/metrics"):
                    async with http.get(api + path) as response:
                        await response.read()
                        self.summary["api_requests"] += 1
                        self.summary["api_failures"] += response.status != 200
                state = await get_json(http, f"{urls['control']}/state")
                sim_ms = int(state["sim_time_ms"])
                stored = await pool.fetchval(
                    "SELECT CASE WHEN count(*) = $2 THEN min(last_ts) END "
                    "FROM agg_trades_meta WHERE symbol = ANY($1::text[])",
                    list(o.symbols),
                    len(o.symbols),
                )
                stored_ms = int(stored) if stored is not None else origin_ms
                sample = Sample(
                    wall_s=time.monotonic() - began,
                    market_h=max(0.0, (stored_ms - origin_ms) / HOUR_MS),
                    daemon_mb=rss_mb(daemon.pid),
                    sim_mb=rss_mb(sim.pid),
                    lag_s=max(0.0, (sim_ms - stored_ms) / 1000),
                )
                if self.samples and sample.market_h > self.samples[-1].market_h:
                    moved = time.monotonic()
                elif time.monotonic() - moved > STALL_S:
                    raise ChildFailed(daemon.explain(f"stored no trade for {STALL_S:.0f} s"))
                self.samples.append(sample)
                bar.update(round(sample.market_h, 2) - bar.n)
                bar.set_postfix(daemon=f"{sample.daemon_mb:.0f}MB", sim=f"{sample.sim_mb:.0f}MB")
                if sample.market_h >= o.hours:
                    return
                await asyncio.sleep(o.sample_every)

    async def _finish(
        self, http: aiohttp.ClientSession, urls: dict[str, str], pool: asyncpg.Pool, api: str
    ) -> None:
        """The sim is paused: let the daemon store everything, then count."""
        state = await get_json(http, f"{urls['control']}/state")
        targets = {s: int(state["symbols"][s]["last_id"] or 0) for s in self.opts.symbols}
        query = (
            "SELECT symbol, first_id, last_id, rows FROM agg_trades_meta "
            "WHERE symbol = ANY($1::text[])"
        )
        deadline = time.monotonic() + 120
        while True:
            meta = {r["symbol"]: r for r in await pool.fetch(query, list(self.opts.symbols))}
            behind = sum(
                max(0, target - int(meta[s]["last_id"] if s in meta else 0))
                for s, target in targets.items()
            )
            if behind == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        self.summary["behind"] = float(behind)
        self.summary["stored"] = float(sum(int(r["rows"]) for r in meta.values()))
        self.summary["missing"] = float(
            sum(int(r["last_id"]) - int(r["first_id"]) + 1 - int(r["rows"]) for r in meta.values())
        )
        async with http.get(f"{api}/metrics") as response:
            totals = metric_totals(await response.text())
        for key, name in (
            ("evaluations", "arb_engine_evaluations_total"),
            ("signals", "arb_engine_signals_total"),
            ("late", "arb_engine_late_trades_total"),
            ("reconnects", "arb_ws_reconnects_total"),
            ("holes", 'arb_tape_gaps_total{outcome="hole"}'),
        ):
            self.summary[key] = totals.get(name, 0.0)


@contextlib.contextmanager
def _progress(hours: float) -> Iterator[Any]:
    with tqdm(
        total=hours, unit="market h", desc="soak", disable=not sys.stderr.isatty(),
        bar_format="{desc}: {n:.1f}/{total:.0f} {unit} [{elapsed}<{remaining}] {postfix}",
    ) as bar:  # fmt: skip
        yield bar


# ---------------------------------------------------------------------------------------------
# Report


def report(opts: SoakOptions, soak: _Soak) -> BenchReport:
    a = analyse(soak.samples, opts.window_hours, opts.settled_hours)
    s = soak.summary
    n = len(opts.symbols)

    def memory_rows(who: str, after: Fit, settled: Fit, wall: Fit | None) -> list[BenchRow]:
        rows = [
            BenchRow(f"{who} slope from the window full to the end", after.slope, "MB/market h"),
            BenchRow(f"{who} slope once settled", settled.slope, "MB/market h"),
            BenchRow(f"{who} slope once settled, 95% half-width", settled.ci95, "MB/market h"),
        ]
        if wall is not None:
            rows.append(BenchRow(f"{who} slope once settled, wall", wall.slope, "MB/wall h"))
        return [
            *rows,
            BenchRow(f"{who} drift once settled", settled.drift, "MB", "<= noise", settled.flat),
            BenchRow(f"{who} noise (2 sigma of the samples)", settled.noise, "MB"),
        ]

    return BenchReport(
        name="soak",
        params={
            "hours": opts.hours,
            "speed": opts.speed,
            "symbols": ",".join(opts.symbols),
            "trade_rate": opts.trade_rate,
            "strategies": ",".join(soak.strategy_names),
            "window_hours": opts.window_hours,
            "settled_hours": opts.settled_hours,
            "samples": len(soak.samples),
        },
        rows=[
            BenchRow("daemon RSS at start", a.start.daemon_mb, "MB"),
            BenchRow("daemon RSS when the window is full", a.full.daemon_mb, "MB"),
            BenchRow("daemon peak RSS", a.daemon_peak_mb, "MB"),
            BenchRow("daemon peak RSS per symbol", a.daemon_peak_mb / n, "MB"),
            BenchRow(
                "daemon growth to a full window, per symbol",
                (a.full.daemon_mb - a.start.daemon_mb) / n,
                "MB",
            ),
            *memory_rows("daemon", a.daemon_after_window, a.daemon_settled, a.daemon_settled_wall),
            BenchRow("sim RSS when the window is full", a.full.sim_mb, "MB"),
            BenchRow("sim peak RSS", a.sim_peak_mb, "MB"),
            *memory_rows("sim", a.sim_after_window, a.sim_settled, None),
            BenchRow("trades ingested", s["stored"], "trades"),
            BenchRow("ids missing at the end", s["missing"], "trades", "== 0", s["missing"] == 0),
            BenchRow(
                "trades not stored at the end", s["behind"], "trades", "== 0", s["behind"] == 0
            ),
            BenchRow(
                "ingest rate", s["stored"] / max(soak.samples[-1].wall_s, 1e-9), "trades/wall s"
            ),
            BenchRow("max ingest lag", a.max_lag_s / opts.speed, "wall s"),
            BenchRow("late trades", s["late"], "trades"),
            BenchRow("evaluations", s["evaluations"], "ticks"),
            BenchRow("signals", s["signals"], "signals"),
            BenchRow("websocket reconnects", s["reconnects"], "reconnects"),
            BenchRow("tape holes", s["holes"], "holes", "== 0", s["holes"] == 0),
            BenchRow("component restarts", s["restarts"], "restarts", "== 0", s["restarts"] == 0),
            BenchRow("API requests during the soak", s["api_requests"], "requests"),
            BenchRow(
                "API requests failed", s["api_failures"], "requests", "== 0", s["api_failures"] == 0
            ),
            BenchRow("daemon exit status", s["daemon_exit"], "", "== 0", s["daemon_exit"] == 0),
            BenchRow("market hours covered", soak.samples[-1].market_h, "h"),
            BenchRow("wall time", s["wall_s"] / 60, "min"),
        ],
    )


async def _bench(opts: SoakOptions) -> BenchReport:
    with tempfile.TemporaryDirectory(prefix="arbengine-soak-") as tmp:
        async with bench_database(opts.database_url) as url:
            soak = _Soak(opts, Path(tmp), url)
            try:
                await soak.run()
            except ChildFailed as exc:
                raise FatalError(f"bench soak: {exc}") from None
    if opts.samples is not None:
        write_samples(opts.samples, soak.samples)
    return report(opts, soak)


def write_samples(path: Path, samples: Sequence[Sample]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f.name for f in fields(Sample)])
        writer.writerows(astuple(s) for s in samples)


def run(args: argparse.Namespace) -> BenchReport:
    import uvloop

    return uvloop.run(_bench(_options(args)))
