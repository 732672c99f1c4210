"""How long moving the stop to breakeven took, and how long the position may have been
without a stop while it moved.

After TP1 the trade's machine places the breakeven stop and cancels the first stop only
once the new one is acknowledged (``live_trade``): the two stops overlap, so the position
is never without one and ``unprotected_ms`` is 0. Were the order ever different (the
first stop's cancel on its way before the new stop was acknowledged), the position could
have been bare from the moment that cancel may have reached the exchange until the new
stop was known to stand: that bound, the issue's "one round trip", is what is reported.

The executor tells the timer what it is about to do and what it heard, with the time it
read (``time.perf_counter`` seconds); the times therefore include the executor's own
record writes around each exchange call, as the replace really takes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from arbengine.trading.live_trade import (
    Acked,
    Cancel,
    Ended,
    Filled,
    LiveTrade,
    Place,
    Rejected,
    TradeAction,
    TradeEvent,
    TradeState,
)

UNKNOWN_ORDER = -2011
"""A cancel's answer when the order is not open (any more): it is gone all the same."""


@dataclass(frozen=True, slots=True)
class StopReplaced:
    """One finished move of the stop to breakeven (milliseconds)."""

    replace_ms: float
    """From the breakeven stop's placement started to the first stop known gone."""
    unprotected_ms: float
    """How long the position may have had no stop: 0 when the new stop was acknowledged
    before the first one's cancel was sent."""
    tp1_to_stop_ms: float | None
    """From the TP1 fill heard to the breakeven stop acknowledged (None when the fill
    was heard before this timer, e.g. by an executor started since)."""

    def detail(self) -> dict[str, object]:
        tp1 = self.tp1_to_stop_ms
        return {
            "replace_ms": round(self.replace_ms, 3),
            "unprotected_ms": round(self.unprotected_ms, 3),
            "tp1_to_stop_ms": None if tp1 is None else round(tp1, 3),
        }


@dataclass(slots=True)
class StopReplaceTimer:
    """The times of one trade's move to breakeven, kept until it is reported once."""

    tp1_filled_at: float | None = None
    placed_at: float | None = None
    acked_at: float | None = None
    cancel_sent_at: float | None = None
    cancelled_at: float | None = None
    reported: bool = False

    def starting(self, trade: LiveTrade, action: TradeAction, now: float) -> None:
        """The executor is about to perform ``action``."""
        if isinstance(action, Place):
            if action.order.role == "breakeven_sl" and self.placed_at is None:
                self.placed_at = now
        elif isinstance(action, Cancel):
            order = trade.orders.get(action.client_id)
            # The first stop's cancel as part of the move (not the clean-up of a position
            # that is gone: that leaves the trade CLOSING).
            if (
                order is not None
                and order.role == "sl"
                and trade.state == TradeState.BREAKEVEN
                and self.cancel_sent_at is None
            ):
                self.cancel_sent_at = now

    def heard(self, trade: LiveTrade, events: Iterable[TradeEvent], now: float) -> None:
        """The exchange (or the stream) said ``events``, read at ``now``."""
        for event in events:
            client_id = getattr(event, "client_id", None)
            order = trade.orders.get(client_id) if isinstance(client_id, str) else None
            if order is None:
                continue
            gone = isinstance(event, Ended) or (
                isinstance(event, Rejected) and event.code == UNKNOWN_ORDER
            )
            if isinstance(event, Filled) and event.complete and order.role == "tp1":
                self.tp1_filled_at = self.tp1_filled_at or now
            elif isinstance(event, Acked) and order.role == "breakeven_sl":
                self.acked_at = self.acked_at or now
            elif gone and order.role == "sl" and self.cancel_sent_at is not None:
                self.cancelled_at = self.cancelled_at or now

    def finished(self) -> StopReplaced | None:
        """The move's figures once it is complete, once; None before (or after)."""
        if self.reported:
            return None
        placed, acked = self.placed_at, self.acked_at
        cancel_sent, cancelled = self.cancel_sent_at, self.cancelled_at
        if placed is None or acked is None or cancel_sent is None or cancelled is None:
            return None
        self.reported = True
        started = min(placed, cancel_sent)
        tp1 = self.tp1_filled_at
        return StopReplaced(
            replace_ms=(max(cancelled, acked) - started) * 1000,
            unprotected_ms=max(0.0, acked - cancel_sent) * 1000,
            tp1_to_stop_ms=None if tp1 is None else (acked - tp1) * 1000,
        )
