"""Market events that travel on the market channel, typed and frozen.

Trades travel in columnar batches, not one object per trade: at tens of
thousands of trades a second, per-trade objects would cost more than the
work done on them. A batch is contiguous in ``agg_id`` when it comes from
the tape (gap repair guarantees it), and always ordered by ``agg_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
B8 = NDArray[np.bool_]

TradeRow = tuple[str, int, int, float, float, int, int, bool]
"""One trade in ``agg_trades`` column order (what a COPY sends)."""


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """aggTrades of one symbol as numpy columns: the one trade batch of the codebase.

    The collector's tape emits it, the writer copies it into ``agg_trades``, the
    engine and the backtest replay feed it to the feature state. Columns, not
    trade objects, because every consumer works on whole columns (numpy in the
    engine, a COPY in the writer) and millions of trades a second pass through a
    replay. Build with :meth:`of`, which coerces sequences or arrays.

    ``first_trade_id`` and ``last_trade_id`` are either as long as the other
    columns or both empty, meaning *not loaded*: the backtest replay does not read
    them (nothing but storage uses them), which saves a sixth of its read. Such a
    batch cannot be stored (:meth:`rows` refuses it).
    """

    symbol: str
    agg_id: I64
    ts: I64
    """Trade time ``T`` in epoch ms."""
    price: F64
    qty: F64
    first_trade_id: I64
    last_trade_id: I64
    is_buyer_maker: B8
    """``m``: the buyer was the maker, so the taker SOLD."""
    received_ms: int = 0
    """Wall-clock time the newest trade of the batch was received (latency metrics)."""

    def __post_init__(self) -> None:
        n = len(self.agg_id)
        for name, dtype in _DTYPES:
            column = getattr(self, name)
            if not isinstance(column, np.ndarray) or column.ndim != 1 or column.dtype != dtype:
                raise TypeError(f"TradeBatch.{name} must be a 1-D {np.dtype(dtype)} array")
            if len(column) != n and not (name in _TRADE_IDS and len(column) == 0):
                raise ValueError(
                    f"TradeBatch.{name} has {len(column)} values for {n} trades"
                    + (" (empty means not loaded)" if name in _TRADE_IDS else "")
                )
        if len(self.first_trade_id) != len(self.last_trade_id):
            raise ValueError("TradeBatch.first_trade_id and last_trade_id: both loaded or neither")

    @classmethod
    def of(
        cls,
        symbol: str,
        agg_id: Iterable[int] | NDArray[np.integer[Any]],
        ts: Iterable[int] | NDArray[np.integer[Any]],
        price: Iterable[float] | NDArray[np.floating[Any]],
        qty: Iterable[float] | NDArray[np.floating[Any]],
        first_trade_id: Iterable[int] | NDArray[np.integer[Any]],
        last_trade_id: Iterable[int] | NDArray[np.integer[Any]],
        is_buyer_maker: Iterable[bool] | NDArray[np.bool_],
        *,
        received_ms: int = 0,
    ) -> TradeBatch:
        """The one way to build a batch from parallel columns (sequences or arrays).

        Arrays already of the right dtype and contiguous are used as they are, not copied.
        Empty ``first_trade_id`` and ``last_trade_id`` mean they were not loaded.
        """
        return cls(
            symbol,
            _column(agg_id, np.int64),
            _column(ts, np.int64),
            _column(price, np.float64),
            _column(qty, np.float64),
            _column(first_trade_id, np.int64),
            _column(last_trade_id, np.int64),
            _column(is_buyer_maker, np.bool_),
            received_ms,
        )

    def __len__(self) -> int:
        return len(self.agg_id)

    @property
    def has_trade_ids(self) -> bool:
        """Whether ``first_trade_id`` and ``last_trade_id`` were loaded (see the class)."""
        return len(self.first_trade_id) == len(self.agg_id)

    def take(self, index: NDArray[np.intp] | slice) -> TradeBatch:
        """The trades at ``index`` (a slice is a view, no copy), same symbol and receipt."""
        ids = self.has_trade_ids and len(self.agg_id) > 0
        return TradeBatch(
            self.symbol,
            np.ascontiguousarray(self.agg_id[index]),
            np.ascontiguousarray(self.ts[index]),
            np.ascontiguousarray(self.price[index]),
            np.ascontiguousarray(self.qty[index]),
            np.ascontiguousarray(self.first_trade_id[index]) if ids else _NOT_LOADED,
            np.ascontiguousarray(self.last_trade_id[index]) if ids else _NOT_LOADED,
            np.ascontiguousarray(self.is_buyer_maker[index]),
            self.received_ms,
        )

    def rows(self) -> Iterable[TradeRow]:
        """Rows in ``agg_trades`` column order, as Python values (what asyncpg's COPY sends)."""
        if not self.has_trade_ids:
            raise ValueError(
                f"TradeBatch of {self.symbol}: trade ids were not loaded, it cannot be stored"
            )
        return zip(
            repeat(self.symbol),
            self.agg_id.tolist(),
            self.ts.tolist(),
            self.price.tolist(),
            self.qty.tolist(),
            self.first_trade_id.tolist(),
            self.last_trade_id.tolist(),
            self.is_buyer_maker.tolist(),
        )


_DTYPES: tuple[tuple[str, type[np.generic]], ...] = (
    ("agg_id", np.int64),
    ("ts", np.int64),
    ("price", np.float64),
    ("qty", np.float64),
    ("first_trade_id", np.int64),
    ("last_trade_id", np.int64),
    ("is_buyer_maker", np.bool_),
)
_TRADE_IDS = ("first_trade_id", "last_trade_id")
_NOT_LOADED: I64 = np.empty(0, np.int64)
_NOT_LOADED.flags.writeable = False


def _column(values: object, dtype: type[np.generic]) -> NDArray[Any]:
    if not isinstance(values, np.ndarray | Sequence):  # an iterator: numpy needs a sequence
        values = list(values)  # type: ignore[call-overload]
    return np.ascontiguousarray(np.asarray(values, dtype=dtype))


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
