"""aggTrades over REST, shared by the tape's repairs and the continuity check."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from arbengine.domain.market import TradeBatch
from arbengine.exchange.budget import Priority
from arbengine.exchange.exchange_errors import RetryableExchangeError
from arbengine.exchange.payloads import AggTradeWire
from arbengine.exchange.replies import AggTrades
from arbengine.exchange.rest import BinanceRest
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_REST_RETRY, RetryPolicy, Stopped
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.stopping import unless_stopped

AGG_TRADES_LIMIT = 1000
AGG_TRADES_WEIGHT = 20

_log = get_logger("collector")
_SYSTEM_CLOCK = SystemClock()


async def fetch_agg_trades(
    rest: BinanceRest,
    symbol: str,
    params: dict[str, object],
    priority: Priority,
    stop: asyncio.Event | None = None,
    *,
    retry: RetryPolicy = EXCHANGE_REST_RETRY,
    clock: Clock = _SYSTEM_CLOCK,
) -> list[AggTradeWire]:
    """One aggTrades call, retried while the error is retryable.

    The client itself waits out weight limits, 429 pauses, 418 bans and 403
    blocks before sending, so this loop only spaces out network-level retries
    (capped and jittered). ``InvalidSymbol`` and other rejections are raised.
    ``priority``: REPAIR for the live tape, BACKFILL for holes in the stored one.
    Raises ``Stopped`` when ``stop`` is set while it waits (for the weight, the answer or
    the next try).
    """
    attempt = 0
    while True:
        try:
            rows = await unless_stopped(
                rest.get(
                    "/fapi/v1/aggTrades",
                    params,
                    reply=AggTrades,
                    weight=AGG_TRADES_WEIGHT,
                    priority=priority,
                ),
                stop,
                f"aggTrades for {symbol}",
            )
        except RetryableExchangeError as exc:
            attempt += 1
            delay = retry.delay(attempt)
            _log.warning(
                "collector.rest_retry", symbol=symbol, error=str(exc)[:200], retry_in_s=delay
            )
            if not await clock.sleep(delay, stop):
                raise Stopped(f"aggTrades for {symbol}: stopped while retrying") from exc
            continue
        return rows


def rows_to_batch(symbol: str, trades: Sequence[AggTradeWire]) -> TradeBatch:
    """Wire aggTrades of ``symbol`` (REST rows or stream payloads) as one columnar batch."""
    return TradeBatch.of(
        symbol,
        [t.a for t in trades],
        [t.T for t in trades],
        [t.p for t in trades],
        [t.q for t in trades],
        [t.f for t in trades],
        [t.l for t in trades],
        [t.m for t in trades],
    )
