"""How much history the sim remembers, and the compaction that forgets the rest.

A sim left running (``arbengine sim``, ``arbengine run --sim``, a soak) would
otherwise grow for ever: every trade, mark and liquidation it ever published
stayed in memory. Binance itself serves a bounded past (aggTrades ≤ 1 year,
``/futures/data`` ≈ 30 days), and so does the sim, with windows sized for what
its clients need:

- trades: ``trades_ms`` of simulated time (26 h by default: a daemon that was
  down for its whole ``max_backfill`` of 24 h still catches up over REST, with
  2 h to spare), and never more than ``max_trades`` per symbol, a memory
  ceiling for very high trade rates. REST answers about older ids or times as
  Binance does about data past its history: ``fromId`` before the window starts
  at the oldest trade kept (the caller sees the ids in between are gone), a
  time range wholly before it is empty;
- 5-minute indicator rows and funding: ``series_ms`` (31 days: the 30 days the
  ``/futures/data`` endpoints serve, plus one so the oldest 1-day taker volume
  is whole);
- marks (one a second, 64 bytes): as long as trades;
- liquidations: none once published.

Forgetting is logical (a start index moves, O(1)); the memory is reclaimed by
moving the live rows to the front of their arrays once the forgotten prefix
is at least a quarter of them, so each forgotten row costs at most a few row
copies, amortised, and no step copies the whole history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

TRADE_HISTORY_MS = 26 * 3_600_000
MAX_TRADES = 5_000_000
SERIES_MS = 31 * 86_400_000
MIN_COMPACT_ROWS = 256
"""Forgotten rows worth a compaction even when the live rows are few."""


@dataclass(frozen=True, slots=True)
class Retention:
    trades_ms: int = TRADE_HISTORY_MS
    """Simulated time of trades kept per symbol (REST ``aggTrades`` history)."""
    max_trades: int = MAX_TRADES
    """Trades kept per symbol at most, whatever ``trades_ms`` allows (≈ 49 bytes each)."""
    series_ms: int = SERIES_MS
    """Simulated time of 5-minute indicator rows and funding settlements kept."""

    def __post_init__(self) -> None:
        if self.trades_ms <= 0 or self.max_trades <= 0 or self.series_ms <= 0:
            raise ValueError("retention windows and the trade ceiling must be positive")


def should_compact(dead: int, live: int) -> bool:
    """Whether a forgotten prefix of ``dead`` rows is worth moving ``live`` rows for."""
    return dead >= max(live // 4, MIN_COMPACT_ROWS)


def shift_down(arrays: Iterable[np.ndarray], start: int, end: int) -> None:
    """Move rows ``[start, end)`` of each array to ``[0, end - start)``.

    Copied in pieces no longer than the shift, so no piece overlaps its source
    and numpy never allocates a temporary copy of the live rows.
    """
    live = end - start
    if start <= 0 or live <= 0:
        return
    for arr in arrays:
        for lo in range(0, live, start):
            hi = min(live, lo + start)
            arr[lo:hi] = arr[start + lo : start + hi]
