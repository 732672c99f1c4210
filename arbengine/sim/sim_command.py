"""``arbengine sim``: run the simulated exchange until SIGINT/SIGTERM.

    arbengine sim --port 9000 --seed 1 --speed 10 --symbols BTCUSDT,ETHUSDT

Point the daemon at it with the URLs of the ``sim.started`` log line (REST,
market websocket, private websocket, Coinbase, control).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import UTC, datetime
from typing import Any

import msgspec
import uvloop

from arbengine.domain.durations import DurationError, format_duration_ms, parse_duration_ms
from arbengine.domain.errors import ConfigError
from arbengine.logs import get_logger
from arbengine.sim.faults import DropSpec, FaultRequest, WithholdSpec, decode_request
from arbengine.sim.limits import LimitConfig
from arbengine.sim.recording_replay import ReplayError
from arbengine.sim.request_auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from arbengine.sim.retention import TRADE_HISTORY_MS
from arbengine.sim.server import SimConfig, SimServer
from arbengine.sim.symbols import DEFAULT_SYMBOLS
from arbengine.sim.wshub import WsRules


class Chaos(msgspec.Struct, frozen=True):
    """Periodic faults for a demo (``--drop-every`` / ``--gap-every``); 0 turns one off."""

    drop_every_s: float = 0.0
    gap_every_s: float = 0.0
    gap_size: int = 5


def parse_speed(text: str) -> tuple[float, bool]:
    """``(speed, manual)`` from ``10``, ``0.5``, ``max`` (or 0) or ``manual``."""
    low = text.strip().lower()
    if low == "manual":
        return 1.0, True
    if low in ("max", "inf", "0"):
        return 0.0, False
    value = float(low)
    if value < 0:
        raise argparse.ArgumentTypeError("speed must be positive, 0/max, or manual")
    return value, False


def parse_start(text: str) -> int:
    """Epoch milliseconds, or an ISO-8601 time (UTC when no offset is given)."""
    if text.isdigit():
        return int(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def parse_trade_history(text: str) -> int:
    """``--trade-history``: a positive duration (``26h``, ``90m``) in milliseconds."""
    try:
        ms = parse_duration_ms(text)
    except DurationError as exc:
        raise ValueError(f"--trade-history: {exc}") from None
    if ms <= 0:
        raise ValueError(f"--trade-history: must be longer than 0, got {text!r}")
    return ms


def parse_rates(text: str) -> tuple[float, dict[str, float]]:
    """``20`` or ``20,BTCUSDT=100,ETHUSDT=50``: a default and per-symbol overrides."""
    default = 20.0
    overrides: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            sym, _, value = part.partition("=")
            overrides[sym.strip().upper()] = float(value)
        else:
            default = float(part)
    return default, overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=1, help="market seed (same seed, same tape)")
    parser.add_argument(
        "--speed",
        default="1",
        help="simulated seconds per real second; 'max' (or 0) = as fast as clients drain; "
        "'manual' = only POST /_sim/clock moves time",
    )
    parser.add_argument(
        "--symbols", default=",".join(DEFAULT_SYMBOLS), help="comma-separated symbols"
    )
    parser.add_argument(
        "--trade-rate",
        default="20",
        help="aggTrades per simulated second per symbol, e.g. '20' or '20,BTCUSDT=200'",
    )
    parser.add_argument("--start", help="simulated start: epoch ms or ISO time (default now)")
    parser.add_argument(
        "--trade-history",
        default=format_duration_ms(TRADE_HISTORY_MS),
        metavar="DURATION",
        help="simulated time of trades kept per symbol, how far back REST aggTrades reaches "
        "(default %(default)s; about 49 bytes a trade)",
    )
    parser.add_argument("--replay", metavar="FILE", help="serve this combined-stream recording")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="API key the sim accepts")
    parser.add_argument("--api-secret", default=DEFAULT_API_SECRET, help="its secret")
    parser.add_argument("--balance", default="10000", help="starting USDT wallet balance")
    parser.add_argument("--leverage", type=int, default=20)
    parser.add_argument("--volatility", type=float, default=1.0, help="volatility multiplier")
    parser.add_argument(
        "--liquidations", type=float, default=1.0,
        help="multiplier of the chance of a liquidation each second",
    )  # fmt: skip
    parser.add_argument("--weight-limit", type=int, default=2400, help="REQUEST_WEIGHT per minute")
    parser.add_argument(
        "--futures-data-limit", type=int, default=1000,
        help="requests to /futures/data/* per 5 minutes per IP",
    )  # fmt: skip
    parser.add_argument(
        "--funding-limit", type=int, default=500,
        help="requests to fundingRate and fundingInfo per 5 minutes per IP",
    )  # fmt: skip
    parser.add_argument(
        "--no-timestamp-check", action="store_true", help="accept any signed timestamp"
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--faults", metavar="JSON", help="faults in force from the start (POST /_sim/faults schema)"
    )
    faults.add_argument("--rest-latency-ms", type=int, default=0, help="delay every REST answer")
    faults.add_argument("--ws-latency-ms", type=int, default=0, help="delay websocket data")
    faults.add_argument(
        "--drop-every",
        type=float,
        default=0.0,
        metavar="S",
        help="drop every websocket connection every S seconds",
    )
    faults.add_argument(
        "--gap-every",
        type=float,
        default=0.0,
        metavar="S",
        help="every S seconds withhold a few aggTrades of one symbol from the stream",
    )


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
