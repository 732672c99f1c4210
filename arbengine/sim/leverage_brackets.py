"""Leverage brackets (``GET /fapi/v1/leverageBracket``), kept consistent with the margin maths.

The sim values maintenance margin at one rate per symbol (``SymbolSpec.maint_margin_rate``,
``margin.py``), so every bracket of a symbol carries that rate and ``cum`` 0: Binance's
formula ``notional × maintMarginRatio − cum`` then gives exactly the sim's maintenance
margin at any size. What changes from bracket to bracket is the leverage allowed, and the
caps are the ``maxNotionalValue`` the sim reports for a leverage (``POST /fapi/v1/leverage``,
``positionRisk`` v2): a bracket's ``notionalCap`` is ``max_notional(initialLeverage)`` and
its ``notionalFloor`` the cap of the bracket before. The sim reports the brackets but does
not refuse an order that would exceed its bracket.
"""

from __future__ import annotations

from typing import Any

from arbengine.sim.symbols import SymbolSpec

BRACKET_LEVERAGES = (125, 100, 50, 20, 10, 5, 4, 3, 2, 1)
"""The leverage of each bracket, smallest notional first."""


def max_notional(leverage: int) -> str:
    """The largest position notional allowed at ``leverage`` (its bracket's cap)."""
    return str(max(50_000, 300_000_000 // leverage))


def brackets(spec: SymbolSpec) -> dict[str, Any]:
    rate = float(spec.maint_margin_rate)
    rows = []
    floor = 0
    for i, leverage in enumerate(BRACKET_LEVERAGES, start=1):
        cap = int(max_notional(leverage))
        rows.append(
            {
                "bracket": i,
                "initialLeverage": leverage,
                "notionalCap": cap,
                "notionalFloor": floor,
                "maintMarginRatio": rate,
                "cum": 0.0,
            }
        )
        floor = cap
    return {"symbol": spec.symbol, "brackets": rows}
