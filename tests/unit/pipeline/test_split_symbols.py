"""Symbols are split between a backtest's processes by their stored trades, evenly."""

from __future__ import annotations

from arbengine.pipeline.backtest_split import split_symbols


def test_the_heaviest_symbols_are_spread_and_the_loads_come_out_even() -> None:
    weights = {"BTCUSDT": 300, "ETHUSDT": 200, "SOLUSDT": 120, "XRPUSDT": 90, "DOGEUSDT": 90}
    groups = split_symbols(weights, 2)
    assert groups == [["BTCUSDT", "DOGEUSDT"], ["ETHUSDT", "SOLUSDT", "XRPUSDT"]]
    loads = [sum(weights[s] for s in g) for g in groups]
    assert max(loads) - min(loads) <= 20


def test_symbols_without_stored_trades_still_spread_over_the_groups() -> None:
    assert split_symbols(dict.fromkeys(["A", "B", "C", "D"], 0), 2) == [["A", "C"], ["B", "D"]]


def test_never_more_groups_than_symbols_and_each_symbol_once() -> None:
    weights = {"A": 5, "B": 1}
    assert split_symbols(weights, 8) == [["A"], ["B"]]
    assert split_symbols(weights, 1) == [["A", "B"]]
    assert split_symbols({}, 2) == []
