"""Coinbase spot ticker, for the Coinbase premium (public endpoint, no key)."""

from __future__ import annotations

from datetime import datetime

import aiohttp

from arbengine.exchange.exchange_errors import (
    FatalExchangeError,
    InvalidResponse,
    RetryableExchangeError,
)
from arbengine.exchange.replies import SpotTicker, decode_reply


class ProductNotFound(FatalExchangeError):
    """Coinbase has no such product (the symbol has no USD market there)."""


def product_for(symbol: str) -> str | None:
    """BTCUSDT → BTC-USD; None for symbols not quoted in USDT/USDC."""
    for quote in ("USDT", "USDC"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}-USD"
    return None


def parse_time_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class CoinbaseTicker:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, timeout_s: float = 10.0):
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def ticker(self, product: str) -> SpotTicker:
        """The product's ticker; its ``time`` checked to be an ISO time (``InvalidResponse``)."""
        url = f"{self.base_url}/products/{product}/ticker"
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableExchangeError(
                f"coinbase {product}: {type(exc).__name__}: {exc}"
            ) from exc
        if status == 404:
            raise ProductNotFound(f"coinbase has no product {product}", status=404)
        if status != 200:
            raise RetryableExchangeError(f"coinbase {product}: HTTP {status}", status=status)
        ticker = decode_reply(body, SpotTicker, f"coinbase {product}")
        try:
            parse_time_ms(ticker.time)
        except ValueError:
            raise InvalidResponse(
                f"coinbase {product}: unexpected reply: time {ticker.time[:40]!r} is not ISO 8601"
            ) from None
        return ticker
