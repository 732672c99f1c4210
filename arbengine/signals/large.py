"""The large-order threshold (exact nearest-rank 99th percentile) and imbalance.

The threshold is the ⌈0.99·N⌉-th smallest trade notional over the day
window, exact (the backtester must match live to 1e-9), for N up to ~3
million and every 15 s. Re-selecting over 3 M values per tick costs ~70 ms;
instead the tracker keeps only the *upper tail*: every trade in the window
whose notional is ≥ a floor ``L``, in a sorted multiset. The threshold is
the r-th largest (r = N − ⌈0.99·N⌉ + 1) and lies in the tail as long as the
tail holds at least r values, so it is read off exactly. Per tick only
the trades entering and leaving the window touch the tail (about 2–3 % of
them). ``L`` is raised cheaply when the tail grows past 4·r and lowered by
one scan of the window when it shrinks below r, which a stationary market
never triggers.

The same tail, kept in time order, serves ``large_imbalance_fast``: every
large trade (≥ threshold ≥ L) of the fast window is a tail member.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import NDArray

from arbengine.signals.tape import TradeTape

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

MIN_TRADES = 1000
_CHUNK = 1 << 20
_SMALL = 48
"""Below this many values a Python loop beats numpy's per-call overhead."""


def nearest_rank_from_top(n: int) -> int:
    """r such that the r-th largest of n values is the ⌈0.99·n⌉-th smallest."""
    return n - (99 * n + 99) // 100 + 1


class SortedFloats:
    """A sorted multiset of floats: O(log n) add/remove, r-th largest in O(n / load).

    Bucketed sorted lists (the sortedcontainers layout): small lists keep
    inserts cheap, and a select scans at most a few hundred list lengths.
    """

    _LOAD = 512

    def __init__(self, values: Iterable[float] = ()) -> None:
        ordered = sorted(values)
        self._lists: list[list[float]] = [
            ordered[i : i + self._LOAD] for i in range(0, len(ordered), self._LOAD)
        ]
        self._maxes: list[float] = [lst[-1] for lst in self._lists]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[float]:
        for lst in self._lists:
            yield from lst

    def add(self, value: float) -> None:
        if not self._lists:
            self._lists.append([value])
            self._maxes.append(value)
        else:
            i = bisect_left(self._maxes, value)
            if i == len(self._lists):
                i -= 1
                self._lists[i].append(value)
                self._maxes[i] = value
            else:
                insort(self._lists[i], value)
            lst = self._lists[i]
            if len(lst) > 2 * self._LOAD:
                half = lst[self._LOAD :]
                del lst[self._LOAD :]
                self._lists.insert(i + 1, half)
                self._maxes[i] = lst[-1]
                self._maxes.insert(i + 1, half[-1])
        self._len += 1

    def remove(self, value: float) -> None:
        i = bisect_left(self._maxes, value)
        if i == len(self._lists):
            raise KeyError(value)
        lst = self._lists[i]
        j = bisect_left(lst, value)
        if j == len(lst) or lst[j] != value:
            raise KeyError(value)
        del lst[j]
        self._len -= 1
        if not lst:
            del self._lists[i]
            del self._maxes[i]
        else:
            self._maxes[i] = lst[-1]

    def kth_largest(self, r: int) -> float:
        """The r-th largest value, r counted from 1."""
        if not 1 <= r <= self._len:
            raise IndexError(r)
        for lst in reversed(self._lists):
            if r <= len(lst):
                return lst[-r]
            r -= len(lst)
        raise AssertionError("unreachable")  # pragma: no cover

    def drop_below(self, floor: float) -> None:
        while self._lists and self._maxes[0] < floor:
            self._len -= len(self._lists[0])
            del self._lists[0]
            del self._maxes[0]
        if self._lists:
            lst = self._lists[0]
            j = bisect_left(lst, floor)
            del lst[:j]
            self._len -= j

    @property
    def approx_nbytes(self) -> int:
        return self._len * 32 + len(self._lists) * 64


