"""Per symbol, the engine waits for the inputs its own strategies read, and for nothing else."""

from __future__ import annotations

from typing import Any

from arbengine.pipeline.readiness import SymbolGate
from arbengine.runtime.delivered_inputs import Readiness
from arbengine.signals import StrategySet, parse_strategy


def strategy(name: str, symbols: list[str], *features: str, paper: bool = False) -> Any:
    return parse_strategy(
        {
            "name": name,
            "symbols": symbols,
            "direction": {"feature": "flow_fast", "min": 0.0},
            "factors": [{"feature": f, "weight": 1, "full": 1.0} for f in features or ["cvd_fast"]],
            "entry": {"threshold": 50},
            "exit": {"sl_atr": 1.0},
            "paper": {"enabled": paper},
        }
    )


class Wall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_symbol_is_ready_once_its_own_inputs_are_delivered() -> None:
    wall = Wall()
    board = Readiness(["AAAUSDT", "BBBUSDT"], wall=wall)
    gate = SymbolGate(board, wall=wall)
    gate.set_strategies(
        StrategySet.of(
            [
                strategy("a", ["AAAUSDT"]),
                strategy("b", ["BBBUSDT"], "ls_global", "funding_rate"),
            ]
        )
    )
    assert gate.update() == []
    waiting = {s.symbol: s.waiting_for for s in gate.waiting}
    assert waiting == {"AAAUSDT": ("tape",), "BBBUSDT": ("ls_global", "premium_index", "tape")}

    wall.now = 1_005.0
    board.done("AAAUSDT", "tape")
    board.done("AAAUSDT", "ls_global")  # delivered, but no strategy of AAA reads it
    board.done("BBBUSDT", "tape")
    board.done("BBBUSDT", "premium_index")
    assert gate.update() == ["AAAUSDT"]
    assert gate.ready == {"AAAUSDT"}
    bbb = gate.state("BBBUSDT")
    assert bbb is not None
    assert (bbb.state, bbb.waiting_for, bbb.since) == ("waiting", ("ls_global",), 1_000.0)
    assert bbb.reason == "waiting for its history since start: ls_global"
    assert gate.update() == []  # nothing new on the board

    wall.now = 1_009.0
    board.done("BBBUSDT", "ls_global")
    assert gate.update() == ["BBBUSDT"]
    state = gate.state("BBBUSDT")
    assert state is not None
    assert (state.state, state.since) == ("ready", 1_009.0)
    assert gate.ready == {"AAAUSDT", "BBBUSDT"}
    assert not gate.waiting


def test_a_symbol_not_followed_by_the_collectors_is_not_waited_for() -> None:
    board = Readiness(["AAAUSDT", "BBBUSDT"])
    gate = SymbolGate(board)
    gate.set_strategies(StrategySet.of([strategy("a", ["AAAUSDT", "BBBUSDT", "CCCUSDT"])]))
    assert gate.update() == ["CCCUSDT"]  # never configured for collection
    board.stop("BBBUSDT", "delisted")
    assert gate.update() == ["BBBUSDT"]
    assert gate.ready == {"BBBUSDT", "CCCUSDT"}
    states = {s.symbol: (s.state, s.note) for s in gate.states()}
    assert states == {
        "AAAUSDT": ("waiting", None),
        "BBBUSDT": ("not_collected", "delisted"),
        "CCCUSDT": ("not_collected", "not collected by this deployment ([collect] symbols)"),
    }


def test_without_a_board_nothing_is_waited_for() -> None:
    gate = SymbolGate(None)
    gate.set_strategies(StrategySet.of([strategy("a", ["AAAUSDT"], "ls_global")]))
    assert gate.update() == ["AAAUSDT"]
    assert gate.ready == {"AAAUSDT"}


def test_paper_trading_waits_for_the_funding_history_and_a_reload_can_add_a_wait() -> None:
    board = Readiness(["AAAUSDT"])
    gate = SymbolGate(board)
    gate.set_strategies(StrategySet.of([strategy("a", ["AAAUSDT"])]))
    board.done("AAAUSDT", "tape")
    assert gate.update() == ["AAAUSDT"]

    gate.set_strategies(StrategySet.of([strategy("a", ["AAAUSDT"], "taker_ratio", paper=True)]))
    assert gate.update() == []
    assert gate.ready == frozenset()
    state = gate.state("AAAUSDT")
    assert state is not None
    assert state.waiting_for == ("funding_rate", "taker_ratio")
    board.done("AAAUSDT", "funding_rate")
    board.done("AAAUSDT", "taker_ratio")
    assert gate.update() == ["AAAUSDT"]
