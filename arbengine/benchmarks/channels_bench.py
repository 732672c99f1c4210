"""``arbengine bench channels``: items/s through a BLOCK channel to a batching consumer."""

from __future__ import annotations

import argparse
import asyncio
import time

from arbengine.benchmarks.bench_report import BenchReport, BenchRow
from arbengine.runtime.channels import Channel, OverflowPolicy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=2_000_000)
    parser.add_argument("--capacity", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)


async def _measure(items: int, capacity: int, batch: int) -> tuple[float, int]:
    channel: Channel[int] = Channel("bench", capacity, OverflowPolicy.BLOCK)
    received = 0

    async def consume() -> None:
        nonlocal received
        while True:
            got = await channel.get_many(batch)
            received += len(got)
            if received >= items:
                return

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        group.create_task(consume())
        for i in range(items):
            if not channel.put_nowait(i):
                await channel.put(i)
    return time.perf_counter() - started, channel.waits_total


def run(args: argparse.Namespace) -> BenchReport:
    import uvloop

    elapsed, waits = uvloop.run(_measure(args.items, args.capacity, args.batch))
    return BenchReport(
        name="channels",
        params={"items": args.items, "capacity": args.capacity, "batch": args.batch},
        rows=[
            BenchRow("throughput", args.items / elapsed, "items/s"),
            BenchRow("producer waits", float(waits), "count"),
        ],
    )
