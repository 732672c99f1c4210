"""``arbengine bench sim``: aggTrade messages per second the sim delivers to one client.

The sim runs in this process on uvloop with the as-fast-as-possible clock; the
client (aiohttp, parsing every message and checking id contiguity) runs in a
second process, so each has a core of a 2-core machine. The target is
100 000 messages/s: the sim must never be what limits the ingest benchmark.
The client is usually the bottleneck; the sim's CPU per message sent shows
its own headroom (1 / that figure is what one core of sim could push).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import orjson
import uvloop

from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.sim.server import SimConfig, SimServer
from arbengine.sim.wshub import WsRules

TARGET = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured start")
    parser.add_argument(
        "--symbols", default="BTCUSDT", help="symbols streamed to the one client (comma list)"
    )
    parser.add_argument(
        "--trade-rate", type=float, default=2000.0, help="aggTrades per simulated second"
    )
    parser.add_argument(
        "--combined", action="store_true", help="use a combined stream (wrapped messages)"
    )


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    symbols = tuple(s.strip().upper() for s in str(args.symbols).split(",") if s.strip())
    config = SimConfig(
        port=0,
        speed=0.0,
        symbols=symbols,
        trade_rate=float(args.trade_rate),
        history_days=0,
        max_tape=2_000_000,
        ws=WsRules(max_backlog_bytes=1 << 30),
    )
    async with SimServer(config) as sim:
        names = [f"{s.lower()}@aggTrade" for s in symbols]
        if args.combined or len(names) > 1:
            url = f"{sim.market_ws_url}/stream?streams={'/'.join(names)}"
        else:
            url = f"{sim.market_ws_url}/ws/{names[0]}"
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "arbengine.benchmarks.sim_bench_client",
            url,
            str(args.seconds),
            str(args.warmup),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        out, _ = await proc.communicate()
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        if proc.returncode != 0:
            raise RuntimeError(f"bench client failed with exit code {proc.returncode}")
        result: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
        result["server_cpu_share"] = cpu / wall if wall > 0 else 0.0
        sent = sim.hub.messages_sent
        result["server_us_per_message"] = cpu / sent * 1e6 if sent else 0.0
        result["sim_seconds"] = (sim.sim_time_ms - sim.start_ms) / 1000.0
        return result


def run(args: argparse.Namespace) -> BenchReport:
    result = uvloop.run(_bench(args))
    rate = float(result["rate"])
    return BenchReport(
        name="sim",
        params={
            "symbols": args.symbols,
            "trade_rate": args.trade_rate,
            "seconds": args.seconds,
            "combined": bool(args.combined),
            "client": "aiohttp in a separate process, every message parsed",
        },
        rows=[
            BenchRow("aggTrade messages delivered", rate, "msg/s", f">= {TARGET}", rate >= TARGET),
            BenchRow("messages measured", float(result["messages"]), "msg"),
            BenchRow("payload throughput", float(result["bytes_per_s"]) / 1e6, "MB/s"),
            BenchRow(
                "id gaps seen by the client",
                float(result["gaps"]),
                "gaps",
                "0",
                result["gaps"] == 0,
            ),
            BenchRow("sim process CPU", float(result["server_cpu_share"]) * 100, "% of a core"),
            BenchRow(
                "sim CPU per message sent (all work included)",
                float(result["server_us_per_message"]),
                "µs",
            ),
            BenchRow("simulated time covered", float(result["sim_seconds"]), "s"),
        ],
    )
