"""``arbengine sim``: run the simulated exchange until SIGINT/SIGTERM.

    arbengine sim --port 9000 --seed 1 --speed 10 --symbols BTCUSDT,ETHUSDT

Point the daemon at it with the URLs of the ``sim.started`` log line (REST,
market websocket, private websocket, Coinbase, control).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import msgspec
import uvloop

from arbengine.domain.errors import ConfigError
from arbengine.logs import get_logger
from arbengine.sim.faults import DropSpec, FaultRequest, WithholdSpec, decode_request
from arbengine.sim.limits import LimitConfig
from arbengine.sim.recording_replay import ReplayError
from arbengine.sim.server import SimConfig, SimServer
from arbengine.sim.sim_args import parse_rates, parse_speed, parse_start, parse_trade_history
from arbengine.sim.wshub import WsRules


class Chaos(msgspec.Struct, frozen=True):
    """Periodic faults for a demo (``--drop-every`` / ``--gap-every``); 0 turns one off."""

    drop_every_s: float = 0.0
    gap_every_s: float = 0.0
    gap_size: int = 5


def config_from_args(args: argparse.Namespace) -> SimConfig:
    speed, manual = parse_speed(str(args.speed))
    rate, rates = parse_rates(str(args.trade_rate))
    symbols = tuple(s.strip().upper() for s in str(args.symbols).split(",") if s.strip())
    faults: FaultRequest | None = None
    if args.faults:
        faults = decode_request(str(args.faults).encode())
    if args.rest_latency_ms or args.ws_latency_ms:
        latency = {"rest_ms": args.rest_latency_ms, "ws_ms": args.ws_latency_ms}
        merged: dict[str, Any] = msgspec.to_builtins(faults) if faults else {}
        merged["latency"] = latency
        faults = msgspec.convert(merged, FaultRequest)
    return SimConfig(
        trade_history_ms=parse_trade_history(str(args.trade_history)),
        host=args.host,
        port=args.port,
        seed=args.seed,
        speed=speed,
        manual=manual,
        symbols=symbols,
        trade_rate=rate,
        trade_rates=rates,
        start_ms=parse_start(args.start) if args.start else None,
        replay=args.replay,
        api_key=args.api_key,
        api_secret=args.api_secret,
        balance=str(args.balance),
        leverage=args.leverage,
        volatility=args.volatility,
        liquidations=args.liquidations,
        limits=LimitConfig(
            weight_per_minute=args.weight_limit,
            futures_data_requests=args.futures_data_limit,
            funding_requests=args.funding_limit,
        ),
        check_timestamps=not args.no_timestamp_check,
        ws=WsRules(),
        faults=faults,
    )


async def run_chaos(sim: SimServer, chaos: Chaos) -> None:
    """Periodic faults for a demo of the engine's resilience (``--drop-every``/``--gap-every``)."""
    loop = asyncio.get_running_loop()
    next_drop = loop.time() + chaos.drop_every_s if chaos.drop_every_s else float("inf")
    next_gap = loop.time() + chaos.gap_every_s if chaos.gap_every_s else float("inf")
    symbols = sim.market.symbols
    turn = 0
    while next_drop != float("inf") or next_gap != float("inf"):
        await asyncio.sleep(max(0.05, min(next_drop, next_gap) - loop.time()))
        now = loop.time()
        if now >= next_drop:
            sim.apply_faults(FaultRequest(drop_ws=DropSpec()))
            next_drop = now + chaos.drop_every_s
        if now >= next_gap:
            sym = symbols[turn % len(symbols)]
            turn += 1
            first = (sim.tape(sym).last_id or 0) + 1
            spec = WithholdSpec(symbol=sym, from_id=first, to_id=first + chaos.gap_size - 1)
            sim.apply_faults(FaultRequest(withhold=spec))
            next_gap = now + chaos.gap_every_s


async def serve(config: SimConfig, chaos: Chaos | None = None) -> None:
    """Run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimServer(config) as sim:
        tasks = [asyncio.create_task(sim.wait(), name="sim.wait")]
        if chaos is not None and (chaos.drop_every_s or chaos.gap_every_s):
            tasks.append(asyncio.create_task(run_chaos(sim, chaos), name="sim.chaos"))
        stopper = asyncio.create_task(stop.wait(), name="sim.stop")
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in [*tasks, stopper]:
            task.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    get_logger("sim").info("sim.stopped")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop. A user mistake raises ConfigError."""
    try:
        config = config_from_args(args)
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"sim: bad arguments: {exc}") from None
    chaos = Chaos(args.drop_every, args.gap_every)
    try:
        uvloop.run(serve(config, chaos))
    except ReplayError as exc:
        raise ConfigError(f"sim: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"sim: cannot listen on {config.host}:{config.port}: {exc}") from None
    return 0
