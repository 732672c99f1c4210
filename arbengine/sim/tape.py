"""Columnar aggTrade history of one symbol: what the stream sent, and what REST serves.

One numpy column per field, grown by doubling, so an hour of trades at a high
rate is a few hundred megabytes instead of gigabytes of dicts, and REST lookups by
id or time are binary searches. Rows are appended in id order; rows past
``released`` exist (the market model generates a block ahead of time) but are
invisible until the simulated clock reaches them, which is what keeps REST
history exactly equal to what the stream has sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from arbengine.sim.symbols import fmt_units

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class TradeColumns:
    """A read-only slice of the tape (numpy views)."""

    a: I64
    t: I64
    price: I64
    qty: I64
    first: I64
    last: I64
    buyer_maker: U8

    def __len__(self) -> int:
        return len(self.a)


class Tape:
    def __init__(self, price_precision: int, qty_precision: int, capacity: int = 4096) -> None:
        self.price_precision = price_precision
        self.qty_precision = qty_precision
        self._a = np.empty(capacity, np.int64)
        self._t = np.empty(capacity, np.int64)
        self._p = np.empty(capacity, np.int64)
        self._q = np.empty(capacity, np.int64)
        self._f = np.empty(capacity, np.int64)
        self._l = np.empty(capacity, np.int64)
        self._m = np.empty(capacity, np.uint8)
        self.n = 0
        """Rows stored, released or not."""
        self.released = 0
        """Rows the clock has reached: the only ones the stream has sent or REST may serve."""
        self.trimmed = 0
        """Rows dropped from the front to bound memory."""

    # -- writing --------------------------------------------------------------------------

    def _grow(self, need: int) -> None:
        cap = len(self._a)
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        for name in ("_a", "_t", "_p", "_q", "_f", "_l", "_m"):
            old = getattr(self, name)
            arr = np.empty(new_cap, old.dtype)
            arr[: self.n] = old[: self.n]
            setattr(self, name, arr)

    def append(
        self,
        a: I64,
        t: I64,
        price: I64,
        qty: I64,
        first: I64,
        last: I64,
        buyer_maker: U8 | npt.NDArray[np.bool_],
    ) -> None:
        k = len(a)
        if k == 0:
            return
        self._grow(self.n + k)
        s = slice(self.n, self.n + k)
        self._a[s] = a
        self._t[s] = t
        self._p[s] = price
        self._q[s] = qty
        self._f[s] = first
        self._l[s] = last
        self._m[s] = buyer_maker
        self.n += k

    def release_until(self, t_ms: int) -> tuple[int, int]:
        """Reveal rows with ``T <= t_ms``; the newly revealed row range ``[lo, hi)``."""
        lo = self.released
        if lo < self.n and self._t[self.n - 1] <= t_ms:
            hi = self.n
        else:
            hi = lo + int(np.searchsorted(self._t[lo : self.n], t_ms, side="right"))
        self.released = hi
        return lo, hi

    def trim(self, keep: int) -> None:
        """Drop the oldest released rows so that at most ``keep`` released rows remain."""
        drop = self.released - keep
        if drop <= 0:
            return
        for name in ("_a", "_t", "_p", "_q", "_f", "_l", "_m"):
            arr = getattr(self, name)
            arr[: self.n - drop] = arr[drop : self.n]
        self.n -= drop
        self.released -= drop
        self.trimmed += drop

    # -- reading --------------------------------------------------------------------------

    def cols(self, lo: int, hi: int) -> TradeColumns:
        s = slice(lo, hi)
        return TradeColumns(
            self._a[s], self._t[s], self._p[s], self._q[s], self._f[s], self._l[s], self._m[s]
        )

    def released_cols(self) -> TradeColumns:
        return self.cols(0, self.released)

    @property
    def first_id(self) -> int | None:
        return int(self._a[0]) if self.released else None

    @property
    def last_id(self) -> int | None:
        return int(self._a[self.released - 1]) if self.released else None

    def last_trade(self) -> tuple[int, int, bool] | None:
        """``(T, price units, buyer_maker)`` of the newest released trade."""
        if not self.released:
            return None
        i = self.released - 1
        return int(self._t[i]), int(self._p[i]), bool(self._m[i])

    def index_of_id(self, agg_id: int) -> int:
        """Row of the first released trade with ``a >= agg_id``."""
        return int(np.searchsorted(self._a[: self.released], agg_id, side="left"))

    def index_of_time(self, t_ms: int, side: str = "left") -> int:
        return int(np.searchsorted(self._t[: self.released], t_ms, side=side))  # type: ignore[call-overload]

    def select(
        self,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> tuple[int, int]:
        """Row range answering ``GET /fapi/v1/aggTrades`` (the caller validated the mix)."""
        if from_id is not None:
            lo = self.index_of_id(from_id)
            return lo, min(self.released, lo + limit)
        if start_ms is not None or end_ms is not None:
            lo = self.index_of_time(start_ms) if start_ms is not None else 0
            hi = self.index_of_time(end_ms, "right") if end_ms is not None else self.released
            if start_ms is None:
                lo = max(lo, hi - limit)
            return lo, max(lo, min(hi, lo + limit))
        return max(0, self.released - limit), self.released

    def rows(self, lo: int, hi: int) -> list[dict[str, object]]:
        """REST rows ``{"a","p","q","f","l","T","m"}`` for ``[lo, hi)``."""
        pp, qp = self.price_precision, self.qty_precision
        c = self.cols(lo, hi)
        return [
            {
                "a": a,
                "p": fmt_units(p, pp),
                "q": fmt_units(q, qp),
                "f": f,
                "l": last,
                "T": t,
                "m": bool(m),
            }
            for a, p, q, f, last, t, m in zip(
                c.a.tolist(),
                c.price.tolist(),
                c.qty.tolist(),
                c.first.tolist(),
                c.last.tolist(),
                c.t.tolist(),
                c.buyer_maker.tolist(),
                strict=True,
            )
        ]
