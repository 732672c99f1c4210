"""Coinbase spot ticker, for the Coinbase premium (public endpoint, no key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import orjson

from arbengine.exchange.errors import FatalExchangeError, InvalidResponse, RetryableExchangeError


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

    async def ticker(self, product: str) -> dict[str, Any]:
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
        try:
            data = orjson.loads(body)
            float(data["price"])
            parse_time_ms(data["time"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise InvalidResponse(f"coinbase {product}: unexpected reply {body[:200]!r}") from None
        return dict(data)
