"""Market events that travel on the market channel, typed and frozen.

Trades travel in columnar batches, not one object per trade: at tens of
thousands of trades a second, per-trade objects would cost more than the
work done on them. A batch is contiguous in ``agg_id`` when it comes from
the tape (gap repair guarantees it), and always ordered by ``agg_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TradeSource = Literal["stream", "rest"]


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """aggTrades of one symbol, ordered by agg_id, as parallel columns."""

    symbol: str
    agg_id: list[int]
    ts: list[int]
    """Trade time ``T`` in epoch ms."""
    price: list[float]
    qty: list[float]
    first_trade_id: list[int]
    last_trade_id: list[int]
    is_buyer_maker: list[bool]
    """``m``: the buyer was the maker, so the taker SOLD."""
    received_ms: int = 0
    """Wall-clock time the newest trade of the batch was received (latency metrics)."""

    @classmethod
    def of(
        cls,
        symbol: str,
        agg_id: list[int],
        ts: list[int],
        price: list[float],
        qty: list[float],
        first_trade_id: list[int],
        last_trade_id: list[int],
        is_buyer_maker: list[bool],
        *,
        received_ms: int = 0,
    ) -> TradeBatch:
        """The one way to build a batch from parallel columns (the exchange edge's decode)."""
        return cls(
            symbol,
            agg_id,
            ts,
            price,
            qty,
            first_trade_id,
            last_trade_id,
            is_buyer_maker,
            received_ms,
        )

    def __len__(self) -> int:
        return len(self.agg_id)

    def rows(self) -> list[tuple[str, int, int, float, float, int, int, bool]]:
        """Rows in ``agg_trades`` column order."""
        n = len(self.agg_id)
        return list(
            zip(
                [self.symbol] * n,
                self.agg_id,
                self.ts,
                self.price,
                self.qty,
                self.first_trade_id,
                self.last_trade_id,
                self.is_buyer_maker,
                strict=True,
            )
        )

    def slice(self, start: int, stop: int) -> TradeBatch:
        return TradeBatch(
            self.symbol,
            self.agg_id[start:stop],
            self.ts[start:stop],
            self.price[start:stop],
            self.qty[start:stop],
            self.first_trade_id[start:stop],
            self.last_trade_id[start:stop],
            self.is_buyer_maker[start:stop],
            self.received_ms,
        )


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """One premiumIndex reading (REST, every 2 s)."""

    symbol: str
    ts: int
    mark_price: float
    index_price: float
    estimated_settle_price: float | None
    funding_rate: float
    interest_rate: float | None
    next_funding_time: int | None
    known_at: int = 0
    """When the reading became visible here (exchange clock); 0 means ``ts``."""

    @property
    def visible_at(self) -> int:
        return self.known_at or self.ts


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """A markPrice stream update (``<symbol>@markPrice@1s``)."""

    symbol: str
    ts: int
    """Event time ``E``."""
    mark_price: float
    index_price: float
    estimated_settle_price: float | None
    funding_rate: float
    next_funding_time: int


IndicatorKind = Literal[
    "funding_rate",  # fundingRate history: value = rate, data.mark_price
    "funding_interval_hours",
    "open_interest",  # /fapi/v1/openInterest point value
    "open_interest_hist",  # 5m period: value = sumOpenInterest, data.value_usd
    "ls_global",  # globalLongShortAccountRatio
    "ls_top_position",  # topLongShortPositionRatio
    "ls_top_account",  # topLongShortAccountRatio
    "taker_ratio",  # takerlongshortRatio: value = buySellRatio
    "coinbase_price",
    "mark_price",
    "index_price",
]

TAPE_INPUT = "tape"
"""The trade tape of a symbol, as an input the engine waits for: caught up over REST."""
PREMIUM_INDEX_INPUT = "premium_index"
"""premiumIndex readings (``RateSnapshot``) as an input; indicator series go by their kind."""


@dataclass(frozen=True, slots=True)
class Indicator:
    """A market series value and the time it became known (see SIGNALS.md, Time)."""

    symbol: str
    kind: str
    ts: int
    known_at: int
    value: float | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A forceOrder event. ``side`` SELL liquidates a long, BUY a short."""

    symbol: str
    ts: int
    """Order time ``o.T``."""
    event_time: int
    side: Literal["BUY", "SELL"]
    order_type: str
    time_in_force: str
    qty: float
    price: float
    avg_price: float
    status: str
    last_qty: float
    filled_qty: float

    @property
    def notional(self) -> float:
        return self.avg_price * self.filled_qty


@dataclass(frozen=True, slots=True)
class TapeGap:
    """Bookkeeping the tape reports for ``agg_trades_meta``."""

    symbol: str
    from_id: int
    to_id: int
    outcome: Literal["seen", "repaired", "hole"]


MarketEvent = TradeBatch | RateSnapshot | MarkPrice | Indicator | Liquidation | TapeGap