class _Members:
    """Time-ordered (second, signed notional) of the tail members."""

    def __init__(self) -> None:
        self.sec: I64 = np.empty(0, np.int64)
        self.x: F64 = np.empty(0, np.float64)
        self._lo = 0
        self._hi = 0

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def nbytes(self) -> int:
        return int(self.sec.nbytes + self.x.nbytes)

    def secs(self) -> I64:
        return self.sec[self._lo : self._hi]

    def values(self) -> F64:
        return self.x[self._lo : self._hi]

    def reset(self, sec: I64, x: F64) -> None:
        self.sec, self.x = sec.copy(), x.copy()
        self._lo, self._hi = 0, len(sec)

    def append(self, sec: I64, x: F64) -> None:
        n = len(sec)
        if self._hi + n > len(self.sec):
            size = len(self)
            cap = max(64, (size + n) * 3 // 2)
            new_s = np.empty(cap, np.int64)
            new_x = np.empty(cap, np.float64)
            new_s[:size] = self.secs()
            new_x[:size] = self.values()
            self.sec, self.x, self._lo, self._hi = new_s, new_x, 0, size
        self.sec[self._hi : self._hi + n] = sec
        self.x[self._hi : self._hi + n] = x
        self._hi += n

    def pop_front(self, k: int) -> None:
        self._lo += k

    def insert(self, sec: I64, x: F64) -> None:
        at = np.searchsorted(self.secs(), sec, side="right")
        self.reset(np.insert(self.secs(), at, sec), np.insert(self.values(), at, x))

    def keep(self, mask: NDArray[np.bool_]) -> None:
        self.reset(self.secs()[mask], self.values()[mask])


class LargeTracker:
    """Tail of the notional distribution over one day-window length."""

    def __init__(self, window_ms: int) -> None:
        if window_ms % 1000 or window_ms <= 0:
            raise ValueError("window must be a positive whole number of seconds")
        self.window_sec = window_ms // 1000
        self._t_sec: int | None = None
        self._start = 0
        self._end = 0
        self._floor = -math.inf
        self._tail = SortedFloats()
        self._members = _Members()

    @property
    def count(self) -> int:
        """Trades in the window at the last tick."""
        return self._end - self._start

    @property
    def tail_size(self) -> int:
        return len(self._tail)

    @property
    def floor(self) -> float:
        """Notionals at or above this are kept in the tail."""
        return self._floor

    @property
    def nbytes(self) -> int:
        return self._tail.approx_nbytes + self._members.nbytes

    def advance(self, tape: TradeTape, t_sec: int) -> None:
        lo = t_sec - self.window_sec
        new_start, new_end = tape.positions_before((lo, t_sec))
        if self._t_sec is None or t_sec < self._t_sec or new_start >= self._end:
            self._start, self._end, self._t_sec = new_start, new_end, t_sec
            self._refloor(tape)
            return
        if t_sec > self._t_sec:
            k = int(self._members.secs().searchsorted(lo))
            if k:
                remove = self._tail.remove
                for v in self._members.values()[:k].tolist():
                    remove(abs(v))
                self._members.pop_front(k)
            if 0 < new_end - self._end <= _SMALL:
                # Few trades entered (most symbols, most ticks): plain Python is cheaper.
                floor = self._floor
                picked = [
                    (i, x)
                    for i, x in enumerate(tape.ring.get(self._end, new_end).tolist())
                    if abs(x) >= floor
                ]
                if picked:
                    pos = np.array([self._end + i for i, _ in picked], np.int64)
                    vals = np.array([x for _, x in picked], np.float64)
                    self._members.append(tape.secs_of(pos), vals)
                    add = self._tail.add
                    for _, x in picked:
                        add(abs(x))
            elif new_end > self._end:
                xs = tape.ring.get(self._end, new_end)
                sel = np.flatnonzero(np.abs(xs) >= self._floor)
                if len(sel):
                    chosen = xs[sel]
                    self._members.append(tape.secs_of(self._end + sel), chosen)
                    add = self._tail.add
                    for v in chosen.tolist():
                        add(abs(v))
            self._start, self._end, self._t_sec = new_start, new_end, t_sec
        self._rebalance(tape)

    def on_insert(self, secs: I64, xs: F64) -> None:
        """Trades stored into seconds this tracker already passed (late trades)."""
        if self._t_sec is None or not len(secs):
            return
        lo = self._t_sec - self.window_sec
        self._start += int(np.count_nonzero(secs < lo))
        self._end += int(np.count_nonzero(secs < self._t_sec))
        m = (secs >= lo) & (secs < self._t_sec) & (np.abs(xs) >= self._floor)
        if m.any():
            self._members.insert(secs[m], xs[m])
            for v in np.abs(xs[m]).tolist():
                self._tail.add(v)

    def _rebalance(self, tape: TradeTape) -> None:
        n = self.count
        if n < MIN_TRADES:
            return
        r = nearest_rank_from_top(n)
        if len(self._tail) < r:
            self._refloor(tape)
        elif len(self._tail) > 4 * r + 64:
            floor = self._tail.kth_largest(2 * r + 32)
            self._tail.drop_below(floor)
            self._members.keep(np.abs(self._members.values()) >= floor)
            self._floor = floor

    def _refloor(self, tape: TradeTape) -> None:
        """Choose a floor leaving about 2·r values above it and rebuild the tail from the window."""
        xs = tape.ring.get(self._start, self._end)
        n = len(xs)
        target = 2 * nearest_rank_from_top(n) + 32 if n else 0
        floor = -math.inf
        if n > target:
            if n <= 8192:
                absx = np.abs(xs)
                floor = float(np.partition(absx, n - target)[n - target])
            else:
                floor = self._estimate_floor(xs, target, nearest_rank_from_top(n))
        sel = _select_at_least(xs, floor)
        chosen = xs[sel]
        self._members.reset(tape.secs_of(self._start + sel), chosen)
        self._tail = SortedFloats(np.abs(chosen).tolist())
        self._floor = floor

    @staticmethod
    def _estimate_floor(xs: F64, target: int, need: int) -> float:
        """A floor with at least ``need`` values at or above it, aiming at ``target``."""
        n = len(xs)
        step = max(1, n // 4096)
        sample = np.sort(np.abs(xs[::step]))
        j = math.ceil(1.5 * target / step) + 8
        while j < len(sample):
            floor = float(sample[len(sample) - j])
            if _count_at_least(xs, floor) >= need:
                return floor
            j *= 4
        return -math.inf

    def threshold(self) -> float | None:
        n = self.count
        if n < MIN_TRADES:
            return None
        return self._tail.kth_largest(nearest_rank_from_top(n))

    def imbalance(self, fast_sec: int, threshold: float) -> float:
        """(large buy − large sell notional) / their sum over the last ``fast_sec`` seconds."""
        assert self._t_sec is not None
        k = int(self._members.secs().searchsorted(self._t_sec - fast_sec))
        seg = self._members.values()[k:]
        # The sign carries the side and notionals are ≥ 0, so x ≥ thr is a large buy and
        # x ≤ −thr a large sell (a zero notional on the wrong side adds nothing).
        if len(seg) <= _SMALL:
            values = seg.tolist()
            buy = math.fsum(v for v in values if v >= threshold)
            sell = -math.fsum(v for v in values if v <= -threshold)
        else:
            buy = math.fsum(seg[seg >= threshold].tolist())
            sell = -math.fsum(seg[seg <= -threshold].tolist())
        total = buy + sell
        return 0.0 if total == 0 else (buy - sell) / total


def _count_at_least(xs: F64, floor: float) -> int:
    return sum(
        int(np.count_nonzero(np.abs(xs[i : i + _CHUNK]) >= floor))
        for i in range(0, len(xs), _CHUNK)
    )


def _select_at_least(xs: F64, floor: float) -> NDArray[np.int64]:
    if floor == -math.inf:
        return np.arange(len(xs), dtype=np.int64)
    parts = [
        np.flatnonzero(np.abs(xs[i : i + _CHUNK]) >= floor) + i for i in range(0, len(xs), _CHUNK)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)
