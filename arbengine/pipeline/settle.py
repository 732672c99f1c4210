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

A symbol whose history is not in yet (``readiness.py``) keeps its trades
held, however old, until it is; so do the warm start's catch-up trades
(stored trades from the first tick to evaluate on), which go in first.
Trades are held as the batches they came in (numpy columns), a few dozen bytes each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container

import numpy as np

from arbengine.domain.market import TradeBatch


class TradeHold:
    """Trades per symbol, released in arrival order once ``settle`` old (and the symbol may go)."""

    def __init__(self, settle_ms: int) -> None:
        self.settle_ms = settle_ms
        self._held: dict[str, deque[TradeBatch]] = {}
        self.count = 0
        """Trades held now."""

    def add(self, trades: TradeBatch) -> None:
        if len(trades):
            self._held.setdefault(trades.symbol, deque()).append(trades)
            self.count += len(trades)

    def held(self, symbol: str) -> int:
        return sum(len(t) for t in self._held.get(symbol, ()))

    def keep_only(self, symbols: Container[str]) -> None:
        """Forget the trades of every symbol not in ``symbols`` (no longer evaluated)."""
        for symbol in [s for s in self._held if s not in symbols]:
            self.count -= sum(len(t) for t in self._held.pop(symbol))

    def release(
        self, now_ms: int | None, symbols: Container[str] | None = None
    ) -> list[TradeBatch]:
        """Every held trade with ``T + settle ≤ now_ms`` (all of them for ``None``) of the
        ``symbols`` given (all for ``None``).

        Per symbol the batches come out in arrival order, and a batch is cut where its
        trades become too young (a batch is ordered by id, so by time).
        """
        out: list[TradeBatch] = []
        cutoff = None if now_ms is None else now_ms - self.settle_ms
        for symbol in list(self._held):
            if symbols is not None and symbol not in symbols:
                continue
            queue = self._held[symbol]
            while queue:
                trades = queue[0]
                if cutoff is None or trades.ts[-1] <= cutoff:
                    out.append(queue.popleft())
                    continue
                n = int(np.searchsorted(trades.ts, cutoff, side="right"))
                if n:
                    out.append(trades.take(slice(0, n)))
                    queue[0] = trades.take(slice(n, len(trades)))
                break
            if not queue:
                del self._held[symbol]
        self.count -= sum(len(t) for t in out)
        return out
