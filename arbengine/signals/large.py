"""The large-order threshold (exact nearest-rank 99th percentile) and imbalance.

The threshold is the ⌈0.99·N⌉-th smallest trade notional over the day
window, exact (the backtester must match live to 1e-9, and today's floats
to the bit), for N up to ~3 million and every 15 s. Re-selecting over 3 M
values per tick costs ~70 ms, so the tracker keeps only the *upper tail*:
the trades of the window whose notional is ≥ a floor ``L``, in time order
(:class:`_Members`). The threshold is the r-th largest (r = N − ⌈0.99·N⌉ +
1) and lies in the tail while the tail holds at least r values. ``L`` is
raised when the tail grows past 3·r and lowered by one scan of the window
when it shrinks below r, which a stationary market never triggers.

Per tick only the trades entering and leaving the window touch the tail
(2–3 % of them), and nothing is kept sorted but a narrow **band** of values
around the threshold (:class:`_Band`): a count of the tail values above the
band, and the band's few hundred values in order. The r-th largest is then
one index into the band; only when the threshold drifts out of it (about
once a day on a busy symbol) is the band re-cut from the tail with one
``np.partition``. Per tick that is a handful of comparisons, whatever the
window holds, so the cost does not grow as the 24 h window fills.

``large_imbalance_fast`` sums the large buys and large sells of the fast
window exactly rounded (``math.fsum`` defines it; any exactly rounded sum
is the same float). Every double ≥ x is an integer multiple of x's unit in
the last place, so each fast window keeps the exact integer sums of its
members above the band (large at any threshold the band can give), in
units of the band bottom's last place, updated as members enter and leave
it; at a tick only the band's members in the window are compared with the
threshold, and the integer total divided once (Python's int division is
correctly rounded) is the fsum, bit for bit.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, insort
from collections import deque

import numpy as np
from numpy.typing import NDArray

from arbengine.signals.trade_window import TradeWindow

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

MIN_TRADES = 1000
_CHUNK = 1 << 20
_SCAN = 1 << 16
"""Trades scanned ahead for tail candidates at a time (see ``LargeTracker._entering``)."""
_PRUNE_FAST_SEC = 300
"""Every this many seconds, fast windows not read in the last minute are dropped (memory
only: one read again is rebuilt from the members)."""
_SMALL = 48
"""Below this many values a Python loop beats numpy's per-call overhead."""
_BULK = 256
"""More members than this entering or leaving at once: rebuilding the band or a fast
window's sums from the members in one vectorised pass is cheaper than one by one."""
_BAND_RANKS = 1024
"""The band holds about this many ranks on either side of the threshold when it is cut."""
_NO_SECS: array[int] = array("I")
_NO_VALUES: array[float] = array("d")


def nearest_rank_from_top(n: int) -> int:
    """r such that the r-th largest of n values is the ⌈0.99·n⌉-th smallest."""
    return n - (99 * n + 99) // 100 + 1


def exact_scale(smallest: float) -> int:
    """k ≥ 0 such that every double ≥ ``smallest`` is an integer multiple of 2⁻ᵏ."""
    if not smallest >= sys.float_info.min:
        return 1074  # zero or subnormal: the finest grid of all
    return max(0, 53 - math.frexp(smallest)[1])


def exact_units(value: float, k: int) -> int:
    """|value| in units of 2⁻ᵏ, exactly (``value`` finite, |value| on that grid)."""
    v = abs(value)
    try:
        return int(v * 2.0**k)  # a power-of-two scaling is exact unless it overflows
    except OverflowError:
        num, den = v.as_integer_ratio()
        return num << (k + 1 - den.bit_length())


def rounded(units: int, k: int) -> float:
    """The double nearest ``units`` · 2⁻ᵏ (ties to even), as ``math.fsum`` rounds."""
    return units / (1 << k)


