"""Symbol rules from exchangeInfo and leverage brackets, and their exact rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbengine.exchange.replies import ExchangeInfo, SymbolFilter, decode_reply
from arbengine.trading.live_rules import RulesError, floor_to, symbol_rules, to_decimal, wire
from tests.support.live_examples import exchange_info_json, rules_for


def test_rules_read_from_binance_shaped_exchange_info_and_brackets() -> None:
    rules = rules_for("BTCUSDT")
    assert rules.tick == Decimal("0.10")
    assert (rules.min_price, rules.max_price) == (Decimal("261.10"), Decimal("809484"))
    assert (rules.lot.step, rules.lot.min_qty, rules.lot.max_qty) == (
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("1000"),
    )
    # MARKET_LOT_SIZE is its own filter: a market order may not be as large as a limit one.
    assert rules.market_lot.max_qty == Decimal("120")
    assert rules.min_notional == Decimal("100")


def test_other_filter_kinds_decode_without_the_keys_we_read() -> None:
    info = decode_reply(exchange_info_json("BTCUSDT"), ExchangeInfo, "exchangeInfo")
    kinds = {f.filterType: f for f in info.symbols[0].filters}
    assert kinds["MAX_NUM_ORDERS"].tickSize is None
    assert kinds["PERCENT_PRICE"].notional is None


def test_the_notional_cap_is_the_largest_bracket_that_allows_the_leverage() -> None:
    rules = rules_for("BTCUSDT")
    assert rules.max_notional(125) == Decimal(50_000)
    assert rules.max_notional(100) == Decimal(600_000)
    assert rules.max_notional(20) == Decimal(100_000_000)
    assert rules.max_notional(21) == Decimal(70_000_000)  # 25x bracket is the last allowing 21
    assert rules.max_notional(126) == 0  # no bracket allows it: nothing may be traded


def test_unknown_brackets_leave_the_cap_unknown() -> None:
    rules = symbol_rules(
        "X",
        [
            SymbolFilter("PRICE_FILTER", tickSize=Decimal("0.1")),
            SymbolFilter("LOT_SIZE", stepSize=Decimal(1), minQty=Decimal(1), maxQty=Decimal(9)),
        ],
    )
    assert rules.max_notional(10) is None
    assert rules.market_lot == rules.lot  # no MARKET_LOT_SIZE: LOT_SIZE applies
    assert rules.min_notional == 0


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([SymbolFilter("LOT_SIZE")], "exchangeInfo X: no PRICE_FILTER filter"),
        ([SymbolFilter("PRICE_FILTER", tickSize=Decimal(1))], "exchangeInfo X: no LOT_SIZE filter"),
        (
            [SymbolFilter("PRICE_FILTER"), SymbolFilter("LOT_SIZE")],
            "exchangeInfo X: PRICE_FILTER has no tickSize",
        ),
        (
            [
                SymbolFilter("PRICE_FILTER", tickSize=Decimal(0)),
                SymbolFilter("LOT_SIZE"),
            ],
            "exchangeInfo X: PRICE_FILTER tickSize 0 is not positive",
        ),
        (
            [
                SymbolFilter("PRICE_FILTER", tickSize=Decimal(1)),
                SymbolFilter("LOT_SIZE", stepSize=Decimal(1), minQty=Decimal(1)),
            ],
            "exchangeInfo X: LOT_SIZE has no maxQty",
        ),
    ],
)
def test_missing_or_senseless_filters_are_one_line_errors(
    filters: list[SymbolFilter], message: str
) -> None:
    with pytest.raises(RulesError) as err:
        symbol_rules("X", filters)
    assert str(err.value) == message


def test_prices_round_on_the_tick_grid_in_the_direction_asked() -> None:
    rules = rules_for("BTCUSDT")
    assert rules.price(Decimal("59820.855003"), "up") == Decimal("59820.9")
    assert rules.price(Decimal("59820.855003"), "down") == Decimal("59820.8")
    assert rules.price(Decimal("60006.0"), "up") == Decimal("60006.0")  # on the grid: kept
    assert rules.price(Decimal("60006.0"), "down") == Decimal("60006.0")


def test_the_tick_grid_starts_at_min_price() -> None:
    rules = symbol_rules(
        "X",
        [
            SymbolFilter("PRICE_FILTER", tickSize=Decimal("0.5"), minPrice=Decimal("0.2")),
            SymbolFilter("LOT_SIZE", stepSize=Decimal(1), minQty=Decimal(1), maxQty=Decimal(9)),
        ],
    )
    assert rules.price(Decimal("1.0"), "up") == Decimal("1.2")
    assert rules.price(Decimal("1.0"), "down") == Decimal("0.7")


def test_quantities_floor_exactly_where_floats_would_not() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in binary floating point: a float floor gives 2 steps.
    assert floor_to(to_decimal(0.3), Decimal("0.1")) == Decimal("0.3")
    assert floor_to(Decimal("0.5400297"), Decimal("0.001")) == Decimal("0.540")
    assert to_decimal(0.1) == Decimal("0.1")
    with pytest.raises(RulesError):
        floor_to(Decimal(1), Decimal(0))


def test_wire_form_is_plain_decimal_notation() -> None:
    assert wire(Decimal("0.540")) == "0.54"
    assert wire(Decimal("1E+2")) == "100"
    assert wire(Decimal("0.00000010")) == "0.0000001"
    assert wire(Decimal("-0")) == "0"
