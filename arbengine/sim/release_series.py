"""Small columnar time series with a release watermark (marks, 5-minute indicator rows)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from arbengine.sim.retention import shift_down, should_compact


class Series:
    """Named numpy columns, one row per time ``t``, appended in time order.

    Like the tape, rows may be generated ahead of the clock; only rows up to
    ``released`` are visible, and row indexes count from the oldest row kept
    (``forget_before`` drops old ones, so indexes shift: do not hold one across
    a clock step).
    """

    def __init__(self, columns: Mapping[str, type[np.generic]], capacity: int = 1024) -> None:
        self._cols: dict[str, npt.NDArray[np.generic]] = {
            "t": np.empty(capacity, np.int64),
            **{name: np.empty(capacity, dtype) for name, dtype in columns.items()},
        }
        self._start = 0
        self._end = 0
        self.released = 0
        self.forgotten = 0

    @property
    def n(self) -> int:
        """Rows kept, released or not."""
        return self._end - self._start

    @property
    def nbytes(self) -> int:
        """Memory held by the columns (their capacity, not only the rows kept)."""
        return sum(arr.nbytes for arr in self._cols.values())

    def append(self, t: int, **values: float | int) -> None:
        if self._end == len(self._cols["t"]):
            if should_compact(self._start, self.n):
                self._compact()
            else:
                for name, arr in list(self._cols.items()):
                    grown = np.empty(len(arr) * 2, arr.dtype)
                    grown[: self.n] = arr[self._start : self._end]
                    self._cols[name] = grown
                self._end -= self._start
                self._start = 0
        i = self._end
        self._cols["t"][i] = t
        for name, value in values.items():
            self._cols[name][i] = value
        self._end += 1

    def extend(self, t: npt.ArrayLike, **values: npt.ArrayLike) -> None:
        """Append many rows at once (times in order, after the last row), as ``append`` would."""
        times = np.asarray(t, np.int64)
        n = len(times)
        while len(self._cols["t"]) - self._end < n:
            for name, arr in list(self._cols.items()):
                grown = np.empty(max(len(arr) * 2, self.n + n), arr.dtype)
                grown[: self.n] = arr[self._start : self._end]
                self._cols[name] = grown
            self._end -= self._start
            self._start = 0
        lo, hi = self._end, self._end + n
        self._cols["t"][lo:hi] = times
        for name, column in values.items():
            self._cols[name][lo:hi] = column
        self._end = hi

    def insert_released(self, t: int, **values: float | int) -> None:
        """Add a row visible now (``t`` at or after the newest released row), before the rows
        generated ahead of the clock: a value that changed between two scheduled rows."""
        self.append(t, **values)
        i = self._start + self.released
        for arr in self._cols.values():
            row = arr[self._end - 1].copy()
            arr[i + 1 : self._end] = arr[i : self._end - 1].copy()
            arr[i] = row
        self.released += 1

    def scale_unreleased(self, names: tuple[str, ...], factor: float) -> None:
        """Multiply the rows generated ahead of the clock (not yet seen by anyone)."""
        lo, hi = self._start + self.released, self._end
        for name in names:
            column = self._cols[name]
            column[lo:hi] = np.multiply(column[lo:hi], factor)

    def release_until(self, t_ms: int) -> tuple[int, int]:
        lo = self.released
        t = self._cols["t"]
        base = self._start
        hi = lo
        while hi < self.n and t[base + hi] <= t_ms:
            hi += 1
        self.released = hi
        return lo, hi

    def forget_before(self, t_ms: int) -> int:
        """Forget released rows with ``t < t_ms`` (the newest released row is always kept)."""
        if self.released <= 1:
            return 0
        base = self._start
        t = self._cols["t"]
        if t[base] >= t_ms:  # nothing that old (the common case, at every clock step)
            return 0
        released = t[base : base + self.released]
        drop = min(int(np.searchsorted(released, t_ms, side="left")), self.released - 1)
        if drop <= 0:
            return 0
        self._start += drop
        self.released -= drop
        self.forgotten += drop
        if should_compact(self._start, self.n):
            self._compact()
        return drop

    def _compact(self) -> None:
        shift_down(self._cols.values(), self._start, self._end)
        self._end -= self._start
        self._start = 0

    def col(self, name: str, lo: int = 0, hi: int | None = None) -> npt.NDArray[np.generic]:
        base = self._start
        return self._cols[name][base + lo : base + (self.released if hi is None else hi)]

    def value(self, name: str, i: int) -> float | int:
        v: float | int = self._cols[name][self._start + i].item()
        return v
