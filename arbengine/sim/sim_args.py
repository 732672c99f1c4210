"""``arbengine sim``'s command line: its options and their parsing, apart from the server.

Every ``arbengine`` command builds the whole parser, so this module imports nothing heavy:
the server (aiohttp and the market) is loaded only when ``arbengine sim`` runs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from arbengine.domain.durations import DurationError, format_duration_ms, parse_duration_ms
from arbengine.sim.request_auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from arbengine.sim.retention import TRADE_HISTORY_MS
from arbengine.sim.symbols import DEFAULT_SYMBOLS


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
