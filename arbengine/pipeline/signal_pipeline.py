"""The signal pipeline: features, scoring and paper trading in one event-time order.

This is the synchronous core the live engine and the backtester both drive,
which is what makes their results identical. Per symbol, events are applied
in this order:

1. trades with ``T < t`` go to the feature state and to the paper book (exits);
2. tick ``t`` is evaluated (``open_count`` then sees positions open at ``t``:
   those whose closing trade has ``T ≥ t``, not yet applied), and a fired
   signal with paper trading on opens a paper position at the tick's price;
3. trades with ``T ≥ t`` follow, walking the new position too.

A tick is evaluated once a trade with ``T ≥ t`` arrives (live and replay
alike) or, live, when the wall clock passes ``t + grace`` (``on_wall_clock``);
the backtester closes a run with ``finish(to_ms)``. Indicator values may be
fed before the tick they belong after: the feature state uses only values
known before ``t``.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field

import numpy as np

from arbengine.domain.market import (
    Indicator,
    Liquidation,
    MarketEvent,
    MarkPrice,
    RateSnapshot,
    TapeGap,
    TradeBatch,
)
from arbengine.signals import SignalCore, StrategySet, due_ticks, tick_at_or_after
from arbengine.signals.scoring import Evaluation
from arbengine.signals.strategy import Strategy
from arbengine.trading.paper import (
    ExitRule,
    FundingSettlement,
    PaperBook,
    PaperPosition,
    open_position,
)


def exit_rule(strategy: Strategy) -> ExitRule:
    x = strategy.exit
    return ExitRule(
        sl_atr=x.sl_atr,
        tp1_atr=x.tp1_atr,
        tp1_fraction=x.tp1_fraction,
        tp2_atr=x.tp2_atr,
        breakeven_after_tp1=x.breakeven_after_tp1,
        max_hold_ms=x.max_hold_ms,
        fee_bps=strategy.costs.fee_bps,
        slippage_bps=strategy.costs.slippage_bps,
        risk_usd=strategy.paper.risk_usd,
    )


@dataclass
class PipelineOutput:
    """What happened since the last ``drain``: to store and to publish."""

    evaluations: list[Evaluation] = field(default_factory=list)
    positions: dict[int, PaperPosition] = field(default_factory=dict)
    """Opened or changed paper positions (by identity), latest state."""
    late_trades: int = 0

    def __bool__(self) -> bool:
        return bool(self.evaluations or self.positions or self.late_trades)


class SignalPipeline:
    def __init__(self, strategies: StrategySet, *, grace_ms: int = 2_000) -> None:
        self.core = SignalCore(strategies)
        self.book = PaperBook()
        self.grace_ms = grace_ms
        self._next_tick: dict[str, int] = {}
        self._last_trade_ms: dict[str, int] = {}
        self._out = PipelineOutput()

    # -- set-up -------------------------------------------------------------------

    @property
    def tick_ms(self) -> int | None:
        return self.core.tick_ms

    def start_ticks_at(self, t_ms: int, symbols: Iterable[str] | None = None) -> None:
        """Evaluate ticks from the first grid point at or after ``t_ms`` (per symbol)."""
        tick = self.tick_ms
        if tick is None:
            return
        first = tick_at_or_after(t_ms, tick)
        for symbol in self.core.symbols if symbols is None else symbols:
            self._next_tick[symbol] = first

    def replace_strategies(self, strategies: StrategySet) -> frozenset[str]:
        """A validated new set, applied from the next tick; returns symbols needing history."""
        added = self.core.replace_strategies(strategies)
        for symbol in list(self._next_tick):
            if symbol not in self.core.symbols:
                del self._next_tick[symbol]
        tick = self.tick_ms
        if tick is not None:
            for symbol, t in list(self._next_tick.items()):
                self._next_tick[symbol] = tick_at_or_after(t, tick)
        return added

    # -- events -------------------------------------------------------------------

    def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, TradeBatch):
            self.on_trades(event)
        elif isinstance(event, RateSnapshot):
            self.core.add_mark_price(event)
        elif isinstance(event, Indicator):
            self.on_indicator(event)
        elif isinstance(event, Liquidation):
            self.core.add_liquidation(event)
        elif isinstance(event, MarkPrice | TapeGap):
            pass  # live-only mark prices are not stored, so the engine does not use them

    def on_rate_columns(
        self,
        symbol: str,
        known_ms: list[int],
        funding_rate: list[float],
        index_price: list[float],
    ) -> None:
        """Many premiumIndex readings of one symbol at once (replays)."""
        self.core.add_rate_columns(symbol, known_ms, funding_rate, index_price)

    def on_indicator(self, indicator: Indicator) -> None:
        self.core.add_indicator(indicator)
        if indicator.kind == "funding_rate" and indicator.value is not None:
            mark = indicator.data.get("mark_price")
            for position in self.book.on_funding(
                FundingSettlement(
                    indicator.symbol,
                    indicator.ts,
                    indicator.value,
                    float(mark) if mark is not None else None,
                )
            ):
                self._out.positions[id(position)] = position

    def on_trades(self, trades: TradeBatch) -> None:
        """Trades of one symbol in (T, agg_id) order.

        The feature state takes the whole batch at once (it only ever reads trades before
        the tick it evaluates, so trades past a tick do not disturb it). The paper book is
        walked up to each tick before that tick is evaluated, so ``open_count`` sees the
        positions open at the tick, and new positions walk only the trades after it.
        """
        symbol = trades.symbol
        if symbol not in self.core.symbols or not len(trades):
            return
        result = self.core.add_trades(trades)
        if result is not None:
            self._out.late_trades += result.late
        newest = int(trades.ts.max())
        if newest > self._last_trade_ms.get(symbol, newest - 1):
            self._last_trade_ms[symbol] = newest
        self.book.note_trades(symbol, trades.ts, trades.price)
        times = trades.ts
        n = len(trades)
        walked = 0
        while True:
            t = self._next_tick.get(symbol)
            if t is None:
                break
            i = int(np.searchsorted(times, t, side="left"))
            if i >= n:
                break  # no trade at or past the next tick yet: it is not due
            self._walk_paper(symbol, trades, walked, i)
            walked = i
            self._evaluate_due(symbol, latest_trade_ms=int(times[i]), wall_ms=None)
        self._walk_paper(symbol, trades, walked, n)

    def _walk_paper(self, symbol: str, trades: TradeBatch, lo: int, hi: int) -> None:
        if hi <= lo or not self.book.has_open(symbol):
            return
        ids, ts, px = trades.agg_id[lo:hi], trades.ts[lo:hi], trades.price[lo:hi]
        for position in self.book.on_trades(symbol, ids, ts, px, note=False):
            self._out.positions[id(position)] = position

    def next_tick(self, symbol: str) -> int | None:
        """The next tick to evaluate for ``symbol`` (None: it has no ticks)."""
        return self._next_tick.get(symbol)

    def evaluated_after(self, symbol: str, time_ms: int) -> bool:
        """Whether a tick later than ``time_ms`` has been evaluated (or passed) for ``symbol``:
        a value visible from ``time_ms`` arriving now comes late for that tick."""
        t, tick = self._next_tick.get(symbol), self.tick_ms
        return t is not None and tick is not None and t - tick > time_ms

    def on_wall_clock(self, wall_ms: int, symbols: Container[str] | None = None) -> None:
        """Live only: evaluate ticks of quiet symbols once ``t + grace`` has passed (of the
        ``symbols`` given: the live engine leaves out those still waiting for history)."""
        for symbol in sorted(self._next_tick):
            if symbols is None or symbol in symbols:
                self._evaluate_due(symbol, latest_trade_ms=None, wall_ms=wall_ms)

    def traded_since(self, from_ms: int) -> list[str]:
        """The symbols with a trade at or after ``from_ms`` fed so far, sorted."""
        return sorted(s for s, newest in self._last_trade_ms.items() if newest >= from_ms)

    def finish(self, to_ms: int, symbols: Iterable[str] | None = None) -> None:
        """End of a replay: evaluate every tick before ``to_ms`` not yet evaluated (of the
        ``symbols`` given, default all)."""
        chosen = set(self._next_tick if symbols is None else symbols) & set(self._next_tick)
        for symbol in sorted(chosen):
            self._evaluate_due(symbol, latest_trade_ms=None, wall_ms=to_ms - 1 + self.grace_ms)

    def _evaluate_due(self, symbol: str, latest_trade_ms: int | None, wall_ms: int | None) -> None:
        tick = self.tick_ms
        t = self._next_tick.get(symbol)
        if tick is None or t is None:
            return
        ticks = due_ticks(
            t,
            tick,
            latest_trade_ms=latest_trade_ms,
            wall_ms=wall_ms if wall_ms is not None else -(10**15),
            grace_ms=self.grace_ms,
        )
        for tick_ms in ticks:
            self._evaluate(symbol, tick_ms)
        if ticks:
            self._next_tick[symbol] = ticks[-1] + tick

    def _evaluate(self, symbol: str, tick_ms: int) -> None:
        book = self.book
        evaluations = self.core.evaluate(
            tick_ms,
            symbols=[symbol],
            open_positions=lambda strategy, sym, _t: book.open_count(strategy, sym),
        )
        for evaluation in evaluations:
            self._out.evaluations.append(evaluation)
            strategy = evaluation.definition
            if not (evaluation.fired and strategy.paper.enabled):
                continue
            price, atr = evaluation.price, evaluation.atr
            if price is None or atr is None or atr <= 0:
                continue
            position = open_position(
                strategy=strategy.name,
                strategy_hash=strategy.hash,
                symbol=symbol,
                direction=evaluation.direction,
                tick=tick_ms,
                price=price,
                atr=atr,
                rule=exit_rule(strategy),
            )
            book.add(position)
            self._out.positions[id(position)] = position

    # -- outputs ------------------------------------------------------------------

    def drain(self) -> PipelineOutput:
        out, self._out = self._out, PipelineOutput()
        return out
