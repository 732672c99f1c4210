"""``arbengine bench ingest``: the simulated exchange at full speed → collectors → PostgreSQL.

Two phases, on a private embedded PostgreSQL (or ``--database-url``):

1. throughput: the sim (its own process, so it has the second core) runs as
   fast as the collector drains; we measure trades committed per second, then
   pause the sim and check zero loss: every id from the first to the last
   released is stored exactly once;
2. latency: the sim in real time at ``--latency-rate`` trades/s in total; we
   measure trade time to commit for every trade (p50, p99).

The collector and writer are the daemon's own classes, wired as the daemon does.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
import asyncpg

from arbengine.benchmarks import bench_database
from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.benchmarks.processes import sim_process
from arbengine.collect.market_stream import CollectorPolicy, MarketStreamCollector
from arbengine.domain.market import MarketEvent
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import RemoteClock, SystemClock
from arbengine.settings import ExchangeSettings
from arbengine.store.market_writer import MarketWriter, WriterPolicy
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import maintain_partitions

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument(
        "--trade-rate", type=float, default=20_000.0,
        help="sim trades/s per symbol (simulated time) in the throughput phase",
    )  # fmt: skip
    parser.add_argument("--latency-rate", type=float, default=2000.0, help="trades/s, all symbols")
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a private one")


async def _control(session: aiohttp.ClientSession, urls: dict[str, str], path: str,
                   body: dict[str, Any] | None = None) -> Any:  # fmt: skip
    method = session.post if body is not None else session.get
    async with method(f"{urls['control']}{path}", json=body) as response:
        return await response.json()


class _Pipeline:
    """Collector → channel → writer, as the daemon wires them."""

    def __init__(self, pool: asyncpg.Pool, session: aiohttp.ClientSession,
                 urls: dict[str, str], record_latency: bool) -> None:  # fmt: skip
        self.rest = rest = BinanceRest(
            session, urls["rest"], weight_safety=ExchangeSettings().weight_safety
        )
        self.channel: Channel[MarketEvent] = Channel("bench-market", 50_000, OverflowPolicy.BLOCK)
        self.collector = MarketStreamCollector(
            SYMBOLS, rest, urls["market_ws"], self.channel,
            policy=CollectorPolicy(repair_grace_s=0.5),
        )  # fmt: skip
        # Trade time is exchange time: latency is measured on the exchange's clock.
        self.exchange_clock = RemoteClock(SystemClock(), 0)
        self.writer = MarketWriter(pool, self.channel, WriterPolicy(), clock=self.exchange_clock)
        self.writer.record_latency = record_latency
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> _Pipeline:
        self.exchange_clock.offset_ms = await self.rest.sync_time()
        self._tasks = [
            asyncio.create_task(self.collector.run(), name="collector"),
            asyncio.create_task(self.writer.run(), name="writer"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.collector.request_stop()
        await asyncio.wait_for(self._tasks[0], 30)
        self.channel.close()
        await asyncio.wait_for(self._tasks[1], 60)


async def _stored(pool: asyncpg.Pool) -> dict[str, tuple[int, int, int]]:
    rows = await pool.fetch(
        "SELECT symbol, count(*) AS n, min(agg_id) AS lo, max(agg_id) AS hi "
        "FROM agg_trades GROUP BY symbol"
    )
    return {r["symbol"]: (int(r["n"]), int(r["lo"]), int(r["hi"])) for r in rows}


async def _throughput(pool: asyncpg.Pool, args: argparse.Namespace) -> dict[str, float]:
    sim_args = ["--speed", "0", "--symbols", ",".join(SYMBOLS), "--trade-rate",
                str(args.trade_rate), "--seed", "3"]  # fmt: skip
    async with sim_process(sim_args) as (_, urls), aiohttp.ClientSession() as session:
        async with _Pipeline(pool, session, urls, record_latency=False) as pipe:
            await asyncio.sleep(2.0)  # warm-up: connect, first batches
            start_rows, started = pipe.writer.trades_written, time.perf_counter()
            await asyncio.sleep(args.seconds)  # the measured window
            rows = pipe.writer.trades_written - start_rows
            elapsed = time.perf_counter() - started
            await _control(session, urls, "/clock", {"pause": True})
            state = await _control(session, urls, "/state")
            targets = {s: state["symbols"][s]["last_id"] for s in SYMBOLS}

            async def caught_up() -> None:
                while True:
                    stored = await _stored(pool)
                    if all(stored.get(s, (0, 0, -1))[2] >= targets[s] for s in SYMBOLS):
                        return
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(caught_up(), 120)
        stored = await _stored(pool)
    missing = sum((hi - lo + 1) - n for n, lo, hi in stored.values())
    return {"rate": rows / elapsed, "rows": float(rows), "missing": float(missing),
            "total": float(sum(n for n, _, _ in stored.values()))}  # fmt: skip


async def _latency(pool: asyncpg.Pool, args: argparse.Namespace) -> list[float]:
    await pool.execute("TRUNCATE agg_trades, agg_trades_meta")
    per_symbol = args.latency_rate / len(SYMBOLS)
    sim_args = ["--speed", "1", "--symbols", ",".join(SYMBOLS), "--trade-rate",
                str(per_symbol), "--seed", "5"]  # fmt: skip
    async with sim_process(sim_args) as (_, urls), aiohttp.ClientSession() as session:
        for symbol in SYMBOLS:  # a constant rate: no volatile bursts
            await _control(session, urls, "/market", {"symbol": symbol, "regime": "calm"})
        async with _Pipeline(pool, session, urls, record_latency=False) as pipe:
            await asyncio.sleep(2.0)
            pipe.writer.latencies_ms.clear()
            pipe.writer.record_latency = True
            await asyncio.sleep(args.seconds)
            pipe.writer.record_latency = False
            return list(pipe.writer.latencies_ms)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _bench(args: argparse.Namespace) -> BenchReport:
    async with bench_database(args.database_url) as url:
        conn = await asyncpg.connect(url)
        await apply_migrations(conn)
        await maintain_partitions(conn, int(time.time() * 1000))
        await conn.close()
        pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
        try:
            result = await _throughput(pool, args)
            latencies = await _latency(pool, args)
        finally:
            await pool.close()
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    return BenchReport(
        name="ingest",
        params={
            "seconds": args.seconds,
            "symbols": len(SYMBOLS),
            "latency_rate": args.latency_rate,
        },
        rows=[
            BenchRow(
                "throughput", result["rate"], "trades/s", ">= 50000", result["rate"] >= 50_000
            ),
            BenchRow("trades stored", result["total"], "trades"),
            BenchRow("missing ids", result["missing"], "trades", "== 0", result["missing"] == 0),
            BenchRow("latency p50 @2000/s", p50, "ms"),
            BenchRow("latency p99 @2000/s", p99, "ms", "<= 250", p99 <= 250),
            BenchRow("latency samples", float(len(latencies)), "trades"),
        ],
    )


def run(args: argparse.Namespace) -> BenchReport:
    import uvloop

    return uvloop.run(_bench(args))
