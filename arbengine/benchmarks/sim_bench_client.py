"""The bench's websocket client, run in its own process so it has its own core.

``python -m arbengine.benchmarks.sim_bench_client URL SECONDS WARMUP`` connects with
aiohttp (C frame reader), parses every message with orjson, checks that each
symbol's aggTrade ids are contiguous, and prints one JSON line of results.
"""

from __future__ import annotations

import sys
import time

import aiohttp
import orjson
import uvloop


async def measure(url: str, seconds: float, warmup: float) -> dict[str, float | int]:
    loads = orjson.loads
    last: dict[str, int] = {}
    gaps = 0
    count = 0
    nbytes = 0
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=0, compress=0, autoping=True) as ws,
    ):
        connected = time.perf_counter()
        start = connected + warmup
        end = start + seconds
        measuring = False
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            data = loads(msg.data)
            if "stream" in data:
                data = data["data"]
            sym = data["s"]
            a = data["a"]
            prev = last.get(sym)
            if prev is not None and a != prev + 1:
                gaps += 1
            last[sym] = a
            if measuring:
                count += 1
                nbytes += len(msg.data)
                if count & 1023 == 0 and time.perf_counter() >= end:
                    break
            elif time.perf_counter() >= start:
                measuring = True
                start = time.perf_counter()
                end = start + seconds
        elapsed = time.perf_counter() - start
    return {
        "messages": count,
        "seconds": elapsed,
        "rate": count / elapsed if elapsed > 0 else 0.0,
        "bytes_per_s": nbytes / elapsed if elapsed > 0 else 0.0,
        "gaps": gaps,
    }


def main() -> None:
    url, seconds, warmup = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    result = uvloop.run(measure(url, seconds, warmup))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
