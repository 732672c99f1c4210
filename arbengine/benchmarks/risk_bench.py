"""``arbengine bench risk``: the risk gate's decision time per entry intent, with 100 open
positions on the account (the view the monitor precomputes; the gate does no I/O).

Each intent goes through every rule (its symbol is flat, its data fresh: the slowest
path, an allowed entry); half the intents refused would only be faster. Then the
notifier's half (``notify_bench``): the engine's tick without and with 1,000 alerts a
second published into a notifier draining to a loopback receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np

from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.benchmarks.notify_bench import measure_notify, notify_rows
from arbengine.domain.risk_rows import RiskState
from arbengine.logs import configure_logging
from arbengine.trading.risk_rules import ALLOWED, EntryIntent, RiskLimits, RiskView, check_entry

TARGET_P99_US = 50.0
INPUTS = frozenset({"tape", "premium_index", "open_interest", "ls_global", "taker_ratio"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--intents", type=int, default=200_000, help="decisions timed")
    parser.add_argument("--positions", type=int, default=100, help="open positions")
    parser.add_argument("--no-notify", action="store_true", help="the gate's figures only")
    parser.add_argument("--symbols", type=int, default=20, help="symbols the engine evaluates")
    parser.add_argument("--ticks", type=int, default=60, help="engine ticks timed per phase")
    parser.add_argument("--tick-interval", type=float, default=0.2, help="seconds between ticks")
    parser.add_argument("--events-per-s", type=int, default=1000, help="alerts published a second")
    parser.add_argument("--history-h", type=int, default=2, help="hours of trades before the ticks")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="warning", help="the notifier's log level")


def run(args: argparse.Namespace) -> BenchReport:
    configure_logging(str(args.log_level))
    positions = max(0, args.positions)
    held = [f"HELD{i}USDT" for i in range(positions)]
    flat = [f"FLAT{i}USDT" for i in range(100)]
    now = 1_800_000_000_000
    limits = RiskLimits(
        max_positions=positions + 1,
        daily_loss_r=3.0,
        daily_loss_usd=500.0,
        unrealised_loss_usd=500.0,
        balance_floor_usd=100.0,
    )
    view = RiskView(
        positions=dict.fromkeys(held, 1),
        daily_realised_r=-1.0,
        daily_realised_usd=-50.0,
        unrealised_usd=-20.0,
        balance_usd=10_000.0,
        inputs_at={(s, name): now - 500 for s in held + flat for name in INPUTS},
        user_stream_behind_since=None,
        holes={s: 1 for s in held[::10]},
    )
    state = RiskState(since_ms=now)
    intents = [EntryIntent(s, "v52", now, INPUTS) for s in flat]
    n = max(1, args.intents)
    times = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    allowed = 0
    for i in range(n):
        intent = intents[i % len(intents)]
        started = clock()
        decision = check_entry(intent, view, state, limits, now)
        times[i] = clock() - started
        allowed += decision is ALLOWED
    us = times / 1000.0
    p50, p99, worst = (float(np.percentile(us, q)) for q in (50, 99, 100))
    params: dict[str, Any] = {
        "intents": n,
        "open_positions": positions,
        "inputs_per_intent": len(INPUTS),
    }
    notify: list[BenchRow] = []
    if not args.no_notify:
        figures = asyncio.run(
            measure_notify(
                symbols=args.symbols,
                ticks=args.ticks,
                tick_interval_s=args.tick_interval,
                events_per_s=args.events_per_s,
                history_h=args.history_h,
                seed=args.seed,
            )
        )
        notify = notify_rows(figures)
        params |= {
            "engine_symbols": args.symbols,
            "ticks": args.ticks,
            "tick_interval_s": args.tick_interval,
            "events_per_s": args.events_per_s,
        }
    return BenchReport(
        name="risk",
        params=params,
        rows=[
            BenchRow("gate decision p50", p50, "µs"),
            BenchRow(
                "gate decision p99",
                p99,
                "µs",
                target=f"<= {TARGET_P99_US:g}",
                passed=p99 <= TARGET_P99_US,
            ),
            BenchRow("gate decision max", worst, "µs"),
            BenchRow("intents allowed", float(allowed), "count"),
            *notify,
        ],
    )
