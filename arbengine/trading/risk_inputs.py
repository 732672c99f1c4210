"""What the risk guard knows of the market data: when each input last arrived per symbol,
and the latest mark price (a sync core, fed by a tap on the collectors' channel).

The tap sits where the collectors hand their events over (``MarketTap`` wraps the sink
they put into), so it sees exactly what the engine and the store get, at the time they
get it: a silent stream, a stalled poller or a symbol the exchange stopped shows as an
input growing old, whatever the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from arbengine.domain.market import Indicator, MarketEvent, MarkPrice, RateSnapshot, TradeBatch
from arbengine.runtime.channels import Sink
from arbengine.trading.risk_rules import PREMIUM_INDEX_INPUT, TAPE_INPUT


class MarketFreshness:
    """(symbol, input) → when it last arrived (``now_ms()``, the guard's clock)."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self._at: dict[tuple[str, str], int] = {}
        self.marks: dict[str, float] = {}
        """Symbol → the latest mark price (premiumIndex or the markPrice stream)."""

    @property
    def inputs_at(self) -> Mapping[tuple[str, str], int]:
        return self._at

    def note(self, event: MarketEvent) -> None:
        now = self._now_ms()
        if isinstance(event, TradeBatch):
            if len(event):
                self._at[(event.symbol, TAPE_INPUT)] = now
        elif isinstance(event, RateSnapshot):
            self._at[(event.symbol, PREMIUM_INDEX_INPUT)] = now
            self.marks[event.symbol] = event.mark_price
        elif isinstance(event, MarkPrice):
            self.marks[event.symbol] = event.mark_price
        elif isinstance(event, Indicator) and event.value is not None:
            self._at[(event.symbol, event.kind)] = now


class MarketTap:
    """A sink that notes each event in ``freshness`` and passes it on to ``inner``."""

    def __init__(self, inner: Sink[MarketEvent], freshness: MarketFreshness) -> None:
        self._inner = inner
        self._freshness = freshness

    async def put(self, item: MarketEvent) -> None:
        self._freshness.note(item)
        await self._inner.put(item)
