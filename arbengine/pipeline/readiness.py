"""Per symbol: may the live engine evaluate it yet, and if not, what does it wait for.

A symbol is ready once every input its strategies read has had its first
round after start delivered: the trade tape caught up over REST, and each
indicator series' history (``Strategy.inputs``; the collectors report on a
``Readiness`` board). Until then its trades stay held and its ticks are not
due, so no tick is evaluated on partial history; once ready, it is evaluated
from its held trades exactly as a backtest would. Other symbols do not wait
for it. A symbol the collectors do not follow (not configured, delisted,
unknown to the exchange) gets nothing more, so it is not waited for: it is
evaluated on what there is, like a backtest of the store.

Readiness is computed afresh from the strategies and the board, so a reload
that makes a symbol read a series whose history is not in yet holds it again
until it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from arbengine.runtime.delivered_inputs import Readiness
from arbengine.signals import StrategySet

State = Literal["ready", "waiting", "not_collected"]


@dataclass(frozen=True, slots=True)
class SymbolState:
    symbol: str
    state: State
    since: float
    """Epoch seconds since when it is in this state."""
    waiting_for: tuple[str, ...]
    """Inputs whose first round is not in yet: ``tape`` or an indicator series."""
    strategies: tuple[str, ...]
    """The enabled strategies that evaluate it."""
    note: str | None = None
    """Why it is not collected."""

    @property
    def reason(self) -> str:
        """One line for a person."""
        if self.state == "waiting":
            return "waiting for its history since start: " + ", ".join(self.waiting_for)
        if self.state == "not_collected":
            return f"evaluated on stored data only, not waited for: {self.note}"
        return "ready"

    def as_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "state": self.state,
            "since": round(self.since, 3),
            "waiting_for": list(self.waiting_for),
            "strategies": list(self.strategies),
            "reason": self.reason,
        }


class SymbolGate:
    """The symbols of the strategy set, each ready, waiting (for what) or not collected."""

    def __init__(self, board: Readiness | None, *, wall: Callable[[], float] = time.time) -> None:
        self._board = board
        self._wall = wall
        self._needs: dict[str, frozenset[str]] = {}
        self._strategies: dict[str, tuple[str, ...]] = {}
        self._states: dict[str, SymbolState] = {}
        self._seen_version = -1
        self.symbols: frozenset[str] = frozenset()
        """The symbols the strategies evaluate (the collectors may follow many more)."""
        self.ready: frozenset[str] = frozenset()
        """Symbols the engine may evaluate now (ready, or not collected)."""

    def set_board(self, board: Readiness) -> None:
        self._board = board
        self._seen_version = -1

    def set_strategies(self, strategies: StrategySet) -> None:
        needs: dict[str, set[str]] = {}
        names: dict[str, list[str]] = {}
        for strategy in strategies.enabled:
            for symbol in strategy.symbols:
                needs.setdefault(symbol, set()).update(strategy.inputs)
                names.setdefault(symbol, []).append(strategy.name)
        self._needs = {s: frozenset(n) for s, n in needs.items()}
        self.symbols = frozenset(self._needs)
        self._strategies = {s: tuple(sorted(n)) for s, n in names.items()}
        self._seen_version = -1

    def update(self) -> list[str]:
        """Re-read the board if it changed; return the symbols that became ready now."""
        board = self._board
        version = board.version if board is not None else 0
        if version == self._seen_version:
            return []
        self._seen_version = version
        now = self._wall()
        became_ready = []
        states: dict[str, SymbolState] = {}
        for symbol, needs in sorted(self._needs.items()):
            note = board.stopped(symbol) if board is not None else None
            missing: tuple[str, ...] = ()
            if note is not None:
                state: State = "not_collected"
            else:
                delivered = board.delivered(symbol) if board is not None else needs
                missing = tuple(sorted(needs - delivered))
                state = "waiting" if missing else "ready"
            before = self._states.get(symbol)
            since = before.since if before is not None and before.state == state else now
            states[symbol] = SymbolState(
                symbol, state, since, missing, self._strategies[symbol], note
            )
            if state != "waiting" and (before is None or before.state == "waiting"):
                became_ready.append(symbol)
        self._states = states
        self.ready = frozenset(s for s, st in states.items() if st.state != "waiting")
        return became_ready

    def reads(self, symbol: str, item: str) -> bool:
        """Whether a strategy of ``symbol`` reads the input ``item``."""
        return item in self._needs.get(symbol, ())

    def state(self, symbol: str) -> SymbolState | None:
        return self._states.get(symbol)

    def states(self) -> list[SymbolState]:
        return list(self._states.values())

    @property
    def waiting(self) -> list[SymbolState]:
        return [s for s in self._states.values() if s.state == "waiting"]
