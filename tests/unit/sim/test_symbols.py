"""Number formats and exchangeInfo filters of the simulated contracts."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from arbengine.sim.symbols import (
    KNOWN_SPECS,
    PrecisionError,
    exchange_info,
    fmt_decimal,
    fmt_units,
    spec_for,
    to_units,
)


def test_units_format_with_exactly_the_precision() -> None:
    assert fmt_units(6000010, 2) == "60000.10"
    assert fmt_units(5, 3) == "0.005"
    assert fmt_units(42, 0) == "42"
    assert fmt_units(-1234, 2) == "-12.34"
    assert fmt_decimal(Decimal("1.5")) == "1.50000000"


def test_parsing_rejects_digits_beyond_the_precision() -> None:
    assert to_units("0.010", 3) == 10
    assert to_units("60000.1", 2) == 6000010
    with pytest.raises(PrecisionError):
        to_units("0.0001", 3)


def test_exchange_info_carries_realistic_filters() -> None:
    specs = [KNOWN_SPECS[s] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")]
    info = exchange_info(specs, 1, [{"rateLimitType": "REQUEST_WEIGHT", "limit": 2400}])
    by_symbol = {s["symbol"]: s for s in info["symbols"]}
    expect = {
        "BTCUSDT": ("0.10", "0.001", "100"),
        "ETHUSDT": ("0.01", "0.001", "100"),
        "SOLUSDT": ("0.0100", "1", "5"),
        "XRPUSDT": ("0.0001", "0.1", "5"),
    }
    for symbol, (tick, step, notional) in expect.items():
        filters = {f["filterType"]: f for f in by_symbol[symbol]["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == tick
        assert filters["LOT_SIZE"]["stepSize"] == step
        assert filters["MARKET_LOT_SIZE"]["stepSize"] == step
        assert filters["MIN_NOTIONAL"]["notional"] == notional
        assert set(filters) >= {"PERCENT_PRICE", "MAX_NUM_ALGO_ORDERS"}
        assert isinstance(by_symbol[symbol]["pricePrecision"], int)
    assert info["rateLimits"][0]["limit"] == 2400


def test_unknown_symbol_gets_a_generated_spec_and_funding_interval_override() -> None:
    spec = spec_for("dogeusdt", funding_interval_hours=4)
    assert spec.symbol == "DOGEUSDT"
    assert spec.base == "DOGE"
    assert spec.funding_interval_hours == 4
    assert spec.coinbase_product == "DOGE-USD"


def test_hundreds_of_unknown_names_get_plausible_contracts_that_differ() -> None:
    names = [f"ALT{i:03d}USDT" for i in range(300)]
    specs = [spec_for(name) for name in names]
    assert spec_for("ALT007USDT") == specs[7]  # the same contract every time
    prices = np.array([s.start_price for s in specs])
    assert prices.min() < 0.01  # a fraction of a cent …
    assert prices.max() > 100  # … to hundreds of dollars
    assert len({(s.price_precision, s.qty_precision) for s in specs}) >= 5
    for s in specs:
        tick = float(s.tick_size)
        step_value = float(s.step_size) * s.start_price
        assert 1e-5 <= tick / s.start_price <= 1e-3, s  # about five significant digits
        assert step_value <= 10, s  # a lot step worth a few dollars at most
        assert s.min_notional == 5
        assert float(s.max_price) > s.start_price >= float(s.min_price)
        assert s.max_qty * float(s.step_size) * s.start_price >= 5e7
        assert 0.04 <= s.daily_vol <= 0.10
        assert to_units(fmt_units(round(s.start_price * s.price_scale), s.price_precision),
                        s.price_precision) == round(s.start_price * s.price_scale)  # fmt: skip
    assert 0.15 < sum(s.funding_interval_hours == 4 for s in specs) / len(specs) < 0.45
    assert all(s.funding_interval_hours in (4, 8) for s in specs)
    info = exchange_info(specs, 1, [])
    assert len(info["symbols"]) == 300
