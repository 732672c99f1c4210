"""Columnar aggTrade history of one symbol: what the stream sent, and what REST serves.

One numpy column per field, grown by doubling, so an hour of trades at a high
rate is a few hundred megabytes instead of gigabytes of dicts, and REST lookups by
id or time are binary searches. Rows are appended in id order; rows past
``released`` exist (the market model generates a block ahead of time) but are
invisible until the simulated clock reaches them, which is what keeps REST
history exactly equal to what the stream has sent.

History is bounded (see ``retention``): ``forget_before`` drops the oldest
released rows. Row indexes (``released``, ``cols``, ``select`` …) count from the
oldest row kept, so they shift when rows are forgotten; the market forgets at
the start of a clock step, before it releases, so the row range a step
releases stays valid until the step has published it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from arbengine.sim.retention import shift_down, should_compact
from arbengine.sim.symbols import fmt_units

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class TradeHistoryColumns:
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


class TradeHistory:
    _COLUMNS = ("_a", "_t", "_p", "_q", "_f", "_l", "_m")

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
        self._start = 0
        """Array index of the oldest row kept (rows before it are forgotten, not yet moved)."""
        self._end = 0
        self.released = 0
        """Rows kept that the clock has reached: the only ones the stream has sent or REST
        may serve."""
        self.forgotten = 0
        """Released rows dropped from the front to bound memory, since the start."""

    @property
    def n(self) -> int:
        """Rows kept, released or not."""
        return self._end - self._start

    @property
    def capacity(self) -> int:
        """Rows the arrays can hold before they grow."""
        return len(self._a)

    @property
    def nbytes(self) -> int:
        """Memory held by the columns (their capacity, not only the rows kept)."""
        return sum(getattr(self, name).nbytes for name in self._COLUMNS)

    # -- writing --------------------------------------------------------------------------

    def _make_room(self, k: int) -> None:
        """Room for ``k`` more rows: reclaim forgotten rows when worth it, else grow."""
        cap = len(self._a)
        if self._end + k <= cap:
            return
        need = self.n + k
        if need <= cap and should_compact(self._start, self.n):
            self._compact()
            return
        new_cap = max(need, cap * 2)
        for name in self._COLUMNS:
            old = getattr(self, name)
            arr = np.empty(new_cap, old.dtype)
            arr[: self.n] = old[self._start : self._end]
            setattr(self, name, arr)
        self._end -= self._start
        self._start = 0

    def _compact(self) -> None:
        shift_down([getattr(self, name) for name in self._COLUMNS], self._start, self._end)
        self._end -= self._start
        self._start = 0

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
        self._make_room(k)
        s = slice(self._end, self._end + k)
        self._a[s] = a
        self._t[s] = t
        self._p[s] = price
        self._q[s] = qty
        self._f[s] = first
        self._l[s] = last
        self._m[s] = buyer_maker
        self._end += k

    def reprice_unreleased(self, factor: float, tick: int) -> None:
        """Move the prices of the rows generated ahead of the clock by ``factor`` (whole ticks,
        at least one): nobody has seen them, so the tape stays consistent."""
        s = slice(self._start + self.released, self._end)
        moved = np.rint(self._p[s] * factor / tick).astype(np.int64) * tick
        self._p[s] = np.maximum(moved, tick)

    def release_until(self, t_ms: int) -> tuple[int, int]:
        """Reveal rows with ``T <= t_ms``; the newly revealed row range ``[lo, hi)``."""
        lo = self.released
        base = self._start
        if lo < self.n and self._t[self._end - 1] <= t_ms:
            hi = self.n
        else:
            hi = lo + int(np.searchsorted(self._t[base + lo : self._end], t_ms, side="right"))
        self.released = hi
        return lo, hi

    def forget_before(self, t_ms: int, max_released: int | None = None) -> int:
        """Forget released rows with ``T < t_ms``, and the oldest beyond ``max_released``.

        The newest released row is always kept (the last price stays known). Returns
        how many rows were forgotten.
        """
        if self.released <= 1:
            return 0
        base = self._start
        if self._t[base] >= t_ms and (max_released is None or self.released <= max_released):
            return 0  # nothing to forget (the common case, at every clock step)
        drop = int(np.searchsorted(self._t[base : base + self.released], t_ms, side="left"))
        if max_released is not None:
            drop = max(drop, self.released - max_released)
        drop = min(drop, self.released - 1)
        if drop <= 0:
            return 0
        self._start += drop
        self.released -= drop
        self.forgotten += drop
        if should_compact(self._start, self.n):
            self._compact()
        return drop

    # -- reading --------------------------------------------------------------------------

    def cols(self, lo: int, hi: int) -> TradeHistoryColumns:
        s = slice(self._start + lo, self._start + hi)
        return TradeHistoryColumns(
            self._a[s], self._t[s], self._p[s], self._q[s], self._f[s], self._l[s], self._m[s]
        )

    def released_cols(self) -> TradeHistoryColumns:
        return self.cols(0, self.released)

    @property
    def first_id(self) -> int | None:
        return int(self._a[self._start]) if self.released else None

    @property
    def last_id(self) -> int | None:
        return int(self._a[self._start + self.released - 1]) if self.released else None

    def last_trade(self) -> tuple[int, int, bool] | None:
        """``(T, price units, buyer_maker)`` of the newest released trade."""
        if not self.released:
            return None
        i = self._start + self.released - 1
        return int(self._t[i]), int(self._p[i]), bool(self._m[i])

    def index_of_id(self, agg_id: int) -> int:
        """Row of the first released trade with ``a >= agg_id``."""
        base = self._start
        return int(np.searchsorted(self._a[base : base + self.released], agg_id, side="left"))

    def index_of_time(self, t_ms: int, side: str = "left") -> int:
        base = self._start
        released = self._t[base : base + self.released]
        return int(np.searchsorted(released, t_ms, side=side))  # type: ignore[call-overload]

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
