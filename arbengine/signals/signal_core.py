"""The synchronous signal engine: per-symbol feature state for every strategy, and ticks.

The async service (and the backtester) only move events in and
evaluations out; every decision is made here, with no clock and no I/O, so
the same stored trades give the same signals live and in a backtest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial

from arbengine.domain.market import (
    Indicator,
    Liquidation,
    MarketEvent,
    MarkPrice,
    RateSnapshot,
    TapeGap,
    TradeBatch,
)
from arbengine.signals.features import FeatureSpec, SymbolFeatures
from arbengine.signals.scoring import Evaluation, evaluate_strategy
from arbengine.signals.strategy import Strategy, StrategySet
from arbengine.signals.trade_window import AddResult

DEFAULT_GRACE_MS = 2_000

OpenPositions = Callable[[str, str, int], int]
"""(strategy name, symbol, tick ms) → open paper positions of that strategy and symbol."""


def tick_at_or_after(ms: int, tick_ms: int) -> int:
    """The first tick of the epoch-aligned grid at or after ``ms``."""
    return -(-ms // tick_ms) * tick_ms


def due_ticks(
    next_tick_ms: int,
    tick_ms: int,
    *,
    latest_trade_ms: int | None,
    wall_ms: int,
    grace_ms: int = DEFAULT_GRACE_MS,
) -> list[int]:
    """The ticks from ``next_tick_ms`` on that are due now, oldest first.

    Tick t is due once a trade with T ≥ t has arrived (everything before t
    is then in, trades arrive in order per symbol) or once the wall clock
    reached t + grace, whichever comes first. Both conditions hold for all
    earlier ticks too, so the answer is always a run of consecutive ticks.
    """
    if tick_ms <= 0 or next_tick_ms % tick_ms:
        raise ValueError("next_tick_ms must lie on the grid of a positive tick")
    last_due = ((wall_ms - grace_ms) // tick_ms) * tick_ms
    if latest_trade_ms is not None:
        last_due = max(last_due, (latest_trade_ms // tick_ms) * tick_ms)
    if last_due < next_tick_ms:
        return []
    return list(range(next_tick_ms, last_due + 1, tick_ms))


class SignalCore:
    """Feature state for the symbols of the enabled strategies; evaluates ticks.

    Strategies may differ in tick, windows, staleness and percentile
    minimum: the per-symbol state keeps what every admissible strategy can
    need (24 h of trades, 26 h of candles), and each strategy reads it
    through its own :class:`FeatureSpec`. A strategy is evaluated at t when
    t is on its tick grid. The cooldown state (last fired tick per strategy
    name and symbol) survives strategy reloads.
    """

    def __init__(self, strategies: StrategySet) -> None:
        self._set = StrategySet(())
        self._states: dict[str, SymbolFeatures] = {}
        self._by_symbol: dict[str, tuple[Strategy, ...]] = {}
        self._plans: dict[str, _SymbolPlan] = {}
        self._order: tuple[str, ...] = ()
        """Every symbol followed, sorted: the order of a tick's evaluations."""
        self._last_fired: dict[tuple[str, str], int] = {}
        self.replace_strategies(strategies)

    # ---- strategies ----------------------------------------------------------------------

    @property
    def strategies(self) -> StrategySet:
        return self._set

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._states)

    @property
    def tick_ms(self) -> int | None:
        """The grid every enabled strategy's ticks lie on (gcd of their ticks)."""
        ticks = [s.tick_ms for s in self._set.enabled]
        return math.gcd(*ticks) if ticks else None

    def replace_strategies(self, strategies: StrategySet) -> frozenset[str]:
        """Switch to a new validated set from the next evaluated tick on.

        Returns the symbols that are new and have no history yet: the caller
        warm-starts them (loads their last 26 h) before relying on them.
        Symbols no enabled strategy uses any more are dropped.
        """
        wanted = strategies.symbols
        added = frozenset(wanted - set(self._states))
        for symbol in set(self._states) - wanted:
            del self._states[symbol]
        for symbol in sorted(added):
            self._states[symbol] = SymbolFeatures(symbol)
        self._by_symbol = {
            symbol: tuple(
                sorted(
                    (s for s in strategies.enabled if symbol in s.symbols),
                    key=lambda s: s.name,
                )
            )
            for symbol in wanted
        }
        specs = {s.name: s.feature_spec for s in strategies}
        self._plans = {
            symbol: _SymbolPlan.of(self._states[symbol], symbol, self._by_symbol[symbol], specs)
            for symbol in self._states
        }
        self._order = tuple(sorted(self._states))
        for symbol, state in self._states.items():
            state.forget_windows(s.windows.day_ms for s in self._by_symbol[symbol])
        self._set = strategies
        return added

    # ---- cooldown state ------------------------------------------------------------------

    def last_fired(self, strategy: str, symbol: str) -> int | None:
        return self._last_fired.get((strategy, symbol))

    def restore_last_fired(self, strategy: str, symbol: str, tick_ms: int) -> None:
        """Seed the cooldown from the store at start-up (the last stored signal)."""
        key = (strategy, symbol)
        self._last_fired[key] = max(tick_ms, self._last_fired.get(key, tick_ms))

    # ---- inputs --------------------------------------------------------------------------

    def state(self, symbol: str) -> SymbolFeatures:
        return self._states[symbol]

    def add_trades(self, trades: TradeBatch) -> AddResult | None:
        """Feed trades of one symbol; None when no enabled strategy follows it."""
        state = self._states.get(trades.symbol)
        return None if state is None else state.add_trades(trades)

    def add_indicator(self, indicator: Indicator) -> None:
        state = self._states.get(indicator.symbol)
        if state is not None:
            state.add_indicator(indicator)

    def add_mark_price(self, mark: MarkPrice | RateSnapshot) -> None:
        state = self._states.get(mark.symbol)
        if state is not None:
            state.add_mark_price(mark)

    def add_rate_columns(
        self,
        symbol: str,
        known_ms: Sequence[int],
        funding_rate: Sequence[float],
        index_price: Sequence[float],
    ) -> None:
        """Many premiumIndex readings of one symbol at once (replays)."""
        state = self._states.get(symbol)
        if state is not None:
            state.add_rate_columns(known_ms, funding_rate, index_price)

    def add_liquidation(self, liq: Liquidation) -> None:
        state = self._states.get(liq.symbol)
        if state is not None:
            state.add_liquidation(liq)

    def add_market_event(self, event: MarketEvent) -> AddResult | None:
        """Route one event from the market channel; returns the AddResult of trades."""
        if isinstance(event, TradeBatch):
            return self.add_trades(event)
        if isinstance(event, MarkPrice | RateSnapshot):
            self.add_mark_price(event)
        elif isinstance(event, Indicator):
            self.add_indicator(event)
        elif isinstance(event, Liquidation):
            self.add_liquidation(event)
        else:
            assert isinstance(event, TapeGap)  # bookkeeping only
        return None

    # ---- ticks ---------------------------------------------------------------------------

    def evaluate(
        self,
        t_ms: int,
        *,
        symbols: Iterable[str] | None = None,
        open_positions: OpenPositions | None = None,
    ) -> list[Evaluation]:
        """Evaluate tick ``t_ms`` for every enabled strategy on its grid, per symbol.

        ``symbols`` restricts the symbols (live, each symbol's tick becomes due
        on its own). Results are ordered by symbol, then strategy name.
        Firing updates the cooldown state.
        """
        chosen = self._order if symbols is None else sorted(symbols)
        out: list[Evaluation] = []
        plans, last_fired = self._plans, self._last_fired
        for symbol in chosen:
            plan = plans.get(symbol)
            if plan is None:
                continue
            every = plan.every
            due: Sequence[tuple[Strategy, FeatureSpec, tuple[str, str]]]
            specs: Sequence[FeatureSpec]
            if every is None:
                due = plan.due(t_ms)
                if not due:
                    continue
                specs = [d[1] for d in due]
            elif t_ms % every:
                continue
            else:  # every strategy of the symbol shares its tick (the usual case)
                due, specs = plan.strategies, plan.specs
            features = plan.state.evaluate_each(t_ms, specs)
            for (strategy, _, key), feats in zip(due, features, strict=True):
                open_count: int | Callable[[], int] = 0
                if open_positions is not None:
                    open_count = partial(open_positions, key[0], symbol, t_ms)
                evaluation = evaluate_strategy(
                    strategy, feats, last_fired_ms=last_fired.get(key), open_count=open_count
                )
                if evaluation.fired:
                    last_fired[key] = t_ms
                out.append(evaluation)
        return out


