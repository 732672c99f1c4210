"""``arbengine sim`` as a process, and the ``sim`` benchmark end to end."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect

from arbengine.benchmarks import sim_bench as bench
from arbengine.sim.sim_command import Chaos, run_chaos
from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import WAIT, wait_for

CLI = (  # what ``arbengine sim`` does, without depending on the rest of the CLI
    "import argparse, sys\n"
    "from arbengine.domain.errors import ConfigError\n"
    "from arbengine.sim import sim_args, sim_command as cli\n"
    "parser = argparse.ArgumentParser()\n"
    "sim_args.add_arguments(parser)\n"
    "try:\n"
    "    sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n"
    "except ConfigError as exc:\n"
    "    print(f'arbengine: config error: {exc}', file=sys.stderr)\n"
    "    sys.exit(2)\n"
)
REST = re.compile(r"""\brest["']?\s*[=:]\s*["']?(http://[0-9.]+:\d+)""")


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_cli_serves_until_sigint(http: aiohttp.ClientSession) -> None:
    proc = await start_cli(
        "--port",
        "0",
        "--speed",
        "10",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--seed",
        "3",
        "--start",
        "2024-01-01T00:00:00Z",
    )
    assert proc.stdout is not None
    try:
        rest = None
        while rest is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "the sim exited before announcing its URLs"
            if "sim.started" in line:
                found = REST.search(line)
                assert found, line
                rest = found.group(1)
                for name in ("market_ws", "private_ws", "coinbase", "control"):
                    assert name in line
        async with http.get(f"{rest}/fapi/v1/time") as resp:
            assert resp.status == 200
        async with http.get(f"{rest}/_sim/state") as resp:
            state = await resp.json()
        assert (state["mode"], state["speed"]) == ("realtime", 10.0)
        assert sorted(state["symbols"]) == ["BTCUSDT", "ETHUSDT"]
        assert state["start_ms"] == 1_704_067_200_000
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_refuses_a_missing_replay_file_and_a_bad_speed() -> None:
    for args in (
        ["--port", "0", "--replay", "/nonexistent/recording.jsonl"],
        ["--port", "0", "--speed", "fast"],
    ):
        proc = await start_cli(*args)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 2, out
        assert b"config error: sim:" in out
        assert b"Traceback" not in out


def test_bench_reports_its_figures() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    report = bench.run(parser.parse_args(["--seconds", "0.5", "--warmup", "0.2"]))
    assert report.name == "sim"
    rows = {r.metric: r for r in report.rows}
    delivered = rows["aggTrade messages delivered"]
    assert delivered.unit == "msg/s"
    assert delivered.target == ">= 100000"
    assert delivered.value > 0
    assert rows["id gaps seen by the client"].value == 0


async def test_chaos_flags_drop_connections_and_open_gaps(make_sim: MakeSim) -> None:
    sim = await make_sim()
    await sim.advance_to(START + 3_000)
    chaos = asyncio.create_task(run_chaos(sim, Chaos(drop_every_s=0.05, gap_every_s=0.05)))
    try:
        async with connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade", max_queue=None) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT)
        await wait_for(lambda: bool(sim.faults.withheld))
    finally:
        chaos.cancel()
    (symbol, ranges), *_ = sim.faults.withheld.items()
    last = sim.tape(symbol).last_id or 0
    assert ranges[0][0] > last
