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

Per tick the work is a few list operations, never a pass over the window:
candidates entering the tail are found by one numpy scan of up to 65 536
trades ahead (a backtest stores a day before its ticks), and the members of
each fast window are also kept sorted, so the large buys and sells at any
threshold are a suffix and a prefix summed by ``fsum`` (exact, so the same
float as summing them in time order).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import NDArray

from tests.unit.signals.legacy_core.trade_window import TradeWindow

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

MIN_TRADES = 1000
_CHUNK = 1 << 20


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
    """Time-ordered (second, signed notional) of the tail members.

    Compact typed arrays (8 bytes a value, like numpy) that plain Python reads
    without a numpy call: a tick touches only a handful of members, and numpy's
    per-call overhead would dominate. Members leave at the front by moving
    ``lo``; ``gen`` changes whenever indices are reorganised, so readers that
    remember an index know to start over.
    """

    def __init__(self) -> None:
        self.sec: array[int] = array("q")
        self.x: array[float] = array("d")
        self.lo = 0
        self.gen = 0

    def __len__(self) -> int:
        return len(self.sec) - self.lo

    @property
    def nbytes(self) -> int:
        return 8 * (len(self.sec) + len(self.x))

    def secs(self) -> I64:
        return np.array(self.sec[self.lo :], np.int64)

    def values(self) -> F64:
        return np.array(self.x[self.lo :], np.float64)

    def reset(self, sec: I64, x: F64) -> None:
        self.sec = array("q", np.ascontiguousarray(sec, np.int64).tobytes())
        self.x = array("d", np.ascontiguousarray(x, np.float64).tobytes())
        self.lo = 0
        self.gen += 1

    def append(self, sec: array[int], x: array[float]) -> None:
        self.sec.extend(sec)
        self.x.extend(x)

    def pop_front(self, k: int) -> None:
        self.lo += k
        if self.lo > 4096 and 2 * self.lo > len(self.sec):
            del self.sec[: self.lo]
            del self.x[: self.lo]
            self.lo = 0
            self.gen += 1

    def insert(self, sec: I64, x: F64) -> None:
        old_s, old_x = self.secs(), self.values()
        at = np.searchsorted(old_s, sec, side="right")
        self.reset(np.insert(old_s, at, sec), np.insert(old_x, at, x))

    def keep(self, mask: NDArray[np.bool_]) -> None:
        self.reset(self.secs()[mask], self.values()[mask])


class _FastWindow:
    """The tail members of one fast window, sorted by signed notional.

    Large buys (x ≥ threshold) are then a suffix and large sells (x ≤ −threshold) a
    prefix, whatever the threshold at the tick, so each side is one ``fsum`` over a
    slice. ``fsum`` is exactly rounded, hence independent of order: the same float as
    summing the members in time order. Holds the members with index in ``[lo, hi)``.
    """

    __slots__ = ("gen", "hi", "lo", "sorted", "used_at")

    def __init__(self, members: _Members, lo_sec: int) -> None:
        self.gen = members.gen
        self.lo = bisect_left(members.sec, lo_sec, members.lo)
        self.hi = len(members.sec)
        self.sorted: list[float] = sorted(members.x[self.lo :])
        self.used_at = 0

    def update(self, members: _Members, lo_sec: int) -> None:
        srt = self.sorted
        xs = members.x
        for v in xs[self.hi :]:
            insort(srt, v)
        self.hi = len(xs)
        sec = members.sec
        i = self.lo
        while i < self.hi and sec[i] < lo_sec:
            del srt[bisect_left(srt, xs[i])]
            i += 1
        self.lo = i