class _SymbolPlan:
    """One symbol's state and strategies as a tick walks them, built once per strategy set."""

    __slots__ = ("every", "specs", "state", "strategies")

    def __init__(
        self,
        state: SymbolFeatures,
        strategies: tuple[tuple[Strategy, FeatureSpec, tuple[str, str]], ...],
    ) -> None:
        self.state = state
        self.strategies = strategies
        """(strategy, its feature spec, its cooldown key) by strategy name."""
        self.specs = tuple(spec for _, spec, _ in strategies)
        ticks = {strategy.tick_ms for strategy, _, _ in strategies}
        self.every = ticks.pop() if len(ticks) == 1 else None
        """The one tick every strategy of the symbol shares, if they do."""

    @classmethod
    def of(
        cls,
        state: SymbolFeatures,
        symbol: str,
        strategies: Sequence[Strategy],
        specs: Mapping[str, FeatureSpec],
    ) -> _SymbolPlan:
        return cls(state, tuple((s, specs[s.name], (s.name, symbol)) for s in strategies))

    def due(self, t_ms: int) -> list[tuple[Strategy, FeatureSpec, tuple[str, str]]]:
        """The strategies with ``t_ms`` on their tick grid."""
        return [entry for entry in self.strategies if not t_ms % entry[0].tick_ms]
