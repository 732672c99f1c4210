"""The trade tape of one symbol: contiguous, ordered, every id exactly once.

Synchronous core fed by both the websocket stream and REST repairs. Binance
aggregate trade ids are contiguous per symbol, so the tape knows exactly
what it has: everything up to ``last_id``. A trade past ``last_id + 1`` is
held until the ids between arrive (a reordered frame, or a REST repair);
a trade at or below ``last_id`` is a duplicate and dropped. What leaves the
tape (``take``) is therefore always the next contiguous run, which is what
makes "resume from the last stored id" exact after any restart.

Ids going backwards are not duplicates. Trade times never decrease along the
ids, so a trade at or below ``last_id`` but *later* than the last emitted
trade cannot be one we already have: the exchange reset its ids, or the
stored tape came from another venue (testnet, a data directory pointed at the
wrong place). Such trades are counted apart (``backwards``) and the first of
an episode is kept in ``backwards_seen`` for the operator; they are dropped
all the same, so the stored tape is never overwritten or mixed. The episode
ends when the next contiguous trade arrives.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from arbengine.domain.market import TradeBatch


class _Columns:
    """Trades as parallel lists, one per ``TradeBatch`` column: appended one at a time
    (the stream decodes one trade per frame), turned into a batch at once."""

    __slots__ = ("agg_id", "first", "last", "maker", "price", "qty", "ts")

    def __init__(self) -> None:
        self.agg_id: list[int] = []
        self.ts: list[int] = []
        self.price: list[float] = []
        self.qty: list[float] = []
        self.first: list[int] = []
        self.last: list[int] = []
        self.maker: list[bool] = []

    def __len__(self) -> int:
        return len(self.agg_id)

    def append(
        self, agg_id: int, ts: int, price: float, qty: float, first: int, last: int, maker: bool
    ) -> None:
        self.agg_id.append(agg_id)
        self.ts.append(ts)
        self.price.append(price)
        self.qty.append(qty)
        self.first.append(first)
        self.last.append(last)
        self.maker.append(maker)

    def copy_row(self, row: int, into: _Columns) -> None:
        into.append(
            self.agg_id[row],
            self.ts[row],
            self.price[row],
            self.qty[row],
            self.first[row],
            self.last[row],
            self.maker[row],
        )

    def batch(self, symbol: str, received_ms: int) -> TradeBatch:
        return TradeBatch.of(
            symbol,
            self.agg_id,
            self.ts,
            self.price,
            self.qty,
            self.first,
            self.last,
            self.maker,
            received_ms=received_ms,
        )


@dataclass
class TapeCounters:
    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    backwards: int = 0


@dataclass(frozen=True, slots=True)
class Backwards:
    """The first trade of an episode of ids going backwards, and where the tape stood."""

    agg_id: int
    ts: int
    last_id: int
    last_ts: int


@dataclass
class TapeSequencer:
    symbol: str
    last_id: int | None = None
    """Highest id emitted so far (None until the first trade fixes the start)."""
    last_ts: int | None = None
    """Time of the trade ``last_id`` (None while unknown)."""
    counters: TapeCounters = field(default_factory=TapeCounters)
    backwards_seen: Backwards | None = None
    """Set while ids go backwards (see the module docstring); None otherwise."""

    def __post_init__(self) -> None:
        self._emitted = _Columns()
        """Trades that left the tape since the last ``take``."""
        self._held = _Columns()
        """Trades waiting for the ids before them, in arrival order (emptied once none are)."""
        self._held_row: dict[int, int] = {}  # agg_id → row of _held
        self._held_ids: list[int] = []  # min-heap over the keys of _held_row

    def add(
        self, agg_id: int, ts: int, price: float, qty: float, first: int, last: int, maker: bool
    ) -> None:
        if self.last_id is None:
            self.last_id = agg_id - 1
        if agg_id <= self.last_id or agg_id in self._held_row:
            if agg_id <= self.last_id and self.last_ts is not None and ts > self.last_ts:
                self.counters.backwards += 1
                if self.backwards_seen is None:
                    self.backwards_seen = Backwards(agg_id, ts, self.last_id, self.last_ts)
                return
            self.counters.duplicates += 1
            return
        if agg_id != self.last_id + 1:
            self._held_row[agg_id] = len(self._held)
            self._held.append(agg_id, ts, price, qty, first, last, maker)
            heapq.heappush(self._held_ids, agg_id)
            self.counters.held += 1
            return
        self._emit(agg_id, ts, price, qty, first, last, maker)
        self._release_held()
        if self.backwards_seen is not None:
            self.backwards_seen = None

    def _emit(
        self, agg_id: int, ts: int, price: float, qty: float, first: int, last: int, maker: bool
    ) -> None:
        self._emitted.append(agg_id, ts, price, qty, first, last, maker)
        self.last_id = agg_id
        self.last_ts = ts
        self.counters.accepted += 1

    def _release_held(self) -> None:
        held, rows, heap = self._held, self._held_row, self._held_ids
        while heap and self.last_id is not None and heap[0] <= self.last_id + 1:
            agg_id = heapq.heappop(heap)
            row = rows.pop(agg_id)
            if agg_id == self.last_id + 1:
                held.copy_row(row, self._emitted)
                self.last_id = agg_id
                self.last_ts = held.ts[row]
                self.counters.accepted += 1
        if not rows and len(held):
            self._held = _Columns()

    def gap(self) -> tuple[int, int] | None:
        """The missing id range blocking held trades, if any (inclusive bounds)."""
        if not self._held_ids or self.last_id is None:
            return None
        return self.last_id + 1, self._held_ids[0] - 1

    @property
    def held_count(self) -> int:
        return len(self._held_row)

    def complete_until(self) -> int | None:
        """While trades are held behind a gap, the time up to which every trade has left the
        tape (the missing ones are no older than the last one emitted, times never decreasing
        along the ids; 0 when even that is unknown). None when nothing is held."""
        if not self._held_ids:
            return None
        return self.last_ts if self.last_ts is not None else 0

    def skip_to(self, next_id: int) -> tuple[int, int] | None:
        """Declare ids up to ``next_id − 1`` unrecoverable; return the hole (or None)."""
        if self.last_id is None:
            self.last_id = next_id - 1
            return None
        if next_id <= self.last_id + 1:
            return None
        hole = (self.last_id + 1, next_id - 1)
        self.last_id = next_id - 1
        # Held trades inside the hole are impossible (they would close it); drop any below.
        while self._held_ids and self._held_ids[0] <= self.last_id:
            self._held_row.pop(heapq.heappop(self._held_ids), None)
        self._release_held()
        return hole

    def pending(self) -> int:
        return len(self._emitted)

    def take(self, received_ms: int = 0) -> TradeBatch | None:
        """Everything emitted since the last take, as one batch (None when empty)."""
        if not len(self._emitted):
            return None
        batch = self._emitted.batch(self.symbol, received_ms)
        self._emitted = _Columns()
        return batch