class _Members:
    """Time-ordered (second, signed notional) of the tail members.

    Compact typed arrays (8 bytes a value, like numpy) that plain Python reads
    without a numpy call: a tick touches only a handful of members, and numpy's
    per-call overhead would dominate. Members are addressed by *logical* index
    (physical index + ``base``), so dropping leavers at the front never moves a
    member's index; ``gen`` changes when members are inserted or removed
    elsewhere (late trades, a new floor), so readers that remember indices know
    to start over.
    """

    def __init__(self) -> None:
        self.sec: array[int] = array("I")
        """Epoch seconds, 4 bytes each (good until 2106)."""
        self.x: array[float] = array("d")
        self.lo = 0
        """Physical index of the first member still in the window."""
        self.base = 0
        self.gen = 0

    def __len__(self) -> int:
        return len(self.sec) - self.lo

    @property
    def start(self) -> int:
        """Logical index of the first member."""
        return self.base + self.lo

    @property
    def end(self) -> int:
        """Logical index one past the last member."""
        return self.base + len(self.sec)

    @property
    def nbytes(self) -> int:
        return 4 * len(self.sec) + 8 * len(self.x)

    def secs(self) -> I64:
        return np.frombuffer(self.sec, np.uint32)[self.lo :].astype(np.int64)

    def values(self) -> F64:
        return np.frombuffer(self.x, np.float64)[self.lo :].copy()

    def first_at_or_after(self, sec: int, start: int) -> int:
        """Logical index of the first member from ``start`` on in second ``sec`` or later."""
        base = self.base
        return bisect_left(self.sec, sec, max(start - base, self.lo)) + base

    def between(self, lo: int, hi: int) -> array[float]:
        """Signed notionals of the members at logical indices ``[lo, hi)``."""
        base = self.base
        return self.x[lo - base : hi - base]

    def reset(self, sec: I64, x: F64) -> None:
        self.sec = array("I", np.ascontiguousarray(sec, np.uint32).tobytes())
        self.x = array("d", np.ascontiguousarray(x, np.float64).tobytes())
        self.base += self.lo
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
            self.base += self.lo
            self.lo = 0

    def insert(self, sec: I64, x: F64) -> None:
        old_s, old_x = self.secs(), self.values()
        at = np.searchsorted(old_s, sec, side="right")
        self.reset(np.insert(old_s, at, sec), np.insert(old_x, at, x))

    def keep(self, mask: NDArray[np.bool_]) -> None:
        self.reset(self.secs()[mask], self.values()[mask])


class _Band:
    """The tail's values near the threshold, in order, and a count of those above them.

    Holds ``above`` = how many tail values are ≥ ``hi``, and ``values``: every tail value
    in ``[lo, hi)``, ascending. The r-th largest of the tail is then ``values[-(r −
    above)]`` whenever 1 ≤ r − above ≤ len(values); otherwise (or after members were
    reorganised) the band is cut again around rank r. ``epoch`` changes at every cut, so
    readers that classified members by ``lo`` and ``hi`` know to redo it.
    """

    __slots__ = ("above", "epoch", "hi", "lo", "ranks", "valid", "values")

    def __init__(self, ranks: int = _BAND_RANKS) -> None:
        self.ranks = ranks
        self.lo = math.inf
        self.hi = math.inf
        self.above = 0
        self.values: list[float] = []
        self.valid = False
        self.epoch = 0

    def add(self, xs: array[float] | F64) -> None:
        if not self.valid:
            return
        if len(xs) > _BULK:
            self.valid = False
            return
        lo, hi, values = self.lo, self.hi, self.values
        for x in xs:
            v = abs(x)
            if v >= hi:
                self.above += 1
            elif v >= lo:
                insort(values, v)

    def remove(self, xs: array[float]) -> None:
        if not self.valid:
            return
        if len(xs) > _BULK:
            self.valid = False
            return
        lo, hi, values = self.lo, self.hi, self.values
        for x in xs:
            v = abs(x)
            if v >= hi:
                self.above -= 1
            elif v >= lo:
                del values[bisect_left(values, v)]

    def kth_largest(self, r: int, members: _Members) -> float:
        """The r-th largest |notional| of the members (1 ≤ r ≤ their number)."""
        if self.valid:
            k = r - self.above
            values = self.values
            if 0 < k <= len(values):
                return values[-k]
        self._cut(r, np.abs(members.values()))
        return self.values[len(self.values) - (r - self.above)]

    def _cut(self, r: int, absx: F64) -> None:
        n = len(absx)
        at_thr = n - r
        at_hi = min(n - 1, at_thr + self.ranks)
        at_lo = max(0, at_thr - self.ranks)
        part = np.partition(absx, sorted({at_lo, at_thr, at_hi}))
        thr = float(part[at_thr])
        hi = float(part[at_hi])
        if not hi > thr:
            # Ties up to the band's top: the band must end above every copy of the
            # threshold, at the next larger value (or hold everything above).
            greater = absx[absx > thr]
            hi = float(greater.min()) if len(greater) else math.inf
        lo = float(part[at_lo])
        inside = absx[(absx >= lo) & (absx < hi)]
        self.lo, self.hi = lo, hi
        self.above = int(np.count_nonzero(absx >= hi))
        self.values = np.sort(inside).tolist()
        self.valid = True
        self.epoch += 1

    @property
    def nbytes(self) -> int:
        return 32 * len(self.values)


