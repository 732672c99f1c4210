"""Per-symbol trade storage for the feature engine.

Why this shape:

- Memory must not grow with the trade rate beyond a few bytes per trade:
  24 h of BTCUSDT (about 3 million aggTrades) has to fit in well under 64 MB.
  So trades live in numpy columns, never as Python objects: one float64 per
  trade (signed notional, for the large-order percentile) plus one row of
  aggregates per *non-empty second*.
- Windows are closed-open on whole-second tick boundaries, so per-second
  aggregates are exact: ``[t − w, t)`` is a whole number of seconds.
- Results must not depend on how the stream is cut into batches: every
  per-second sum is accumulated by sequential adds in stream order (one
  ``np.bincount`` a column per batch), so a second split over two batches
  sums exactly like one batch. A window sum is a fixed reduction over the rows in the window (or,
  for long windows, over whole-minute blocks plus the two partial minutes
  at its edges), split only by the window's own bounds: its value depends
  on those rows alone, never on batching, on which ticks were evaluated
  before, or on when the process started.
- A tick is cheap because it reuses, never re-derives: window bounds are read
  from a second → row index instead of binary searches, and the minute-block
  sums and the partial minute at a window's end are kept while their rows are
  unchanged (the very same reductions over the very same rows, so the very
  same floats). Running or prefix sums would be cheaper still but are not
  used: they would change the floats (and lose Σ signed q to cancellation).
- Trades are ordered by ``(T, agg_id)``; a repeated ``agg_id`` counts once.
  Seen ids are kept as merged id intervals: Binance ids are consecutive, so
  this costs O(gaps), not O(trades).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
B8 = NDArray[np.bool_]

# Integer columns of the per-second rows.
_SEC, _END, _LAST_T, _LAST_ID = 0, 1, 2, 3
# Float columns of the per-second rows.
_VOL, _CVD, _PQ, _LAST_P = 0, 1, 2, 3
_FIRST = np.zeros(1, np.int64)
"""The start of a single group, for ``np.add.reduceat``."""
_FIRST.setflags(write=False)


@dataclass(frozen=True, slots=True)
class AddResult:
    """What happened to one ``add_trades`` call, for logs and metrics."""

    accepted: int
    duplicates: int
    late: int
    """Accepted trades with ``T`` before the last evaluated tick (``engine.late_trade``)."""
    too_old: int
    """Trades older than anything a future tick can see; dropped."""


class IdSet:
    """The agg_ids already counted, as sorted, merged, closed intervals.

    Each interval also remembers the latest trade time in it, so intervals
    that only hold trades older than the history horizon can be forgotten.
    """

    def __init__(self) -> None:
        self._lo: I64 = np.empty(0, np.int64)
        self._hi: I64 = np.empty(0, np.int64)
        self._t: I64 = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self._lo)

    def all_above(self, agg_id: int) -> bool:
        """Whether ``agg_id`` is above every id seen (a tape's next batch usually is)."""
        return not len(self._hi) or agg_id > int(self._hi[-1])

    def unseen(self, ids: I64) -> B8:
        if not len(self._lo):
            return np.ones(len(ids), np.bool_)
        j = np.searchsorted(self._lo, ids, side="right") - 1
        inside = (j >= 0) & (ids <= self._hi[np.maximum(j, 0)])
        return ~inside

    def add(self, ids: I64, times: I64) -> None:
        """Record ``ids`` (sorted ascending, unique, none already present)."""
        n = len(ids)
        if n == 0:
            return
        brk = np.flatnonzero(np.diff(ids) != 1) + 1
        starts = np.concatenate((np.zeros(1, np.intp), brk))
        ends = np.concatenate((brk, np.array([n], np.intp))) - 1
        run_lo, run_hi = ids[starts], ids[ends]
        run_t = np.maximum.reduceat(times, starts)
        if len(self._lo) and len(run_lo) == 1 and run_lo[0] == self._hi[-1] + 1:
            self._hi[-1] = run_hi[0]
            self._t[-1] = max(int(self._t[-1]), int(run_t[0]))
            return
        lo = np.concatenate((self._lo, run_lo))
        hi = np.concatenate((self._hi, run_hi))
        t = np.concatenate((self._t, run_t))
        order = np.argsort(lo, kind="stable")
        lo, hi, t = lo[order], hi[order], t[order]
        reach = np.maximum.accumulate(hi)
        new_group = np.ones(len(lo), np.bool_)
        new_group[1:] = lo[1:] > reach[:-1] + 1
        gs = np.flatnonzero(new_group)
        self._lo = lo[gs]
        self._hi = np.maximum.reduceat(hi, gs)
        self._t = np.maximum.reduceat(t, gs)

    def prune(self, before_ms: int) -> None:
        keep = self._t >= before_ms
        if not keep.all():
            self._lo, self._hi, self._t = self._lo[keep], self._hi[keep], self._t[keep]

    @property
    def nbytes(self) -> int:
        return int(self._lo.nbytes + self._hi.nbytes + self._t.nbytes)


class Ring:
    """A growable float64 buffer addressed by *logical* position, in blocks.

    Logical positions only ever grow (popping the front raises ``base``), so
    a position taken before a pop still names the same value after it. The
    values live in blocks that grow with the buffer up to 64 Ki values (512 kB)
    each: memory follows what is held (a block is freed as soon as it is
    popped) with at most a block to spare, where one buffer would keep its
    peak size and up to a quarter of growth slack (7 MB on a busy symbol).
    """

    _MAX_BLOCK = 1 << 16

    def __init__(self, capacity: int = 1024) -> None:
        self._min_block = max(16, capacity)
        self._blocks: list[F64] = []
        self._starts: list[int] = []
        """Logical position of each block's first slot."""
        self._base = 0
        self._end = 0

    @property
    def base(self) -> int:
        return self._base

    @property
    def end(self) -> int:
        return self._end

    def __len__(self) -> int:
        return self._end - self._base

    @property
    def nbytes(self) -> int:
        return sum(int(b.nbytes) for b in self._blocks)

    def append(self, values: F64) -> None:
        n = len(values)
        done = 0
        while done < n:
            blocks = self._blocks
            room = self._starts[-1] + len(blocks[-1]) - self._end if blocks else 0
            if room == 0:
                size = min(self._MAX_BLOCK, max(self._min_block, len(self) // 4, n - done))
                blocks.append(np.empty(size, np.float64))
                self._starts.append(self._end)
                room = size
            at = self._end - self._starts[-1]
            take = min(room, n - done)
            blocks[-1][at : at + take] = values[done : done + take]
            done += take
            self._end += take

    def get(self, lo: int, hi: int) -> F64:
        """Values at logical positions ``[lo, hi)``; a view when they lie in one block."""
        if not self._base <= lo <= hi <= self._end:
            raise IndexError(f"ring range [{lo}, {hi}) outside [{self._base}, {self._end})")
        if lo == hi:
            return np.empty(0, np.float64)
        starts = self._starts
        last = starts[-1]
        if lo >= last:  # the usual case: the newest trades, in the last block
            return self._blocks[-1][lo - last : hi - last]
        i = bisect_right(starts, lo) - 1
        j = bisect_right(starts, hi - 1, i) - 1
        if i == j:
            return self._blocks[i][lo - starts[i] : hi - starts[i]]
        parts = [self._blocks[i][lo - starts[i] :], *self._blocks[i + 1 : j]]
        parts.append(self._blocks[j][: hi - starts[j]])
        return np.concatenate(parts)

    def pop_to(self, pos: int) -> None:
        """Forget everything before logical position ``pos``."""
        self._base = min(max(self._base, pos), self._end)
        starts = self._starts
        drop = bisect_right(starts, self._base) - 1
        if drop > 0:
            del starts[:drop]
            del self._blocks[:drop]

    def insert(self, positions: NDArray[np.int64], values: F64) -> None:
        """Insert ``values[i]`` before the value now at ``positions[i]`` (non-decreasing)."""
        if len(values) == 0:
            return
        p0 = int(positions[0])
        tail = self.get(p0, self._end).copy()
        merged = np.insert(tail, positions - p0, values)
        keep = max(1, bisect_right(self._starts, p0 - 1) if p0 > self._base else 1)
        del self._starts[keep:]
        del self._blocks[keep:]
        self._end = p0
        self.append(merged)


class Rows:
    """One row of aggregates per non-empty second, ascending by second.

    Integer columns: second, end (logical ring position one past the
    second's last trade), last trade time and id. Float columns: Σq, Σ
    signed q, Σ p·q, last trade price.
    """

    def __init__(self, capacity: int = 1024) -> None:
        cap = max(16, capacity)
        self._i: I64 = np.zeros((4, cap), np.int64)
        self._f: F64 = np.zeros((4, cap), np.float64)
        self._lo = 0
        self._hi = 0

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def nbytes(self) -> int:
        return int(self._i.nbytes + self._f.nbytes)

    @property
    def secs(self) -> I64:
        return self._i[_SEC, self._lo : self._hi]

    @property
    def ends(self) -> I64:
        return self._i[_END, self._lo : self._hi]

    def _reserve(self, extra: int) -> None:
        """Room for ``extra`` rows at the end: rows dropped at the front are reused once
        they are 1/32 of the buffer, and a full buffer grows by an eighth (a day of a
        busy symbol is 86,400 rows of 64 bytes: slack is memory)."""
        cap = self._i.shape[1]
        if self._hi + extra <= cap:
            return
        size = self._hi - self._lo
        if size + extra <= cap and 32 * self._lo >= cap:
            self._i[:, :size] = self._i[:, self._lo : self._hi]
            self._f[:, :size] = self._f[:, self._lo : self._hi]
        else:
            new_cap = max(1024, (size + extra) * 9 // 8)
            i_new = np.zeros((4, new_cap), np.int64)
            f_new = np.zeros((4, new_cap), np.float64)
            i_new[:, :size] = self._i[:, self._lo : self._hi]
            f_new[:, :size] = self._f[:, self._lo : self._hi]
            self._i, self._f = i_new, f_new
        self._lo, self._hi = 0, size

    def append_blank(self, n: int) -> int:
        """Append ``n`` empty rows; returns the physical index of the first."""
        self._reserve(n)
        start = self._hi
        self._i[:, start : start + n] = 0
        self._i[_LAST_T, start : start + n] = -1
        self._i[_LAST_ID, start : start + n] = -1
        self._f[:, start : start + n] = 0.0
        self._hi += n
        return start

    def physical(self, logical_index: int) -> int:
        return self._lo + logical_index

    @property
    def raw_int(self) -> I64:
        return self._i

    @property
    def raw_float(self) -> F64:
        return self._f

    def replace_tail(self, i0: int, ints: I64, floats: F64) -> None:
        """Replace logical rows ``[i0, len)`` by the given columns."""
        n = ints.shape[1]
        self._hi = self._lo + i0
        self._reserve(n)
        self._i[:, self._hi : self._hi + n] = ints
        self._f[:, self._hi : self._hi + n] = floats
        self._hi += n

    def pop_before(self, sec: int) -> int:
        """Drop rows with second < ``sec``; returns how many.

        A buffer left much larger than its rows (it grew while more than a day was
        held, as at start-up) is cut back to them and a sixteenth."""
        k = int(np.searchsorted(self.secs, sec, side="left"))
        self._lo += k
        size = self._hi - self._lo
        if self._i.shape[1] > size * 9 // 8 + 1024:
            cap = size + size // 16 + 1024
            self._i = np.ascontiguousarray(self._i[:, self._lo : self._lo + cap])
            self._f = np.ascontiguousarray(self._f[:, self._lo : self._lo + cap])
            self._lo, self._hi = 0, size
        return k


class MinuteBlocks:
    """Σq, Σ signed q and Σ p·q per non-empty minute, summarised once the minute is past.

    A day window then sums ~1 440 block rows plus two partial minutes
    instead of up to 86 400 second rows. Each block is always the same
    reduction over the same second rows, and a window is always split the
    same way (by its bounds), so the result still depends only on the data
    in the window.
    """

    def __init__(self) -> None:
        self._min: I64 = np.zeros(256, np.int64)
        self._sums: F64 = np.zeros((3, 256), np.float64)
        self._lo = 0
        self._hi = 0
        self._built: int | None = None
        """Minutes before this one are summarised."""
        self._memo: dict[tuple[int, int], tuple[float, float, float]] = {}
        """Block sums already taken, by minute range. With 15 s ticks the minute range of a
        window changes at one tick in four, so most ticks reuse the same sum (the very
        same reduction over the very same blocks, hence the same float)."""

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def nbytes(self) -> int:
        return int(self._min.nbytes + self._sums.nbytes)

    def _minutes(self) -> I64:
        return self._min[self._lo : self._hi]

    def invalidate_from(self, minute: int) -> None:
        if self._built is not None and minute < self._built:
            self._hi = self._lo + int(self._minutes().searchsorted(minute))
            self._built = minute
            self._memo.clear()

    def pop_before(self, minute: int) -> None:
        k = int(self._minutes().searchsorted(minute))
        if k:
            self._lo += k
            # Sums over minutes still held stay valid (they are keyed by minutes, not rows).
            for key in [key for key in self._memo if key[0] < minute]:
                del self._memo[key]

    def _append(self, minutes: I64 | list[int], sums: F64) -> None:
        n = len(minutes)
        if self._hi + n > len(self._min):
            size = self._hi - self._lo
            cap = max(256, (size + n) * 2)
            new_min = np.zeros(cap, np.int64)
            new_sums = np.zeros((3, cap), np.float64)
            new_min[:size] = self._min[self._lo : self._hi]
            new_sums[:, :size] = self._sums[:, self._lo : self._hi]
            self._min, self._sums, self._lo, self._hi = new_min, new_sums, 0, size
        self._min[self._hi : self._hi + n] = minutes
        self._sums[:, self._hi : self._hi + n] = sums
        self._hi += n

    def ensure(self, rows: Rows, upto: int) -> None:
        """Summarise every minute before ``upto``."""
        start = self._built
        if start is not None and start >= upto:
            return
        secs = rows.secs
        if start is None:
            if not len(secs):
                return
            start = int(secs[0]) // 60
        a, b = secs.searchsorted((start * 60, upto * 60)).tolist()
        if b > a:
            pa = rows.physical(a)
            block = rows.raw_float[_VOL : _PQ + 1, pa : pa + b - a]
            if upto - start == 1:
                # One minute (a tick's usual case): one block, no minute boundaries to find.
                self._append([start], np.add.reduceat(block, _FIRST, axis=1))
            else:
                minutes = secs[a:b] // 60
                if minutes[0] == minutes[-1]:
                    starts = _FIRST
                else:
                    starts = np.concatenate((_FIRST, np.flatnonzero(np.diff(minutes)) + 1))
                self._append(minutes[starts], np.add.reduceat(block, starts, axis=1))
        self._built = max(upto, start)

    def sum(self, m_lo: int, m_hi: int) -> tuple[float, float, float]:
        """Σq, Σ signed q, Σ p·q over the blocks of minutes ``[m_lo, m_hi)``.

        Only valid once :meth:`ensure` summarised every minute before ``m_hi``; blocks
        before ``built`` change only through :meth:`invalidate_from` and
        :meth:`pop_before`, which drop the memo.
        """
        key = (m_lo, m_hi)
        got = self._memo.get(key)
        if got is None:
            i, j = self._minutes().searchsorted(key).tolist()
            vol, cvd, pq = _add_reduce(self._sums[:, self._lo + i : self._lo + j], axis=1).tolist()
            got = (vol, cvd, pq)
            if len(self._memo) >= 64:
                self._memo.clear()
            self._memo[key] = got
        return got


class SecondIndex:
    """Row index of the first non-empty second at or after any second, by direct lookup.

    Every tick looks up a handful of window bounds among up to ~86 400 rows. A binary
    search there costs a few microseconds, mostly in cache misses; one array read per
    bound does not. 4 bytes per second of the retained span (a day: ~350 kB).

    Entries hold row ordinals counted from the last rebuild, so dropping rows at the
    front (``pop``) is one subtraction at lookup; rows appended at the end extend the
    index (``extend``); rows inserted before others (late trades) make it stale, and it
    is rebuilt at the next lookup.
    """

    def __init__(self) -> None:
        self._first = 0
        """Second of entry 0."""
        self._rows: array[int] = array("i")
        self._popped = 0
        """Rows dropped at the front since the last rebuild."""
        self.stale = True

    @property
    def nbytes(self) -> int:
        return self._rows.itemsize * len(self._rows)

    def invalidate(self) -> None:
        self.stale = True
        self._rows = array("i")

    def rebuild(self, secs: I64) -> None:
        self.stale = False
        self._popped = 0
        if not len(secs):
            self._first, self._rows = 0, array("i")
            return
        first, last = int(secs[0]), int(secs[-1])
        found = np.searchsorted(secs, np.arange(first, last + 1, dtype=np.int64))
        self._first, self._rows = first, array("i", found.astype(np.int32).tobytes())

    def extend(self, secs: I64) -> None:
        """Cover the seconds up to the last row, after rows were appended at the end."""
        if self.stale:
            return
        covered = len(self._rows)
        if not covered:
            self.rebuild(secs)
            return
        nxt = self._first + covered
        last = int(secs[-1])
        if last < nxt:
            return
        a = int(secs.searchsorted(nxt))
        found = secs[a:].searchsorted(np.arange(nxt, last + 1, dtype=np.int64)) + (a + self._popped)
        self._rows.frombytes(found.astype(np.int32).tobytes())

    def pop(self, rows_dropped: int, first_sec: int | None) -> None:
        """``rows_dropped`` rows left the front; ``first_sec`` is the first one left."""
        if self.stale:
            return
        self._popped += rows_dropped
        drop = (
            len(self._rows) if first_sec is None else min(len(self._rows), first_sec - self._first)
        )
        # Entries before the first row left read as row 0 anyway (their ordinals are below
        # ``_popped``): trim them only once they are a quarter of the index, not every time.
        if drop > 0 and 4 * drop >= len(self._rows):
            del self._rows[:drop]
            self._first += drop

    def row_at(self, sec: int, n_rows: int) -> int:
        """:meth:`rows_at` of one second (a tick looks up a handful, one by one)."""
        k = sec - self._first
        if k < 0:
            return 0
        rows = self._rows
        if k >= len(rows):
            return n_rows
        i = rows[k] - self._popped
        return i if i > 0 else 0

    def rows_at(self, secs: list[int], n_rows: int) -> list[int]:
        first, rows, popped = self._first, self._rows, self._popped
        size = len(rows)
        out = []
        for sec in secs:
            k = sec - first
            if k < 0:
                out.append(0)
            elif k >= size:
                out.append(n_rows)
            else:
                i = rows[k] - popped
                out.append(i if i > 0 else 0)
        return out


_DIRECT_ROWS = 12_000
"""Windows over at most this many second rows are summed directly."""

_add_reduce = np.add.reduce
"""``a.sum(axis=1)`` without the Python wrapper: the same ufunc reduction (a pairwise
sum along each row, started from 0), so the same floats, a microsecond cheaper."""
_ZERO3 = (0.0, 0.0, 0.0)
"""The sum over no rows, exactly what the reduction of an empty slice gives."""
_EMPTY = (0, 0.0, 0.0, 0.0)
"""A window without trades."""


@dataclass(frozen=True, slots=True)
class LastTrade:
    time_ms: int
    agg_id: int
    price: float


class TradeWindow:
    """Trades of one symbol, as the feature windows and the large-order tracker read them.

    Retains trades from ``floor`` (the last evaluated tick − 24 h, the
    longest window a strategy may use) onwards; before the first evaluation
    it retains everything it is given.
    """

    def __init__(self) -> None:
        self.ids = IdSet()
        self.rows = Rows()
        self.ring = Ring()
        self.blocks = MinuteBlocks()
        self._floor_sec: int | None = None
        self._carry: LastTrade | None = None
        """The last trade before the first retained row (feeds ``price``)."""
        self.edits = 0
        """Counts stores that moved trades already held (late trades inserted before
        others), which shifts ring positions: a reader that remembers positions checks it."""
        self.index = SecondIndex()
        self._right: tuple[int, int, tuple[float, float, float]] | None = None
        """Memo of the last right-edge partial minute: (first row, end row, sums)."""
        self._at: tuple[int, int] | None = None
        """(second, index of the first row at or after it) of the windows' last end."""
        self._positions: dict[int, int] = {}
        """Ring position of the first trade at or after a second, for the seconds the
        windows looked up since the last change: the large-order tracker asks for the
        same bounds right after."""

    @property
    def floor_sec(self) -> int | None:
        return self._floor_sec

    @property
    def nbytes(self) -> int:
        return (
            self.ids.nbytes
            + self.rows.nbytes
            + self.ring.nbytes
            + self.blocks.nbytes
            + self.index.nbytes
        )

    def __len__(self) -> int:
        return len(self.ring)

    # ---- reading -------------------------------------------------------------------------

    def end_before(self, row: int) -> int:
        """Logical ring position where (logical) row ``row`` starts."""
        return int(self.rows.ends[row - 1]) if row > 0 else self.ring.base

    def rows_at(self, secs: list[int]) -> list[int]:
        """Index of the first row at or after each of the given seconds."""
        index = self.index
        if index.stale:
            index.rebuild(self.rows.secs)
        return index.rows_at(secs, len(self.rows))

    def row_at(self, sec: int) -> int:
        """Index of the first row at or after ``sec``."""
        index = self.index
        if index.stale:
            index.rebuild(self.rows.secs)
        return index.row_at(sec, len(self.rows))

    def _changed(self) -> None:
        self._right = None
        self._at = None
        self._positions.clear()

    def positions_before(self, secs: tuple[int, ...]) -> list[int]:
        """Ring position of the first trade at or after each of the given seconds."""
        known = self._positions
        try:
            return list(map(known.__getitem__, secs))  # the windows just looked them up
        except KeyError:
            pass
        out = [known.get(sec, -1) for sec in secs]
        rows = self.rows
        index = self.index
        if index.stale:
            index.rebuild(rows.secs)
        row_at, n_rows = index.row_at, len(rows)
        ends = rows.ends
        base = self.ring.base
        for k, sec in enumerate(secs):
            if out[k] < 0:
                i = row_at(sec, n_rows)
                out[k] = int(ends[i - 1]) if i else base
        return out

    def window(self, lo_sec: int, hi_sec: int) -> tuple[int, float, float, float]:
        """Trade count, Σq, Σ signed q and Σ p·q over seconds ``[lo_sec, hi_sec)``."""
        return self.windows(hi_sec, (hi_sec - lo_sec,))[0]

    def windows(self, hi_sec: int, lengths: Iterable[int]) -> list[tuple[int, float, float, float]]:
        """:meth:`window` over ``[hi_sec − w, hi_sec)`` for each length ``w``, in one pass.

        Each window is summed on its own (never from another window's sum), so
        its value depends on its own rows only, whatever else is asked for. A
        window over at most ``_DIRECT_ROWS`` rows is one reduction over them;
        a longer one is the partial minute at its start, plus the minute blocks,
        plus the partial minute at its end, added in that order. The partial
        minute at the end and the block sums are the same reductions whichever
        window or tick asks, so they are computed once and reused.

        Row bounds are looked up only where a window needs them (a direct window
        needs its two ends, not its whole minutes): every tick of every symbol
        comes through here.
        """
        rows = self.rows
        index = self.index
        if index.stale:
            index.rebuild(rows.secs)
        n_rows = len(rows)
        # SecondIndex.row_at, inlined (a handful of bounds per symbol and tick).
        first, by_sec, popped = index._first, index._rows, index._popped
        size = len(by_sec)
        k = hi_sec - first
        j = n_rows if k >= size else 0 if k < 0 else max(by_sec[k] - popped, 0)
        self._at = (hi_sec, j)
        start = rows.physical(0)
        end_item = rows.raw_int.item  # .item(_END, row): a Python int without a numpy scalar
        base = self.ring.base
        end_j = end_item(_END, start + j - 1) if j else base
        positions = self._positions
        positions[hi_sec] = end_j
        raw = rows.raw_float
        m_hi = hi_sec // 60
        right: tuple[float, float, float] | None = None
        out: list[tuple[int, float, float, float]] = []
        for w in lengths:
            lo = hi_sec - w
            k = lo - first
            i = n_rows if k >= size else 0 if k < 0 else max(by_sec[k] - popped, 0)
            if j <= i:
                out.append(_EMPTY)
                continue
            begin = positions[lo] = end_item(_END, start + i - 1) if i else base
            m_lo = -(-lo // 60)
            if j - i <= _DIRECT_ROWS or m_lo >= m_hi:
                vol, cvd, pq = _add_reduce(raw[_VOL : _PQ + 1, start + i : start + j], 1).tolist()
                out.append((end_j - begin, vol, cvd, pq))
                continue
            if right is None:
                self.blocks.ensure(rows, m_hi)
                right = self._right_edge(start, index.row_at(m_hi * 60, n_rows), j)
            i2 = index.row_at(m_lo * 60, n_rows)
            left = (
                _add_reduce(raw[_VOL : _PQ + 1, start + i : start + i2], 1).tolist()
                if i2 > i
                else _ZERO3
            )
            mid = self.blocks.sum(m_lo, m_hi)
            out.append(
                (
                    end_j - begin,
                    (left[0] + mid[0]) + right[0],
                    (left[1] + mid[1]) + right[1],
                    (left[2] + mid[2]) + right[2],
                )
            )
        return out

    def _right_edge(self, start: int, j2: int, j: int) -> tuple[float, float, float]:
        """Sums over rows ``[j2, j)``: the partial minute every long window of a tick ends with."""
        memo = self._right
        if memo is not None and memo[0] == j2 and memo[1] == j:
            return memo[2]
        got = _ZERO3
        if j > j2:
            vol, cvd, pq = _add_reduce(
                self.rows.raw_float[_VOL : _PQ + 1, start + j2 : start + j], axis=1
            ).tolist()
            got = (vol, cvd, pq)
        self._right = (j2, j, got)
        return got

    def last_before(self, sec: int) -> LastTrade | None:
        """The last trade (by ``(T, agg_id)``) in a second before ``sec``."""
        j = self.row_at(sec) - 1
        if j < 0:
            return self._carry
        p = self.rows.physical(j)
        ri, rf = self.rows.raw_int, self.rows.raw_float
        return LastTrade(int(ri[_LAST_T, p]), int(ri[_LAST_ID, p]), float(rf[_LAST_P, p]))

    def last_time_price(self, sec: int) -> tuple[int, float] | None:
        """(time, price) of :meth:`last_before`, without building a LastTrade."""
        at = self._at
        j = (at[1] if at is not None and at[0] == sec else self.row_at(sec)) - 1
        if j < 0:
            c = self._carry
            return None if c is None else (c.time_ms, c.price)
        p = self.rows.physical(j)
        return self.rows.raw_int.item(_LAST_T, p), self.rows.raw_float.item(_LAST_P, p)

    def secs_of(self, positions: I64) -> I64:
        """Second of each trade at the given logical ring positions."""
        row = np.searchsorted(self.rows.ends, positions, side="right")
        return self.rows.secs[row]

    # ---- writing -------------------------------------------------------------------------

    def set_floor(self, sec: int) -> None:
        """Forget trades in seconds before ``sec`` (monotone)."""
        if self._floor_sec is not None and sec <= self._floor_sec:
            return
        self._floor_sec = sec
        secs = self.rows.secs
        k = int(np.searchsorted(secs, sec, side="left"))
        if k == 0:
            return
        last = self.last_before(int(secs[k - 1]) + 1)
        assert last is not None
        self._note_carry(last)
        new_base = self.end_before(k)
        dropped = self.rows.pop_before(sec)
        self.index.pop(dropped, int(self.rows.secs[0]) if len(self.rows) else None)
        self.ring.pop_to(new_base)
        self.blocks.pop_before(sec // 60)
        self._changed()  # row indices moved

    def _note_carry(self, trade: LastTrade) -> None:
        c = self._carry
        if c is None or (trade.time_ms, trade.agg_id) > (c.time_ms, c.agg_id):
            self._carry = trade

    def note_old_trade(self, time_ms: int, agg_id: int, price: float) -> None:
        """A trade before the floor can still be the latest trade before the floor."""
        self._note_carry(LastTrade(time_ms, agg_id, price))

    def store(self, t: I64, ids: I64, p: F64, q: F64, sq: F64, x: F64) -> None:
        """Store trades sorted by ``(T, agg_id)``, all new and at or after the floor.

        ``sq`` is the signed quantity and ``x`` the signed notional (+p·q for a
        taker buy, −p·q for a taker sell).
        """
        if len(t) == 0:
            return
        self._changed()
        secs = t // 1000
        self.blocks.invalidate_from(int(secs[0]) // 60)
        rows = self.rows
        in_order = True
        if len(rows):
            lp = rows.physical(len(rows) - 1)
            last_key = (int(rows.raw_int[_LAST_T, lp]), int(rows.raw_int[_LAST_ID, lp]))
            in_order = (int(t[0]), int(ids[0])) > last_key
        if in_order:
            self._append(secs, t, ids, p, q, sq, x)
            self.index.extend(rows.secs)
        else:
            self._insert(secs, t, ids, p, q, sq, x)
            self.index.invalidate()
        # Minutes before the newest trade's are (barring late trades) complete:
        # summarise them now, at ingestion, rather than inside a tick.
        self.blocks.ensure(rows, int(secs[-1]) // 60)

    @staticmethod
    def _groups(secs: I64) -> tuple[I64, I64, I64]:
        n = len(secs)
        brk = np.flatnonzero(secs[1:] != secs[:-1]) + 1
        starts = np.concatenate((np.zeros(1, np.int64), brk))
        lasts = np.concatenate((brk, np.array([n], np.int64))) - 1
        return starts, lasts, lasts - starts + 1

    @staticmethod
    def _accumulate(floats: F64, rows: I64, counts: I64, q: F64, sq: F64, x: F64) -> None:
        """Add each trade into its row's Σq, Σ signed q and Σ p·q, one at a time in stream
        order after the row's current sum, so a second split over two batches sums to
        exactly the float of one batch. ``rows`` are distinct row indices, ``counts`` the
        number of consecutive trades for each.

        ``np.bincount`` adds its weights into each bin one by one in index order from
        0.0; each row's current sum goes first (0.0 + s is s: a sum started at 0.0 is
        never −0.0), then its trades: the additions ``np.add.at`` made, vectorised.
        """
        g = len(rows)
        bins = np.concatenate((np.arange(g), np.repeat(np.arange(g), counts)))
        for col, values in ((_VOL, q), (_CVD, sq), (_PQ, np.abs(x))):
            floats[col, rows] = np.bincount(
                bins, np.concatenate((floats[col, rows], values)), minlength=g
            )

    def _append(self, secs: I64, t: I64, ids: I64, p: F64, q: F64, sq: F64, x: F64) -> None:
        rows = self.rows
        starts, lasts, counts = self._groups(secs)
        gsec = secs[starts]
        merge = len(rows) > 0 and int(rows.secs[-1]) == int(gsec[0])
        n_new = len(gsec) - (1 if merge else 0)
        counts_all = counts.copy()
        if merge:
            prev_end = self.end_before(len(rows) - 1)
            counts_all[0] += int(rows.ends[-1]) - prev_end
        else:
            prev_end = self.ring.end
        rows.append_blank(n_new)
        first_row = rows.physical(len(rows) - len(gsec))
        ri, rf = rows.raw_int, rows.raw_float
        phys = first_row + np.arange(len(gsec))
        ri[_SEC, phys] = gsec
        ri[_END, phys] = prev_end + np.cumsum(counts_all)
        ri[_LAST_T, phys] = t[lasts]
        ri[_LAST_ID, phys] = ids[lasts]
        rf[_LAST_P, phys] = p[lasts]
        self._accumulate(rf, phys, counts, q, sq, x)
        self.ring.append(x)

    def _insert(self, secs: I64, t: I64, ids: I64, p: F64, q: F64, sq: F64, x: F64) -> None:
        self.edits += 1
        rows = self.rows
        starts, lasts, counts = self._groups(secs)
        gsec = secs[starts]
        old_secs = rows.secs
        i0 = int(np.searchsorted(old_secs, gsec[0], side="left"))
        base_end = self.end_before(i0)
        reg_secs = old_secs[i0:].copy()
        reg_ends = rows.ends[i0:].copy()
        merged = np.union1d(reg_secs, gsec)
        m = len(merged)
        pos_old = np.searchsorted(merged, reg_secs)
        pos_new = np.searchsorted(merged, gsec)
        a = rows.physical(i0)
        ints = np.zeros((4, m), np.int64)
        floats = np.zeros((4, m), np.float64)
        ints[_LAST_T], ints[_LAST_ID] = -1, -1
        ints[:, pos_old] = rows.raw_int[:, a : a + len(reg_secs)]
        floats[:, pos_old] = rows.raw_float[:, a : a + len(reg_secs)]
        ints[_SEC] = merged
        # Ring positions: after the trades already stored in the same or earlier seconds.
        old_counts = np.diff(np.concatenate((np.array([base_end], np.int64), reg_ends)))
        k = np.searchsorted(reg_secs, gsec, side="right")
        at = np.where(k > 0, reg_ends[np.maximum(k - 1, 0)], base_end)
        self.ring.insert(np.repeat(at, counts), x)
        cnt = np.zeros(m, np.int64)
        cnt[pos_old] = old_counts
        cnt[pos_new] += counts
        ints[_END] = base_end + np.cumsum(cnt)
        self._accumulate(floats, pos_new, counts, q, sq, x)
        # Last trade of each second by (T, agg_id).
        st, sid = ints[_LAST_T, pos_new], ints[_LAST_ID, pos_new]
        ct, cid = t[lasts], ids[lasts]
        later = (ct > st) | ((ct == st) & (cid > sid))
        upd = pos_new[later]
        ints[_LAST_T, upd] = ct[later]
        ints[_LAST_ID, upd] = cid[later]
        floats[_LAST_P, upd] = p[lasts][later]
        rows.replace_tail(i0, ints, floats)


class TickOrderError(ValueError):
    """Ticks went backwards, or trades ran so far ahead of the evaluated tick
    that history a later tick needs was already overwritten."""
