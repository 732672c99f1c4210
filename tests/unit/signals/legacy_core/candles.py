"""Five-minute candles, ATR and the ATR percentile (the candle core before the tick was made
cheaper, kept only as a test oracle).

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

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from arbengine.signals.trade_window import TickOrderError

CANDLE_MS = 300_000
HORIZON_MS = 26 * 3_600_000
ATR_PERIOD = 14
ATR_CLOSES = 288
_SPAN = HORIZON_MS // CANDLE_MS  # 312 candles fit in the horizon
_USED = ATR_CLOSES + ATR_PERIOD - 1  # 301 candles feed the 288 ATR values
_SLOTS = 1024
_NO_TIME = np.iinfo(np.int64).min
_FOREVER = 2**63 - 1

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
    at_or_below: int
    """How many of ``values`` are ≤ ``atr``."""
    count: int
    """``len(values)``, kept as a plain int for the per-tick percentile."""

    @classmethod
    def of(cls, atr: float | None, values: F64) -> AtrState:
        below = 0 if atr is None else int(np.count_nonzero(values <= atr))
        return cls(atr, values, below, len(values))

    def percentile(self, min_values: int) -> float | None:
        """Share (0–100) of ``values`` that are ≤ the current ATR."""
        n = self.count
        if self.atr is None or n < min_values:
            return None
        return 100.0 * self.at_or_below / n


@dataclass(frozen=True, slots=True)
class _Frame:
    """The 301 candles that feed the ATR values at one candle index K."""

    prev_t: I64
    tr_full: F64
    hl: F64
    has: B8


class Candles:
    """Candle slots plus, per finalised candle, its TR and the ATR at its close.

    Candles are finalised in index order as soon as a later candle has a
    trade (or a tick needs them), carrying the previous close along; a
    trade landing in a finalised candle re-finalises from there. The tick
    then only gathers 288 stored ATR values. When the previous trade of
    the oldest candle in use lies outside the tick's 26 h horizon (only
    after a long silence), the ATR is recomputed from the raw candles under
    the strict horizon rule instead.
    """

    def __init__(self) -> None:
        self._k: I64 = np.full(_SLOTS, -1, np.int64)
        self._n: I64 = np.zeros(_SLOTS, np.int64)
        self._h: F64 = np.zeros(_SLOTS, np.float64)
        self._l: F64 = np.zeros(_SLOTS, np.float64)
        self._c: F64 = np.zeros(_SLOTS, np.float64)
        self._ct: I64 = np.full(_SLOTS, -1, np.int64)
        self._cid: I64 = np.full(_SLOTS, -1, np.int64)
        # Finalised values, valid for candles in [chain start, fin_upto).
        self._prev_t: I64 = np.full(_SLOTS, _NO_TIME, np.int64)
        self._prev_c: F64 = np.zeros(_SLOTS, np.float64)
        self._tr: F64 = np.zeros(_SLOTS, np.float64)
        self._exists: B8 = np.zeros(_SLOTS, np.bool_)
        self._atr_after: F64 = np.full(_SLOTS, np.nan, np.float64)
        """ATR at the close of this candle (NaN: fewer than 14 candles of history)."""
        self._chain_start: int | None = None
        self._fin_upto: int | None = None
        self._carry_t = int(_NO_TIME)
        self._carry_c = 0.0
        self._keep_from: int | None = None
        """Candles from this index on are still needed by a future tick."""
        self._version = 0
        self._state_key: tuple[int, int, int] | None = None
        self._state: AtrState | None = None
        self._reuse: tuple[int, int, int] = (-1, -1, -1)
        """(K, version, last t): ``_state`` answers every tick in candle K up to that t
        while nothing changed (the chain test depends on t only through the horizon)."""

    @property
    def nbytes(self) -> int:
        arrays: list[NDArray[np.generic]] = [self._k, self._n, self._h, self._l, self._c]
        arrays += [self._ct, self._cid, self._prev_t, self._prev_c, self._tr]
        arrays += [self._exists, self._atr_after]
        return sum(a.nbytes for a in arrays)

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
            self._touched(k)
        self._finalise_through(int(kk[-1]))

    def _touched(self, k: int) -> None:
        """Candle ``k`` changed: finalised values from k on are void."""
        if self._chain_start is None or k < self._chain_start:
            self._chain_start = k
            self._fin_upto = k
            self._carry_t, self._carry_c = int(_NO_TIME), 0.0
            self._version += 1
        elif self._fin_upto is not None and k < self._fin_upto:
            slot = k % _SLOTS
            self._fin_upto = k
            self._carry_t, self._carry_c = int(self._prev_t[slot]), float(self._prev_c[slot])
            self._version += 1

    def _finalise_through(self, upto: int) -> None:
        """Finalise every candle before ``upto``."""
        k = self._fin_upto
        if k is None or k >= upto:
            return
        carry_t, carry_c = self._carry_t, self._carry_c
        ks, ns, hs, ls, cs, cts = self._k, self._n, self._h, self._l, self._c, self._ct
        tr_arr, ex_arr, atr_arr = self._tr, self._exists, self._atr_after
        while k < upto:
            slot = k % _SLOTS
            if int(ks[slot]) != k:
                if int(ks[slot]) > k:
                    # The slot already serves a candle ≥ 85 h newer: nothing still needs k,
                    # and a tick that would is refused in state().
                    k += 1
                    continue
                ks[slot], ns[slot] = k, 0
            self._prev_t[slot], self._prev_c[slot] = carry_t, carry_c
            if ns[slot] > 0:
                h, lo = float(hs[slot]), float(ls[slot])
                hl = h - lo
                if carry_t != _NO_TIME:
                    tr = max(hl, max(abs(h - carry_c), abs(lo - carry_c)))
                else:
                    tr = hl
                exists = True
                carry_t, carry_c = int(cts[slot]), float(cs[slot])
            else:
                tr, exists = 0.0, carry_t != _NO_TIME
            tr_arr[slot], ex_arr[slot] = tr, exists
            first = k - ATR_PERIOD + 1
            if (
                self._chain_start is not None
                and first >= self._chain_start
                and ex_arr[first % _SLOTS]
            ):
                total = float(tr_arr[first % _SLOTS])
                for i in range(first + 1, k + 1):
                    total += float(tr_arr[i % _SLOTS])
                atr_arr[slot] = total / ATR_PERIOD
            else:
                atr_arr[slot] = np.nan
            k += 1
        self._fin_upto = k
        self._carry_t, self._carry_c = carry_t, carry_c

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

    def _strict_state(self, t_ms: int) -> AtrState:
        """The ATR under the strict horizon rule, from the raw candles."""
        f = self._build_frame(t_ms // CANDLE_MS)
        prev_ok = f.prev_t >= t_ms - HORIZON_MS
        tr = np.where(f.has, np.where(prev_ok, f.tr_full, f.hl), 0.0)
        exists = f.has | prev_ok
        sums = tr[0:ATR_CLOSES].copy()
        for i in range(1, ATR_PERIOD):
            sums += tr[i : i + ATR_CLOSES]
        atr = sums / ATR_PERIOD
        valid = exists[0:ATR_CLOSES]
        current = float(atr[-1]) if bool(valid[-1]) else None
        return AtrState.of(current, atr[valid])

    def state(self, t_ms: int) -> AtrState:
        big_k = t_ms // CANDLE_MS
        reuse_k, reuse_version, reuse_until = self._reuse
        if big_k == reuse_k and self._version == reuse_version and t_ms <= reuse_until:
            assert self._state is not None
            return self._state
        keep = big_k - _SPAN
        self._keep_from = keep if self._keep_from is None else max(self._keep_from, keep)
        if self._chain_start is None:
            return AtrState.of(None, np.empty(0, np.float64))
        self._finalise_through(big_k)
        oldest = big_k - _USED
        cutoff = t_ms - HORIZON_MS
        # prev_t rises along the chain: if the oldest candle in use has its previous
        # trade inside the horizon (or none at all), the chain equals the strict rule.
        prev_t = int(self._prev_t[oldest % _SLOTS])
        chain_ok = oldest < self._chain_start or prev_t == _NO_TIME or prev_t >= cutoff
        key = (big_k, self._version, 0 if chain_ok else cutoff)
        if self._state_key == key and self._state is not None:
            return self._state
        first = max(oldest, self._chain_start)
        if self._state is None and first < big_k:
            # Once a tick has been evaluated, add() refuses to overwrite a candle still
            # needed; only the first tick can find its history already overwritten.
            used = np.arange(first, big_k, dtype=np.int64)
            if bool((self._k[used % _SLOTS] != used).any()):
                raise TickOrderError(
                    "candle history for this tick was overwritten by much newer trades; "
                    "evaluate ticks while feeding trades"
                )
        if chain_ok:
            closes = np.arange(big_k - ATR_CLOSES, big_k, dtype=np.int64)
            values = np.where(closes >= self._chain_start, self._atr_after[closes % _SLOTS], np.nan)
            current = float(values[-1])
            atr = None if math.isnan(current) else current
            self._state = AtrState.of(atr, values[~np.isnan(values)])
        else:
            self._state = self._strict_state(t_ms)
        self._state_key = key
        # The chain test stays true while prev_t >= t - horizon; the strict state is
        # only good for its own t (its cutoff moves with t).
        if not chain_ok:
            until = t_ms
        elif oldest < self._chain_start or prev_t == _NO_TIME:
            until = _FOREVER
        else:
            until = prev_t + HORIZON_MS
        self._reuse = (big_k, self._version, int(until))
        return self._state
