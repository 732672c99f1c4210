"""Binance-like symbol rules and signals for the live-trading core tests.

The rules are decoded from exchangeInfo and leverageBracket JSON in Binance's shape
(values as Binance lists them for these symbols), through the same reply structs the
executor reads, so the tests hold the decoding to the wire too.
"""

from __future__ import annotations

import json
from decimal import Decimal

from arbengine.domain.engine_rows import ExitRule
from arbengine.domain.events import Signal
from arbengine.exchange.replies import ExchangeInfo, SymbolLeverageBrackets, decode_reply
from arbengine.trading.live_rules import SymbolRules, symbol_rules

T0 = 1_765_000_800_000

_FILTERS = {
    "BTCUSDT": [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "261.10",
            "maxPrice": "809484",
            "tickSize": "0.10",
        },
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {"filterType": "MIN_NOTIONAL", "notional": "100"},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500"},
    ],
    "XRPUSDT": [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.0143",
            "maxPrice": "100000",
            "tickSize": "0.0001",
        },
        {"filterType": "LOT_SIZE", "minQty": "0.1", "maxQty": "10000000", "stepSize": "0.1"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.1", "maxQty": "2000000", "stepSize": "0.1"},
        {"filterType": "MIN_NOTIONAL", "notional": "5"},
    ],
}

_BRACKETS = [
    (1, 125, 50_000, 0),
    (2, 100, 600_000, 50_000),
    (3, 75, 3_000_000, 600_000),
    (4, 50, 12_000_000, 3_000_000),
    (5, 25, 70_000_000, 12_000_000),
    (6, 20, 100_000_000, 70_000_000),
    (7, 10, 230_000_000, 100_000_000),
    (8, 5, 480_000_000, 230_000_000),
    (9, 4, 600_000_000, 480_000_000),
    (10, 3, 800_000_000, 600_000_000),
    (11, 2, 1_200_000_000, 800_000_000),
    (12, 1, 1_800_000_000, 1_200_000_000),
]


def exchange_info_json(symbol: str) -> bytes:
    return json.dumps(
        {
            "timezone": "UTC",
            "symbols": [{"symbol": symbol, "status": "TRADING", "filters": _FILTERS[symbol]}],
        }
    ).encode()


def brackets_json(symbol: str) -> bytes:
    rows = [
        {
            "bracket": b,
            "initialLeverage": lev,
            "notionalCap": cap,
            "notionalFloor": floor,
            "maintMarginRatio": 0.004,
            "cum": 0.0,
        }
        for b, lev, cap, floor in _BRACKETS
    ]
    return json.dumps({"symbol": symbol, "notionalCoef": 1.0, "brackets": rows}).encode()


def rules_for(symbol: str) -> SymbolRules:
    info = decode_reply(exchange_info_json(symbol), ExchangeInfo, "exchangeInfo")
    brackets = decode_reply(brackets_json(symbol), SymbolLeverageBrackets, "leverageBracket")
    return symbol_rules(symbol, info.symbols[0].filters, brackets.brackets)


def signal(
    direction: int = 1,
    *,
    price: float = 60_000.0,
    atr: float = 200.0,
    symbol: str = "BTCUSDT",
    strategy: str = "v52",
    tick_ms: int = T0,
) -> Signal:
    return Signal(
        tick_ms=tick_ms,
        symbol=symbol,
        strategy=strategy,
        strategy_hash="h" * 64,
        direction=1 if direction == 1 else -1,
        score=80.0,
        coverage=100.0,
        price=price,
        atr=atr,
        features={},
        contributions={},
    )


V52_EXIT = ExitRule(
    sl_atr=1.5,
    tp1_atr=1.5,
    tp1_fraction=0.5,
    tp2_atr=3.0,
    breakeven_after_tp1=True,
    max_hold_ms=70 * 60_000,
    fee_bps=4,
    slippage_bps=1,
    risk_usd=100,
)
"""The exit block of strategies/v52.json (SIGNALS.md's example)."""

RISK = Decimal(100)
