"""The columnar tape: release watermark, REST selections, trimming."""

from __future__ import annotations

import numpy as np

from arbengine.sim.tape import Tape


def _tape(n: int = 10) -> Tape:
    tape = Tape(2, 3, capacity=2)
    a = np.arange(100, 100 + n, dtype=np.int64)
    t = 1000 + 10 * np.arange(n, dtype=np.int64)
    tape.append(
        a,
        t,
        6_000_000 + a,
        a % 7 + 1,
        500 + 2 * (a - 100),
        501 + 2 * (a - 100),
        (a % 2).astype(np.uint8),
    )
    return tape


def test_rows_are_invisible_until_released() -> None:
    tape = _tape()
    assert tape.n == 10
    assert tape.released == 0
    assert tape.select(limit=5) == (0, 0)
    assert tape.release_until(1035) == (0, 4)
    assert tape.last_id == 103
    assert tape.release_until(1035) == (4, 4)
    assert tape.release_until(10_000) == (4, 10)


def test_select_by_id_time_and_latest() -> None:
    tape = _tape()
    tape.release_until(10_000)
    assert tape.select(from_id=103, limit=3) == (3, 6)
    assert tape.select(from_id=50, limit=2) == (0, 2)
    assert tape.select(from_id=500, limit=2) == (10, 10)
    assert tape.select(start_ms=1020, end_ms=1050, limit=100) == (2, 6)
    assert tape.select(start_ms=1020, end_ms=1050, limit=2) == (2, 4)
    assert tape.select(limit=3) == (7, 10)


def test_rest_rows_have_binance_shape_and_strings() -> None:
    tape = _tape()
    tape.release_until(10_000)
    row = tape.rows(0, 1)[0]
    assert row == {
        "a": 100,
        "p": "60001.00",
        "q": "0.003",
        "f": 500,
        "l": 501,
        "T": 1000,
        "m": False,
    }


def test_trim_keeps_the_newest_rows_and_ids() -> None:
    tape = _tape()
    tape.release_until(10_000)
    tape.trim(4)
    assert tape.released == 4
    assert tape.first_id == 106
    assert tape.last_id == 109
    assert tape.trimmed == 6
