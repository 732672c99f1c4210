"""``arbengine bench engine``: tick cost and memory of the signal engine at full history.

Synthetic but realistically shaped data: Poisson trade arrivals, a random
walk price on a tick grid, heavy-tailed (log-normal) quantities, 26 h of
history so every window, the ATR percentile and the large-order threshold
are at full size. The symbol mix follows a real exchange: one BTC-like
symbol at ``--btc-trades-per-day`` (default 3 M/day), a few majors at half
that, then mid and long-tail symbols; the report states the mix used.

Tick cost is the wall time of one ``SignalCore.evaluate(t)`` over all
symbols and both shipped strategies (features + scoring), measured over
consecutive 15 s ticks after warm-up, so candle closes are included.
Memory is measured on one BTC-like symbol: the bytes of its structures
and what tracemalloc sees allocated after 26 h of trades and a day window
of ticks, also per trade held and scaled to a 3 M-trade day (the target).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.domain.market import Indicator, MarkPrice, TradeBatch
from arbengine.signals.features import SymbolFeatures
from arbengine.signals.signal_core import SignalCore
from arbengine.signals.strategy import StrategySet, parse_strategy

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
TICK_MS = 15_000
_AHEAD_MS = 500
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_V52 = {
    "name": "v52",
    "symbols": ["BTCUSDT"],
    "direction": {"feature": "flow_fast", "min": 0.05, "confirm": ["flow_mid"]},
    "factors": [
        {"feature": "flow_mid", "weight": 20, "full": 0.15},
        {"feature": "vwap_dev_fast", "weight": 15, "full": 0.002},
        {"feature": "large_imbalance_fast", "weight": 20, "full": 0.5},
        {"feature": "oi_change_1h", "weight": 10, "full": 0.02, "unsigned": True},
        {"feature": "ls_global", "weight": 10, "full": 0.3, "contrarian": True},
        {"feature": "funding_rate", "weight": 10, "full": 0.0005, "contrarian": True},
        {"feature": "coinbase_premium_bps", "weight": 10, "full": 5},
        {"feature": "liq_imbalance_fast", "weight": 5, "full": 0.5},
    ],
    "gates": {"atr_percentile": [20, 95], "trades_fast": [50, None]},
    "entry": {"threshold": 70, "min_coverage": 60, "cooldown": "30m"},
    "exit": {"sl_atr": 1.5},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--symbols",
        default="4,100,300",
        help="comma-separated symbol counts to measure (default 4,100,300)",
    )
    parser.add_argument("--ticks", type=int, default=40, help="measured ticks per size")
    parser.add_argument(
        "--btc-trades-per-day", type=int, default=3_000_000, help="rate of the BTC-like symbol"
    )
    parser.add_argument(
        "--strategies",
        default="strategies",
        help="directory of strategy files to run (default ./strategies; the built-in v52 "
        "example when it is missing)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory measurement")


def _profile(n_symbols: int, btc_rate: int) -> list[int]:
    """Trades per day per symbol: 1 BTC-like, majors, mid caps, long tail."""
    rates = [btc_rate]
    tiers = [(3, btc_rate // 2), (16, btc_rate // 10), (80, btc_rate // 60)]
    for count, rate in tiers:
        rates += [rate] * count
    while len(rates) < n_symbols:
        rates.append(btc_rate // 150)
    return rates[:n_symbols]


@dataclass
class _Gen:
    """A synthetic symbol that keeps producing trades where it left off."""

    symbol: str
    rng: np.random.Generator
    rate_per_ms: float
    price: float
    tick_size: float
    next_id: int

    def trades(self, start_ms: int, end_ms: int) -> TradeBatch:
        n = int(self.rng.poisson(self.rate_per_ms * (end_ms - start_ms)))
        t = np.sort(self.rng.integers(start_ms, end_ms, n, dtype=np.int64))
        steps = self.rng.choice(np.array([-1.0, 0.0, 0.0, 1.0]), n).cumsum()
        prices = np.maximum(self.tick_size, self.price + steps * self.tick_size)
        prices = np.round(prices / self.tick_size) * self.tick_size
        if n:
            self.price = float(prices[-1])
        qty = np.maximum(0.001, np.round(self.rng.lognormal(-3.0, 1.6, n) * 30000 / self.price, 3))
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        maker = self.rng.random(n) < 0.5
        return TradeBatch.of(self.symbol, ids, t, prices, qty, ids, ids, maker)


def _describe_mix(n: int, btc_rate: int) -> str:
    rates = _profile(n, btc_rate)
    counts: dict[int, int] = {}
    for rate in rates:
        counts[rate] = counts.get(rate, 0) + 1
    parts = [f"{c}x{r / 1e6:g}M" for r, c in sorted(counts.items(), reverse=True)]
    return f"{sum(rates) / 1e6:.1f}M trades/day: " + " + ".join(parts)


def _symbols(n: int) -> list[str]:
    return [f"S{i:03d}USDT" for i in range(n)]


def _strategy_set(directory: str, symbols: list[str]) -> tuple[StrategySet, list[str]]:
    docs: list[dict[str, Any]] = []
    root = Path(directory)
    if root.is_dir():
        docs = [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))]
    if not docs:
        docs = [_V52]
    out = []
    for doc in docs:
        doc = {**doc, "symbols": symbols, "enabled": True}
        out.append(parse_strategy(doc))
    return StrategySet(tuple(out)), [s.name for s in out]


def _indicators(core: SignalCore, symbol: str, t_ms: int, rng: np.random.Generator) -> None:
    core.add_mark_price(
        MarkPrice(
            symbol=symbol,
            ts=t_ms - 500,
            mark_price=100.0,
            index_price=100.0,
            estimated_settle_price=None,
            funding_rate=float(rng.normal(0.0001, 0.0002)),
            next_funding_time=0,
        )
    )
    for kind, value in (
        ("open_interest", float(rng.uniform(1e5, 1.1e5))),
        ("coinbase_price", float(rng.normal(100.0, 0.05))),
        ("ls_global", float(rng.uniform(0.8, 1.3))),
        ("taker_ratio", float(rng.uniform(0.8, 1.2))),
    ):
        core.add_indicator(
            Indicator(symbol=symbol, kind=kind, ts=t_ms - 1000, known_at=t_ms - 1000, value=value)
        )


def _measure_ticks(
    n_symbols: int, args: argparse.Namespace, rng: np.random.Generator
) -> tuple[list[float], float, int, int, list[str]]:
    symbols = _symbols(n_symbols)
    strategies, names = _strategy_set(args.strategies, symbols)
    core = SignalCore(strategies)
    rates = _profile(n_symbols, args.btc_trades_per_day)
    gens = [
        _Gen(symbol, rng, rate / DAY_MS, 100.0 if i else 30000.0, 0.01 if i else 0.1, 1_000_000)
        for i, (symbol, rate) in enumerate(zip(symbols, rates, strict=True))
    ]
    start = T0_MS
    warm_end = start + 26 * HOUR_MS
    total = 0
    ingest_s = 0.0
    for h in range(26):
        for gen in gens:
            batch = gen.trades(start + h * HOUR_MS, start + (h + 1) * HOUR_MS)
            total += len(batch)
            began = time.perf_counter()
            core.add_trades(batch)
            ingest_s += time.perf_counter() - began
        for m in range(0, 60, 5):
            for symbol in symbols:
                _indicators(core, symbol, start + h * HOUR_MS + m * 60_000, rng)
    for gen in gens:
        core.add_trades(gen.trades(warm_end, warm_end + _AHEAD_MS))
    core.evaluate(warm_end)  # first tick builds the large-order tails: not a steady tick
    latencies = []
    for k in range(1, args.ticks + 1):
        t = warm_end + k * TICK_MS
        for symbol, gen in zip(symbols, gens, strict=True):
            # As live: a tick is evaluated once a trade at or after it has arrived.
            core.add_trades(gen.trades(t - TICK_MS + _AHEAD_MS, t + _AHEAD_MS))
            _indicators(core, symbol, t - 1000, rng)
        gc.collect()
        began = time.perf_counter()
        core.evaluate(t)
        latencies.append((time.perf_counter() - began) * 1000.0)
    return latencies, total / ingest_s, sum(rates), len(strategies), names


def _measure_memory(args: argparse.Namespace, rng: np.random.Generator) -> tuple[float, float, int]:
    """(structure MB, tracemalloc MB, trades held) for one BTC-like symbol at full history."""
    gen = _Gen("BTCUSDT", rng, args.btc_trades_per_day / DAY_MS, 30000.0, 0.1, 1_000_000)
    batches = [gen.trades(T0_MS + h * HOUR_MS, T0_MS + (h + 1) * HOUR_MS) for h in range(26)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    state = SymbolFeatures("BTCUSDT")
    for batch in batches:
        state.add_trades(batch)
    t = T0_MS + 26 * HOUR_MS
    state.evaluate(t)
    for k in range(1, 9):
        state.add_trades(gen.trades(t + (k - 1) * TICK_MS, t + k * TICK_MS))
        state.evaluate(t + k * TICK_MS)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return state.nbytes / 1e6, held / 1e6, state.trade_count


def run(args: argparse.Namespace) -> BenchReport:
    rng = np.random.default_rng(args.seed)
    sizes = [int(s) for s in str(args.symbols).split(",") if s.strip()]
    rows: list[BenchRow] = []
    params: dict[str, Any] = {
        "btc_trades_per_day": args.btc_trades_per_day,
        "ticks": args.ticks,
        "history_h": 26,
        "tick": "15s",
    }
    if not args.skip_memory:
        struct_mb, traced_mb, held = _measure_memory(args, rng)
        per_trade = traced_mb * 1e6 / held
        per_day = per_trade * 3e6 / 1e6
        rows += [
            BenchRow("memory.btc_like.structures", struct_mb, "MB"),
            BenchRow("memory.btc_like.tracemalloc", traced_mb, "MB"),
            BenchRow("memory.btc_like.trades_held", float(held), "trades"),
            BenchRow("memory.btc_like.bytes_per_trade_held", per_trade, "B"),
            BenchRow("memory.per_3M_trade_symbol_day", per_day, "MB", "<= 32", per_day <= 32),
        ]
    for n in sizes:
        latencies, ingest_rate, _, n_strat, names = _measure_ticks(n, args, rng)
        params[f"mix_{n}"] = _describe_mix(n, args.btc_trades_per_day)
        params["strategies"] = ",".join(names)
        median = statistics.median(latencies)
        p95 = float(np.percentile(latencies, 95))
        worst = max(latencies)
        target = "<= 20" if n in (100, 300) else ""
        rows += [
            BenchRow(
                f"tick.{n}_symbols.median", median, "ms", target, median <= 20 if target else None
            ),
            BenchRow(f"tick.{n}_symbols.p95", p95, "ms", target, p95 <= 20 if target else None),
            BenchRow(f"tick.{n}_symbols.max", worst, "ms"),
            BenchRow(f"tick.{n}_symbols.per_symbol_median", median * 1000 / n, "us"),
            BenchRow(f"ingest.{n}_symbols", ingest_rate, "trades/s"),
        ]
        params[f"evaluations_per_tick_{n}"] = n * n_strat
    return BenchReport(name="engine", rows=rows, params=params)


def main() -> None:  # pragma: no cover - manual entry point until the CLI wires it
    parser = argparse.ArgumentParser(prog="arbengine bench engine")
    add_arguments(parser)
    print(run(parser.parse_args()).to_table())


if __name__ == "__main__":  # pragma: no cover
    main()
