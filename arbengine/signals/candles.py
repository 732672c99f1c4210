"""Five-minute candles, ATR and the ATR percentile.

Candles are kept per slot (``candle index mod 1024``) and updated straight
from trades, so they cost nothing per trade beyond a max/min and never need
the trades again. ATR is recomputed only when a candle closes (or late data
touches a closed one), never per tick.

The history horizon makes this subtle: a feature at ``t`` may only depend
on trades in ``[t − 26 h, t)``. A candle therefore "exists" at ``t`` only if
it has a trade, or some trade in the horizon precedes it (an empty candle is
the previous close repeated), and "the first candle in the history" is the
first one with no in-horizon trade before it: its TR is ``h − l``. In steady
trading this never bites (the ATR and its 288 percentile values reach back
about 25 h 10 min); after a long silence it makes live and backtest agree no
matter when each started.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from arbengine.signals.tape import TickOrderError

CANDLE_MS = 300_000
HORIZON_MS = 26 * 3_600_000
ATR_PERIOD = 14
ATR_CLOSES = 288
_SPAN = HORIZON_MS // CANDLE_MS  # 312 candles fit in the horizon
_USED = ATR_CLOSES + ATR_PERIOD - 1  # 301 candles feed the 288 ATR values
_SLOTS = 1024
_NO_TIME = np.iinfo(np.int64).min

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B8 = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class AtrState:
    """ATR at the last candle close ≤ t, and the valid ATR values at the last 288 closes."""

    atr: float | None
    values: F64
    """ATR at each of the last 288 closes that had 14 candles of history, oldest first;
    the current close is included when ``atr`` is not None."""

    def percentile(self, min_values: int) -> float | None:
        """Share (0–100) of ``values`` that are ≤ the current ATR."""
        if self.atr is None or len(self.values) < min_values:
            return None
        return 100.0 * int(np.count_nonzero(self.values <= self.atr)) / len(self.values)


@dataclass(frozen=True, slots=True)
class _Frame:
    """The 301 candles that feed the ATR values at one candle index K."""

    prev_t: I64
    tr_full: F64
    hl: F64
    has: B8


class Candles:
    def __init__(self) -> None:
        self._k: I64 = np.full(_SLOTS, -1, np.int64)
        self._n: I64 = np.zeros(_SLOTS, np.int64)
        self._h: F64 = np.zeros(_SLOTS, np.float64)
        self._l: F64 = np.zeros(_SLOTS, np.float64)
        self._c: F64 = np.zeros(_SLOTS, np.float64)
        self._ct: I64 = np.full(_SLOTS, -1, np.int64)
        self._cid: I64 = np.full(_SLOTS, -1, np.int64)
        self._keep_from: int | None = None
        """Candles from this index on are still needed by a future tick."""
        self._frame_key: int | None = None
        self._frame: _Frame | None = None
        self._state_key: tuple[int, int] | None = None
        self._state: AtrState | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._k, self._n, self._h, self._l, self._c, self._ct))

    def add(self, t: I64, ids: I64, p: F64) -> None:
        """Add trades sorted by ``(T, agg_id)``."""
        if len(t) == 0:
            return
        kk = t // CANDLE_MS
        brk = np.flatnonzero(kk[1:] != kk[:-1]) + 1
        starts = np.concatenate((np.zeros(1, np.int64), brk)).tolist()
        ends = [*brk.tolist(), len(t)]
        for s, e in zip(starts, ends, strict=True):
            k = int(kk[s])
            slot = k % _SLOTS
            cur = int(self._k[slot])
            if cur > k:
                continue  # older than anything the slot ring still serves
            if cur < k:
                if cur >= 0 and self._keep_from is not None and cur >= self._keep_from:
                    raise TickOrderError(
                        "trades ran more than 59 h ahead of the last evaluated tick; "
                        "evaluate ticks while feeding trades"
                    )
                self._k[slot] = k
                self._n[slot] = 0
                self._h[slot] = -np.inf
                self._l[slot] = np.inf
                self._ct[slot] = -1
                self._cid[slot] = -1
            seg = p[s:e]
            self._n[slot] += e - s
            self._h[slot] = max(float(self._h[slot]), float(seg.max()))
            self._l[slot] = min(float(self._l[slot]), float(seg.min()))
            lt, lid = int(t[e - 1]), int(ids[e - 1])
            if (lt, lid) > (int(self._ct[slot]), int(self._cid[slot])):
                self._ct[slot], self._cid[slot], self._c[slot] = lt, lid, p[e - 1]
            if self._frame_key is not None and k < self._frame_key:
                self._frame_key = None  # a closed candle changed: recompute
                self._state_key = None

    def _build_frame(self, big_k: int) -> _Frame:
        ks = np.arange(big_k - _SPAN, big_k, dtype=np.int64)
        sl = ks % _SLOTS
        slot_k = self._k[sl]
        if bool((slot_k > ks).any()):
            raise TickOrderError(
                "candle history for this tick was overwritten by much newer trades; "
                "evaluate ticks while feeding trades"
            )
        has = (slot_k == ks) & (self._n[sl] > 0)
        h = np.where(has, self._h[sl], 0.0)
        lo = np.where(has, self._l[sl], 0.0)
        c = np.where(has, self._c[sl], 0.0)
        ct = np.where(has, self._ct[sl], _NO_TIME)
        idx = np.where(has, np.arange(_SPAN), -1)
        last = np.maximum.accumulate(idx)
        prev = np.concatenate((np.array([-1]), last[:-1]))
        prev0 = np.maximum(prev, 0)
        prev_t = np.where(prev >= 0, ct[prev0], _NO_TIME)
        cp = c[prev0]
        hl = h - lo
        tr_full = np.where(
            has & (prev >= 0), np.maximum(hl, np.maximum(np.abs(h - cp), np.abs(lo - cp))), hl
        )
        u = slice(_SPAN - _USED, _SPAN)
        return _Frame(prev_t[u].copy(), tr_full[u].copy(), hl[u].copy(), has[u].copy())

    def state(self, t_ms: int) -> AtrState:
        big_k = t_ms // CANDLE_MS
        self._keep_from = (
            big_k - _SPAN if self._keep_from is None else max(self._keep_from, big_k - _SPAN)
        )
        if self._frame_key != big_k or self._frame is None:
            self._frame = self._build_frame(big_k)
            self._frame_key = big_k
            self._state_key = None
        f = self._frame
        # Only a previous trade older than the horizon changes with t inside one candle;
        # prev_t rises with the candle index, so the count of such candles is the key.
        prev_ok = f.prev_t >= t_ms - HORIZON_MS
        key = (big_k, int(np.count_nonzero(~prev_ok)))
        if self._state_key == key and self._state is not None:
            return self._state
        tr = np.where(f.has, np.where(prev_ok, f.tr_full, f.hl), 0.0)
        exists = f.has | prev_ok
        sums = tr[0:ATR_CLOSES].copy()
        for i in range(1, ATR_PERIOD):
            sums += tr[i : i + ATR_CLOSES]
        atr = sums / ATR_PERIOD
        valid = exists[0:ATR_CLOSES]
        current = float(atr[-1]) if bool(valid[-1]) else None
        self._state = AtrState(current, atr[valid])
        self._state_key = key
        return self._state
