"""Live trades wait until everything before them has had time to arrive.

A backtest knows every event in advance; live, events of one moment arrive
over several: Binance pushes a liquidation up to about a second after its
order time (the forceOrder stream sends at most the latest one per symbol per
1000 ms), and trades, liquidations and polled values come on different
connections. A tick is evaluated when a trade past it is applied, so a trade
applied at once could have a tick evaluated before a liquidation that belongs
to it arrived, and live would differ from the backtest.

So the engine applies every non-trade event as it arrives and holds each
trade until the exchange clock has passed its time by ``settle``: a tick
``t`` is then evaluated no earlier than ``t + settle``, when every event
stamped before ``t`` that arrives within ``settle`` of its time has been
applied, whatever the interleaving of arrivals. What still arrives later is
counted as late, like a late trade.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from arbengine.domain.market import TradeBatch


class TradeHold:
    """Trade batches per symbol, released in arrival order once ``settle`` old."""

    def __init__(self, settle_ms: int) -> None:
        self.settle_ms = settle_ms
        self._held: dict[str, deque[TradeBatch]] = {}
        self.count = 0
        """Trades held now."""

    def add(self, batch: TradeBatch) -> None:
        if len(batch):
            self._held.setdefault(batch.symbol, deque()).append(batch)
            self.count += len(batch)

    def release(self, now_ms: int | None) -> list[TradeBatch]:
        """Every held trade with ``T + settle ≤ now_ms`` (all of them for ``None``).

        Per symbol the batches come out in arrival order, and a batch is cut where its
        trades become too young (a batch is ordered by id, so by time).
        """
        out: list[TradeBatch] = []
        cutoff = None if now_ms is None else now_ms - self.settle_ms
        for symbol in list(self._held):
            queue = self._held[symbol]
            while queue:
                batch = queue[0]
                if cutoff is None or batch.ts[-1] <= cutoff:
                    out.append(queue.popleft())
                    continue
                n = bisect_right(batch.ts, cutoff)
                if n:
                    out.append(batch.slice(0, n))
                    queue[0] = batch.slice(n, len(batch))
                break
            if not queue:
                del self._held[symbol]
        self.count -= sum(len(b) for b in out)
        return out