_SCAN = 1 << 16
"""Trades scanned ahead for tail candidates at a time (see ``LargeTracker._entering``)."""
_PRUNE_FAST_SEC = 300
"""Every this many seconds, fast windows not read in the last minute are dropped (memory
only: one read again is rebuilt from the members)."""
_SMALL = 48
"""Below this many values a Python loop beats numpy's per-call overhead."""
_NO_SECS: array[int] = array("q")
_NO_VALUES: array[float] = array("d")


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
        self._fast: dict[int, _FastWindow] = {}
        self._prune_fast_at = 0
        self._scan: tuple[int, float, int, int, array[int], array[int], array[float]] | None = None
        """Tail candidates found ahead of the window: (tape edits, floor, first and end
        ring position scanned, then position, second and notional of each candidate)."""

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
        scan = 0 if self._scan is None else 24 * len(self._scan[4])
        fast = sum(32 * len(f.sorted) for f in self._fast.values())
        return self._tail.approx_nbytes + self._members.nbytes + scan + fast

    def advance(self, tape: TradeWindow, t_sec: int) -> None:
        lo = t_sec - self.window_sec
        new_start, new_end = tape.positions_before((lo, t_sec))
        if self._fast and t_sec >= self._prune_fast_at:
            # Memory only: a fast window no strategy read for a while is dropped (one
            # read again later is simply rebuilt).
            self._prune_fast_at = t_sec + _PRUNE_FAST_SEC
            for fast_sec in [f for f, w in self._fast.items() if w.used_at < t_sec - 60]:
                del self._fast[fast_sec]
        if self._t_sec is None or t_sec < self._t_sec or new_start >= self._end:
            self._start, self._end, self._t_sec = new_start, new_end, t_sec
            self._refloor(tape)
            return
        if t_sec > self._t_sec:
            members = self._members
            first = members.lo
            k = bisect_left(members.sec, lo, first) - first
            if k:
                remove = self._tail.remove
                for v in members.x[first : first + k]:
                    remove(abs(v))
                members.pop_front(k)
            if new_end > self._end:
                secs, xs = self._entering(tape, self._end, new_end)
                if xs:
                    members.append(secs, xs)
                    add = self._tail.add
                    for v in xs:
                        add(abs(v))
            self._start, self._end, self._t_sec = new_start, new_end, t_sec
        self._rebalance(tape)

    def _entering(self, tape: TradeWindow, lo: int, hi: int) -> tuple[array[int], array[float]]:
        """Second and notional of the trades at ring positions ``[lo, hi)`` with |x| ≥ floor.

        Trades are often stored well ahead of the ticks (a backtest stores a day at a
        time), so candidates are found for up to ``_SCAN`` trades ahead in one numpy
        pass and each tick takes its share by bisection. The scan is redone when the
        floor moves or a late trade shifted the positions after it.
        """
        scan = self._scan
        if (
            scan is None
            or scan[0] != tape.edits
            or scan[1] != self._floor
            or not scan[2] <= lo <= hi <= scan[3]
        ):
            end = min(tape.ring.end, max(hi, lo + _SCAN))
            if end - hi < hi - lo:
                # Little stored ahead (live: trades reach just past the tick): scanning
                # ahead would be redone at the next tick anyway.
                self._scan = None
                xs = tape.ring.get(lo, hi)
                floor = self._floor
                if hi - lo <= _SMALL:
                    # A handful of trades (most symbols, most ticks): plain Python is cheaper.
                    picked = [i for i, x in enumerate(xs.tolist()) if abs(x) >= floor]
                    sel = np.array(picked, np.int64)
                else:
                    sel = np.flatnonzero(np.abs(xs) >= floor)
                if not len(sel):
                    return _NO_SECS, _NO_VALUES
                secs = tape.secs_of(sel + lo).astype(np.int64)
                return array("q", secs.tobytes()), array("d", xs[sel].tobytes())
            xs = tape.ring.get(lo, end)
            sel = np.flatnonzero(np.abs(xs) >= self._floor)
            pos = sel + lo
            scan = (
                tape.edits,
                self._floor,
                lo,
                end,
                array("q", pos.astype(np.int64).tobytes()),
                array("q", tape.secs_of(pos).astype(np.int64).tobytes()),
                array("d", xs[sel].tobytes()),
            )
            self._scan = scan
        pos_a = scan[4]
        a = bisect_left(pos_a, lo)
        b = bisect_left(pos_a, hi, a)
        return scan[5][a:b], scan[6][a:b]

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

    def _rebalance(self, tape: TradeWindow) -> None:
        n = self._end - self._start
        if n < MIN_TRADES:
            return
        r = n - (99 * n + 99) // 100 + 1  # nearest_rank_from_top(n), inlined
        size = self._tail._len
        if r <= size <= 4 * r + 64:
            return
        if size < r:
            self._refloor(tape)
        elif len(self._tail) > 4 * r + 64:
            floor = self._tail.kth_largest(2 * r + 32)
            self._tail.drop_below(floor)
            self._members.keep(np.abs(self._members.values()) >= floor)
            self._floor = floor

    def _refloor(self, tape: TradeWindow) -> None:
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
        n = self._end - self._start
        if n < MIN_TRADES:
            return None
        return self._tail.kth_largest(n - (99 * n + 99) // 100 + 1)

    def imbalance(self, fast_sec: int, threshold: float) -> float:
        """(large buy − large sell notional) / their sum over the last ``fast_sec`` seconds."""
        t_sec = self._t_sec
        assert t_sec is not None
        lo_sec = t_sec - fast_sec
        members = self._members
        window = self._fast.get(fast_sec)
        if window is None or window.gen != members.gen:
            window = self._fast[fast_sec] = _FastWindow(members, lo_sec)
        else:
            window.update(members, lo_sec)
        window.used_at = t_sec
        srt = window.sorted
        # The sign carries the side and notionals are ≥ 0, so x ≥ thr is a large buy and
        # x ≤ −thr a large sell (a zero notional on the wrong side adds nothing).
        buy = math.fsum(srt[bisect_left(srt, threshold) :])
        sell = -math.fsum(srt[: bisect_right(srt, -threshold)])
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
