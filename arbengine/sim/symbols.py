"""Contract specifications of the simulated symbols, and the number formats Binance uses.

Prices and quantities live as integers in units of ``10**-precision`` everywhere in
the sim (tape, account, formatting), so a price can never drift off its tick and
formatting a string is integer arithmetic, not float rounding. The string forms
follow Binance: aggTrade ``p``/``q`` carry exactly ``pricePrecision`` /
``quantityPrecision`` decimals, mark prices eight.

The filter values are the ones Binance publishes for these contracts (rounded
where Binance moves them often); ``MIN_NOTIONAL`` is 100 for BTC/ETH and 5 for
the others, as the engine's tests expect. Any other ``…USDT`` name gets a
plausible small-cap contract generated from the name (``generated_spec``), so
the sim can list hundreds of perpetuals that differ as real ones do.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    base: str
    price_precision: int
    qty_precision: int
    tick: int
    """Tick size in price units (``10**-price_precision``)."""
    step: int
    """Lot step in quantity units (``10**-qty_precision``)."""
    min_price: str
    max_price: str
    min_qty: int
    max_qty: int
    market_max_qty: int
    min_notional: int
    start_price: float
    daily_vol: float
    """Calm-regime daily volatility of the log price."""
    median_notional: float
    """Median aggTrade size in USDT."""
    open_interest_usd: float
    maint_margin_rate: Decimal
    coinbase_tick: Decimal
    funding_interval_hours: int = 8
    quote: str = "USDT"

    @property
    def price_scale(self) -> int:
        return int(10**self.price_precision)

    @property
    def qty_scale(self) -> int:
        return int(10**self.qty_precision)

    @property
    def tick_size(self) -> Decimal:
        return Decimal(self.tick).scaleb(-self.price_precision)

    @property
    def step_size(self) -> Decimal:
        return Decimal(self.step).scaleb(-self.qty_precision)

    @property
    def coinbase_product(self) -> str:
        return f"{self.base}-USD"


def _spec(**kw: Any) -> SymbolSpec:
    return SymbolSpec(**kw)


KNOWN_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": _spec(
        symbol="BTCUSDT",
        base="BTC",
        price_precision=2,
        qty_precision=3,
        tick=10,
        step=1,
        min_price="261.10",
        max_price="809484",
        min_qty=1,
        max_qty=1_000_000,
        market_max_qty=120_000,
        min_notional=100,
        start_price=60_000.0,
        daily_vol=0.03,
        median_notional=2_000.0,
        open_interest_usd=6e9,
        maint_margin_rate=Decimal("0.004"),
        coinbase_tick=Decimal("0.01"),
    ),
    "ETHUSDT": _spec(
        symbol="ETHUSDT",
        base="ETH",
        price_precision=2,
        qty_precision=3,
        tick=1,
        step=1,
        min_price="39.86",
        max_price="306177",
        min_qty=1,
        max_qty=10_000_000,
        market_max_qty=2_000_000,
        min_notional=100,
        start_price=3_000.0,
        daily_vol=0.04,
        median_notional=1_500.0,
        open_interest_usd=4e9,
        maint_margin_rate=Decimal("0.005"),
        coinbase_tick=Decimal("0.01"),
    ),
    "SOLUSDT": _spec(
        symbol="SOLUSDT",
        base="SOL",
        price_precision=4,
        qty_precision=0,
        tick=100,
        step=1,
        min_price="0.4200",
        max_price="6857",
        min_qty=1,
        max_qty=1_000_000,
        market_max_qty=5_000,
        min_notional=5,
        start_price=150.0,
        daily_vol=0.06,
        median_notional=600.0,
        open_interest_usd=2e9,
        maint_margin_rate=Decimal("0.01"),
        coinbase_tick=Decimal("0.01"),
    ),
    "XRPUSDT": _spec(
        symbol="XRPUSDT",
        base="XRP",
        price_precision=4,
        qty_precision=1,
        tick=1,
        step=1,
        min_price="0.0143",
        max_price="100000",
        min_qty=1,
        max_qty=100_000_000,
        market_max_qty=20_000_000,
        min_notional=5,
        start_price=0.6,
        daily_vol=0.05,
        median_notional=400.0,
        open_interest_usd=1e9,
        maint_margin_rate=Decimal("0.01"),
        coinbase_tick=Decimal("0.0001"),
    ),
}


def generated_spec(symbol: str) -> SymbolSpec:
    """A plausible small-cap perpetual for a name the sim has no spec for, the same every time.

    Real USD-M contracts outside the majors are priced from a fraction of a cent to hundreds
    of dollars, with about five significant digits of price (a tick of 1e-4 to 1e-5 of the
    price) and a lot step worth a few dollars at most; they are more volatile than the
    majors, hold tens to hundreds of millions of dollars of open interest, and a good share
    of them settle funding every four hours. Drawn from a generator seeded by the name.
    """
    rng = random.Random(zlib.crc32(symbol.encode()))
    magnitude = rng.uniform(-3.0, 2.5)
    digits = math.floor(magnitude)
    price_precision = min(8, max(1, 4 - digits))
    qty_precision = min(3, max(0, digits))
    scale = 10**price_precision
    start_units = max(100, round(10**magnitude * scale))
    # About $50 M at most per order ($5 M at market), in lot units.
    max_qty = 10 ** (math.ceil(math.log10(5e7 * scale / start_units)) + qty_precision)
    return _spec(
        symbol=symbol,
        base=symbol[:-4] if symbol.endswith("USDT") else symbol,
        price_precision=price_precision,
        qty_precision=qty_precision,
        tick=1,
        step=1,
        min_price=fmt_units(1, price_precision),
        max_price=str(max(1, start_units * 1000 // scale)),
        min_qty=1,
        max_qty=max_qty,
        market_max_qty=max_qty // 10,
        min_notional=5,
        start_price=start_units / scale,
        daily_vol=rng.uniform(0.04, 0.10),
        median_notional=10 ** rng.uniform(2.0, 2.8),
        open_interest_usd=10 ** rng.uniform(7.3, 8.7),
        maint_margin_rate=rng.choice((Decimal("0.01"), Decimal("0.015"), Decimal("0.02"))),
        coinbase_tick=Decimal(1).scaleb(-min(price_precision, 6)),
        funding_interval_hours=4 if rng.random() < 0.3 else 8,
    )


def spec_for(symbol: str, funding_interval_hours: int | None = None) -> SymbolSpec:
    """The spec of ``symbol``; any other name gets a generated small-cap spec."""
    symbol = symbol.upper()
    spec = KNOWN_SPECS.get(symbol) or generated_spec(symbol)
    if funding_interval_hours is not None:
        spec = replace(spec, funding_interval_hours=funding_interval_hours)
    return spec


def spec_from_precisions(symbol: str, price_precision: int, qty_precision: int) -> SymbolSpec:
    """A spec for a replayed symbol whose filters we only know from the strings seen."""
    base = spec_for(symbol)
    if base.price_precision == price_precision and base.qty_precision == qty_precision:
        return base
    return replace(
        base,
        price_precision=price_precision,
        qty_precision=qty_precision,
        tick=1,
        step=1,
        min_qty=1,
    )


# ---------------------------------------------------------------------------------------------
# Formatting and parsing


def fmt_units(units: int, precision: int) -> str:
    """``12345, 2`` → ``"123.45"``: an integer count of ``10**-precision`` as Binance prints it."""
    if precision == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**precision)
    return f"{sign}{whole}.{frac:0{precision}d}"


def fmt_decimal(value: Decimal, places: int = 8) -> str:
    """Fixed-point with ``places`` decimals, never exponent notation."""
    q = Decimal(1).scaleb(-places)
    return f"{value.quantize(q):f}"


def fmt_float(value: float, places: int = 8) -> str:
    return f"{value:.{places}f}"


class NumberFormatError(ValueError):
    """The text is not a plain non-negative decimal number."""


class PrecisionError(ValueError):
    """More decimals than the symbol allows (Binance -1111)."""


def parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise NumberFormatError(text) from None
    if not value.is_finite():
        raise NumberFormatError(text)
    return value


def to_units(text: str, precision: int) -> int:
    """Parse ``text`` into ``10**-precision`` units; PrecisionError when it has finer digits."""
    value = parse_decimal(text)
    scaled = value.scaleb(precision)
    if scaled != scaled.to_integral_value():
        raise PrecisionError(text)
    return int(scaled)


def decimals_of(text: str) -> int:
    """How many digits follow the point in ``text`` (``"1.2300"`` → 4)."""
    _, _, frac = text.partition(".")
    return len(frac)


# ---------------------------------------------------------------------------------------------
# exchangeInfo

RATE_LIMITS: list[dict[str, Any]] = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]

_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]


def symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    qty = spec.qty_precision
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base,
        "quoteAsset": spec.quote,
        "marginAsset": spec.quote,
        "pricePrecision": spec.price_precision,
        "quantityPrecision": spec.qty_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": spec.min_price,
                "maxPrice": spec.max_price,
                "tickSize": fmt_units(spec.tick, spec.price_precision),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt_units(spec.min_qty, qty),
                "maxQty": fmt_units(spec.max_qty, qty),
                "stepSize": fmt_units(spec.step, qty),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt_units(spec.min_qty, qty),
                "maxQty": fmt_units(spec.market_max_qty, qty),
                "stepSize": fmt_units(spec.step, qty),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": str(spec.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": _ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }


def exchange_info(
    specs: list[SymbolSpec], server_time_ms: int, rate_limits: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "assets": [
            {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
        ],
        "symbols": [symbol_info(s) for s in specs],
    }