class _FastWindow:
    """Exact sums of one fast window's large members, kept as members enter and leave.

    Members above the band are large at any threshold the band can give, so their
    |notional|s are summed exactly (as integers, see :func:`exact_units`) per side as
    they come and go; the band's members in the window are kept in time order and
    compared with the threshold at the tick; members below the band are never large.
    Holds the members with logical index in ``[lo, hi)``.
    """

    __slots__ = (
        "buy", "epoch", "gen", "hi", "inband", "k", "last", "lo", "scale", "sell", "used_at",
    )  # fmt: skip

    def __init__(self, members: _Members, band: _Band, lo_sec: int) -> None:
        self.gen = members.gen
        self.epoch = band.epoch
        self.k = exact_scale(band.lo)
        """Sums are integers of 2⁻ᵏ: every member the window sums is ≥ the band's bottom."""
        self.scale = 2.0**self.k
        self.lo = members.first_at_or_after(lo_sec, members.start)
        self.hi = members.end
        self.buy = 0
        self.sell = 0
        self.inband: deque[tuple[int, float, int]] = deque()
        """(logical index, signed notional, exact |notional|) of band members."""
        self.used_at = 0
        self.last: tuple[float, float] | None = None
        """(threshold, imbalance) last computed; dropped when members enter or leave.
        A quiet symbol's fast window mostly keeps its members from one tick to the next,
        and the same members at the same threshold give the same imbalance."""
        self._enter(self.lo, members.between(self.lo, self.hi), band)

    def current(self, members: _Members, band: _Band) -> bool:
        return self.gen == members.gen and self.epoch == band.epoch

    def _enter(self, first: int, xs: array[float], band: _Band) -> None:
        lo, hi, k = band.lo, band.hi, self.k
        buy = sell = 0
        inband = self.inband
        for i, x in enumerate(xs, first):
            v = abs(x)
            if v >= hi:
                if x > 0:
                    buy += exact_units(v, k)
                else:
                    sell += exact_units(v, k)
            elif v >= lo:
                inband.append((i, x, exact_units(v, k)))
        self.buy += buy
        self.sell += sell

    def update(self, members: _Members, band: _Band, lo_sec: int) -> bool:
        """Move to the window starting at ``lo_sec``; False when it must be rebuilt."""
        base = members.base
        at = self.lo - base
        if at < members.lo:
            return False  # not read while members it held left the day window
        sec = members.sec
        n = len(sec)
        # Nothing leaves unless the first member is older than the window: one comparison.
        leaving = at < n and sec[at] < lo_sec
        end = base + n
        if end == self.hi and not leaving:
            return True  # the usual tick of a quiet symbol: nothing entered, nothing left
        new_lo = bisect_left(sec, lo_sec, at) + base if leaving else self.lo
        if (end - self.hi) + (new_lo - self.lo) > _BULK:
            return False
        self.last = None
        if end > self.hi:
            self._enter(self.hi, members.between(self.hi, end), band)
            self.hi = end
        if new_lo > self.lo:
            lo, hi, k = band.lo, band.hi, self.k
            inband = self.inband
            for x in members.between(self.lo, new_lo):
                v = abs(x)
                if v >= hi:
                    if x > 0:
                        self.buy -= exact_units(v, k)
                    else:
                        self.sell -= exact_units(v, k)
                elif v >= lo:
                    inband.popleft()
            self.lo = new_lo
        return True

    def imbalance(self, threshold: float) -> float:
        last = self.last
        if last is not None and last[0] == threshold:
            return last[1]
        buy, sell = self.buy, self.sell
        for _, x, units in self.inband:
            # The sign carries the side and notionals are ≥ 0, so x ≥ thr is a large buy
            # and x ≤ −thr a large sell (a zero notional adds nothing either way).
            if x >= threshold:
                buy += units
            elif x <= -threshold:
                sell += units
        b, s = rounded(buy, self.k), rounded(sell, self.k)
        total = b + s
        got = 0.0 if total == 0 else (b - s) / total
        self.last = (threshold, got)
        return got

    @property
    def nbytes(self) -> int:
        return 64 + 96 * len(self.inband)


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
        self._members = _Members()
        self._band = _Band()
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
        return len(self._members)

    @property
    def floor(self) -> float:
        """Notionals at or above this are kept in the tail."""
        return self._floor

    @property
    def nbytes(self) -> int:
        scan = 0 if self._scan is None else 24 * len(self._scan[4])
        fast = sum(f.nbytes for f in self._fast.values())
        return self._members.nbytes + self._band.nbytes + scan + fast

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
            sec = members.sec
            # Most ticks of a quiet symbol, no member leaves: one comparison says so.
            if first < len(sec) and sec[first] < lo:
                k = bisect_left(sec, lo, first) - first
                self._band.remove(members.x[first : first + k])
                members.pop_front(k)
            if new_end > self._end:
                secs, xs = self._entering(tape, self._end, new_end)
                if xs:
                    members.append(secs, xs)
                    self._band.add(xs)
            self._start, self._end, self._t_sec = new_start, new_end, t_sec
        n = self._end - self._start
        if n >= MIN_TRADES:
            # _rebalance()'s test, inlined: most ticks the tail is within its bounds.
            r = n - (99 * n + 99) // 100 + 1  # nearest_rank_from_top(n), inlined
            members = self._members
            if not r <= len(members.sec) - members.lo <= 3 * r + 64:
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
            ring = tape.ring
            end = lo + _SCAN if lo + _SCAN > hi else hi
            if ring.end < end:
                end = ring.end
            if end - hi < hi - lo:
                # Little stored ahead (live: trades reach just past the tick): scanning
                # ahead would be redone at the next tick anyway.
                self._scan = None
                xs = ring.get(lo, hi)
                floor = self._floor
                if hi - lo <= _SMALL:
                    # A handful of trades (most symbols, most ticks): plain Python is cheaper,
                    # and most often none of them is a candidate (every |x| < floor), which
                    # two C loops tell.
                    values = xs.tolist()
                    if max(values) < floor and min(values) > -floor:
                        return _NO_SECS, _NO_VALUES
                    picked = [i for i, x in enumerate(values) if abs(x) >= floor]
                    sel = np.array(picked, np.int64)
                else:
                    sel = np.flatnonzero(np.abs(xs) >= floor)
                if not len(sel):
                    return _NO_SECS, _NO_VALUES
                secs = tape.secs_of(sel + lo).astype(np.uint32)
                return array("I", secs.tobytes()), array("d", xs[sel].tobytes())
            xs = tape.ring.get(lo, end)
            sel = np.flatnonzero(np.abs(xs) >= self._floor)
            pos = sel + lo
            scan = (
                tape.edits,
                self._floor,
                lo,
                end,
                array("q", pos.astype(np.int64).tobytes()),
                array("I", tape.secs_of(pos).astype(np.uint32).tobytes()),
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
            self._band.valid = False

    def _rebalance(self, tape: TradeWindow) -> None:
        n = self._end - self._start
        if n < MIN_TRADES:
            return
        r = n - (99 * n + 99) // 100 + 1  # nearest_rank_from_top(n), inlined
        members = self._members
        size = len(members.sec) - members.lo  # len(members), inlined
        if r <= size <= 3 * r + 64:
            return
        if size < r:
            self._refloor(tape)
        else:
            absx = np.abs(self._members.values())
            keep = 2 * r + 32
            floor = float(np.partition(absx, len(absx) - keep)[len(absx) - keep])
            self._members.keep(absx >= floor)
            self._band.valid = False
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
        self._members.reset(tape.secs_of(self._start + sel), xs[sel])
        self._band.valid = False
        self._floor = floor

    @staticmethod
    def _estimate_floor(xs: F64, target: int, need: int) -> float:
        """A floor with at least ``need`` values at or above it, aiming at ``target``."""
        n = len(xs)
        step = max(1, n // 4096)
        sample = np.sort(np.abs(xs[::step]))
        j = math.ceil(1.25 * target / step) + 8
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
        r = n - (99 * n + 99) // 100 + 1
        band = self._band
        if band.valid:  # _Band.kth_largest's usual case, inlined
            k = r - band.above
            values = band.values
            if 0 < k <= len(values):
                return values[-k]
        return band.kth_largest(r, self._members)

    def imbalance(self, fast_sec: int, threshold: float) -> float:
        """(large buy − large sell notional) / their sum over the last ``fast_sec`` seconds.

        ``threshold`` is this tick's :meth:`threshold` (so it lies in the band)."""
        t_sec = self._t_sec
        assert t_sec is not None
        lo_sec = t_sec - fast_sec
        members, band = self._members, self._band
        window = self._fast.get(fast_sec)
        if (
            window is None
            or window.gen != members.gen  # window.current(), inlined
            or window.epoch != band.epoch
            or not window.update(members, band, lo_sec)
        ):
            window = self._fast[fast_sec] = _FastWindow(members, band, lo_sec)
        window.used_at = t_sec
        last = window.last  # _FastWindow.imbalance's memo, inlined
        if last is not None and last[0] == threshold:
            return last[1]
        return window.imbalance(threshold)


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
