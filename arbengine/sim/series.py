"""Small columnar time series with a release watermark (marks, 5-minute indicator rows)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt


class Series:
    """Named numpy columns, one row per time ``t``, appended in time order.

    Like the tape, rows may be generated ahead of the clock; only rows up to
    ``released`` are visible.
    """

    def __init__(self, columns: Mapping[str, type[np.generic]], capacity: int = 1024) -> None:
        self._cols: dict[str, npt.NDArray[np.generic]] = {
            "t": np.empty(capacity, np.int64),
            **{name: np.empty(capacity, dtype) for name, dtype in columns.items()},
        }
        self.n = 0
        self.released = 0

    def append(self, t: int, **values: float | int) -> None:
        if self.n == len(self._cols["t"]):
            for name, arr in list(self._cols.items()):
                grown = np.empty(len(arr) * 2, arr.dtype)
                grown[: self.n] = arr[: self.n]
                self._cols[name] = grown
        i = self.n
        self._cols["t"][i] = t
        for name, value in values.items():
            self._cols[name][i] = value
        self.n += 1

    def release_until(self, t_ms: int) -> tuple[int, int]:
        lo = self.released
        t = self._cols["t"]
        hi = lo
        while hi < self.n and t[hi] <= t_ms:
            hi += 1
        self.released = hi
        return lo, hi

    def col(self, name: str, lo: int = 0, hi: int | None = None) -> npt.NDArray[np.generic]:
        return self._cols[name][lo : self.released if hi is None else hi]

    def value(self, name: str, i: int) -> float | int:
        v: float | int = self._cols[name][i].item()
        return v
