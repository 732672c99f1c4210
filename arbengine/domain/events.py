"""Typed events passed between tasks: market data in, signals out.

Frozen msgspec Structs so a consumer can neither mutate what another consumer
also holds nor decode a payload with a misspelt field. Times are epoch
milliseconds as the exchange sends them; which time a value counts from
("known" time) is decided here, once, so the live engine and the backtester
cannot disagree about it.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec


class AggTrade(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One Binance aggTrade (`a`, `p`, `q`, `T`, `m`)."""

    symbol: str
    agg_id: int
    price: float
    qty: float
    time_ms: int
    is_buyer_maker: bool
    """True: the buyer was the maker, so the taker sold (signed volume −q)."""


class MarkPrice(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A markPrice stream update or a premiumIndex REST answer.

    ``time_ms`` is the stream's ``E`` or the REST ``time``: the moment the
    funding rate and index price became known.
    """

    symbol: str
    time_ms: int
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time_ms: int = 0


class Liquidation(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A forceOrder event. Its time is the order time ``o.T``.

    ``side`` is the liquidation order's side: BUY closes (liquidates) a short,
    SELL a long.
    """

    symbol: str
    side: Literal["BUY", "SELL"]
    order_time_ms: int
    avg_price: float
    filled_qty: float

    @property
    def notional(self) -> float:
        return self.avg_price * self.filled_qty


class IndicatorKind(enum.StrEnum):
    """Indicator series the signal engine reads; the value's unit is in the name."""

    FUNDING_RATE = "funding_rate"
    FUNDING_INTERVAL_HOURS = "funding_interval_hours"
    OPEN_INTEREST = "open_interest"
    INDEX_PRICE = "index_price"
    COINBASE_PRICE = "coinbase_price"
    LS_GLOBAL_RATIO = "ls_global_ratio"
    """Global long/short account ratio (/futures/data/globalLongShortAccountRatio)."""
    LS_TOP_RATIO = "ls_top_ratio"
    """Top-trader long/short position ratio (/futures/data/topLongShortPositionRatio)."""
    TAKER_RATIO = "taker_ratio"
    """Taker buy/sell volume ratio (/futures/data/takerlongshortRatio)."""


class Indicator(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One value of an indicator series.

    Point values (premiumIndex, markPrice, openInterest, Coinbase) have
    ``period_ms`` 0 and are known at ``ts_ms``. Period series
    (``/futures/data/*``) carry the period start in ``ts_ms`` and their
    period length: the value cannot be seen before the period ends.
    """

    symbol: str
    kind: IndicatorKind
    ts_ms: int
    value: float
    period_ms: int = 0

    @property
    def known_ms(self) -> int:
        return self.ts_ms + self.period_ms


class Signal(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A strategy fired at a tick: what the paper trader and the notifier act on.

    Carries everything needed to explain and to reproduce the decision: the
    strategy's content hash, the features it saw and each factor's
    contribution ``wᵢ·sᵢ`` (absent factors are left out).
    """

    tick_ms: int
    symbol: str
    strategy: str
    strategy_hash: str
    direction: Literal[1, -1]
    score: float
    coverage: float
    price: float
    atr: float
    features: dict[str, float]
    contributions: dict[str, float]
