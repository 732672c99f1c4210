"""Sparse inputs of the feature engine: indicator values by known time, liquidations.

Both are small (at most a few values per second, pruned to what a future
tick can still read), so plain sorted Python lists are the simplest exact
structure.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from arbengine.domain.market import PREMIUM_INDEX_INPUT, TAPE_INPUT


class InputSeries(enum.StrEnum):
    """The indicator series the features read (SIGNALS.md, features table)."""

    FUNDING_RATE = "funding_rate"
    """premiumIndex ``lastFundingRate`` or markPrice ``r`` (the current rate)."""
    FUNDING_INTERVAL_HOURS = "funding_interval_hours"
    OPEN_INTEREST = "open_interest"
    INDEX_PRICE = "index_price"
    COINBASE_PRICE = "coinbase_price"
    LS_GLOBAL = "ls_global"
    """Global long/short account ratio."""
    LS_TOP = "ls_top"
    """Top-trader long/short position ratio."""
    TAKER_RATIO = "taker_ratio"
    """Taker buy/sell volume ratio."""


MARKET_KINDS: dict[str, InputSeries] = {
    "funding_interval_hours": InputSeries.FUNDING_INTERVAL_HOURS,
    "open_interest": InputSeries.OPEN_INTEREST,
    "index_price": InputSeries.INDEX_PRICE,
    "coinbase_price": InputSeries.COINBASE_PRICE,
    "ls_global": InputSeries.LS_GLOBAL,
    "ls_top_position": InputSeries.LS_TOP,
    "taker_ratio": InputSeries.TAKER_RATIO,
}
"""Collector indicator kinds (``Indicator.kind``, see ``collect/indicators.py``) the features read.

Not read: ``funding_rate`` (the *settled* fundingRate history; the feature is
the current rate from premiumIndex/markPrice), ``open_interest_hist``,
``ls_top_account`` and ``mark_price``.
"""


FEATURE_INPUTS: dict[str, tuple[str, ...]] = {
    "funding_rate": (PREMIUM_INDEX_INPUT,),
    "funding_annualised": (PREMIUM_INDEX_INPUT, "funding_interval_hours"),
    "oi_change_1h": ("open_interest",),
    "ls_global": ("ls_global",),
    "ls_top": ("ls_top_position",),
    "taker_ratio": ("taker_ratio",),
    "coinbase_premium_bps": ("coinbase_price", PREMIUM_INDEX_INPUT),
}
"""The collected inputs a feature reads besides the trade tape, by the names collectors
report their deliveries under (``arbengine.runtime.delivered_inputs``). Every other feature is
computed from trades, or from liquidations, which come from the stream alone: there is no
history of them to wait for."""

PAPER_INPUTS = ("funding_rate",)
"""Paper trading charges funding from the fundingRate history."""


def inputs_read(features: Iterable[str], *, paper: bool) -> frozenset[str]:
    """What a strategy reading ``features`` needs delivered (the tape always: a signal needs
    ``price`` and ``atr``)."""
    out = {TAPE_INPUT, *(PAPER_INPUTS if paper else ())}
    for feature in features:
        out.update(FEATURE_INPUTS.get(feature, ()))
    return frozenset(out)


class AsOfSeries:
    """Values of one indicator, ordered by the time each became known.

    Two values known at the same millisecond: the one added last wins (a
    re-poll replacing an earlier answer).
    """

    def __init__(self) -> None:
        self._known: list[int] = []
        self._values: list[float] = []

    def __len__(self) -> int:
        return len(self._known)

    def add(self, known_ms: int, value: float) -> None:
        if not self._known or known_ms > self._known[-1]:
            self._known.append(known_ms)
            self._values.append(value)
            return
        i = bisect_left(self._known, known_ms)
        if i < len(self._known) and self._known[i] == known_ms:
            self._values[i] = value
        else:
            self._known.insert(i, known_ms)
            self._values.insert(i, value)

    def asof(self, t_ms: int) -> tuple[int, float] | None:
        """The latest value known strictly before ``t_ms``, with its known time."""
        i = bisect_left(self._known, t_ms) - 1
        if i < 0:
            return None
        return self._known[i], self._values[i]

    def prune(self, before_ms: int) -> None:
        """Forget values no query at or after ``before_ms`` can return."""
        i = bisect_left(self._known, before_ms) - 1
        if i > 0:
            del self._known[:i]
            del self._values[:i]


def asof_each(series: Iterable[AsOfSeries], t_ms: int) -> tuple[tuple[int, float] | None, ...]:
    """``s.asof(t_ms)`` for each series, without a method call per series (once per tick)."""
    out: list[tuple[int, float] | None] = []
    for s in series:
        known = s._known
        if not known:
            out.append(None)
        elif known[-1] < t_ms:  # the usual case: everything known is known before t
            out.append((known[-1], s._values[-1]))
        else:
            i = bisect_left(known, t_ms)
            out.append((known[i - 1], s._values[i - 1]) if i else None)
    return tuple(out)


class LiquidationSeries:
    """Liquidation notionals by order time: + a short liquidated (BUY), − a long (SELL).

    An event repeated exactly (same time, side, price and quantity) counts
    once: a live stream and a warm start from the store can overlap.
    """

    def __init__(self) -> None:
        self._t: list[int] = []
        self._v: list[float] = []
        self._seen: set[tuple[int, float]] = set()

    def __len__(self) -> int:
        return len(self._t)

    def add(self, time_ms: int, signed_notional: float) -> bool:
        key = (time_ms, signed_notional)
        if key in self._seen:
            return False
        self._seen.add(key)
        i = bisect_right(self._t, time_ms)
        self._t.insert(i, time_ms)
        self._v.insert(i, signed_notional)
        return True

    def imbalance(self, lo_ms: int, hi_ms: int) -> float:
        """(short − long liquidation notional) / their sum over ``[lo_ms, hi_ms)``; 0 when none."""
        i = bisect_left(self._t, lo_ms)
        j = bisect_left(self._t, hi_ms, i)
        if i == j:
            return 0.0  # what the sums below give for no liquidations
        seg = self._v[i:j]
        short = math.fsum(v for v in seg if v > 0)
        long = math.fsum(-v for v in seg if v < 0)
        total = short + long
        return 0.0 if total == 0 else (short - long) / total

    def prune(self, before_ms: int) -> None:
        i = bisect_left(self._t, before_ms)
        if i:
            for t, v in zip(self._t[:i], self._v[:i], strict=True):
                self._seen.discard((t, v))
            del self._t[:i]
            del self._v[:i]
