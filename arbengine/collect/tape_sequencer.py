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

Row = tuple[int, float, float, int, int, bool]  # ts, price, qty, first, last, maker


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
        self._held: dict[int, Row] = {}
        self._held_ids: list[int] = []  # min-heap over the keys of _held
        self._ids: list[int] = []
        self._ts: list[int] = []
        self._price: list[float] = []
        self._qty: list[float] = []
        self._first: list[int] = []
        self._last: list[int] = []
        self._maker: list[bool] = []

    def add(
        self, agg_id: int, ts: int, price: float, qty: float, first: int, last: int, maker: bool
    ) -> None:
        if self.last_id is None:
            self.last_id = agg_id - 1
        if agg_id <= self.last_id or agg_id in self._held:
            if agg_id <= self.last_id and self.last_ts is not None and ts > self.last_ts:
                self.counters.backwards += 1
                if self.backwards_seen is None:
                    self.backwards_seen = Backwards(agg_id, ts, self.last_id, self.last_ts)
                return
            self.counters.duplicates += 1
            return
        if agg_id != self.last_id + 1:
            self._held[agg_id] = (ts, price, qty, first, last, maker)
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
        self._ids.append(agg_id)
        self._ts.append(ts)
        self._price.append(price)
        self._qty.append(qty)
        self._first.append(first)
        self._last.append(last)
        self._maker.append(maker)
        self.last_id = agg_id
        self.last_ts = ts
        self.counters.accepted += 1

    def _release_held(self) -> None:
        held = self._held
        heap = self._held_ids
        while heap and self.last_id is not None and heap[0] <= self.last_id + 1:
            agg_id = heapq.heappop(heap)
            row = held.pop(agg_id)
            if agg_id == self.last_id + 1:
                self._emit(agg_id, *row)

    def gap(self) -> tuple[int, int] | None:
        """The missing id range blocking held trades, if any (inclusive bounds)."""
        if not self._held_ids or self.last_id is None:
            return None
        return self.last_id + 1, self._held_ids[0] - 1

    @property
    def held_count(self) -> int:
        return len(self._held)

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
            self._held.pop(heapq.heappop(self._held_ids), None)
        self._release_held()
        return hole

    def pending(self) -> int:
        return len(self._ids)

    def take(self, received_ms: int = 0) -> TradeBatch | None:
        """Everything emitted since the last take, as one batch (None when empty)."""
        if not self._ids:
            return None
        batch = TradeBatch(
            self.symbol,
            self._ids,
            self._ts,
            self._price,
            self._qty,
            self._first,
            self._last,
            self._maker,
            received_ms,
        )
        self._ids, self._ts, self._price, self._qty = [], [], [], []
        self._first, self._last, self._maker = [], [], []
        return batch
