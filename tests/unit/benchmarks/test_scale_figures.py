"""The scale benchmark's choices and arithmetic: symbols, trade rates, histogram quantiles."""

from __future__ import annotations

import argparse
import math

import pytest

from arbengine.benchmarks.probes import histogram_between, histogram_quantile, metric_totals
from arbengine.benchmarks.scale_bench import (
    _options,
    add_arguments,
    pick_symbols,
    published,
    zipf_rates,
)
from arbengine.domain.errors import ConfigError
from tests.conftest import REPO


def test_the_majors_come_first_then_a_long_tail_of_distinct_names() -> None:
    assert pick_symbols(2) == ("BTCUSDT", "ETHUSDT")
    symbols = pick_symbols(300)
    assert symbols[:4] == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
    assert symbols[4] == "ALT001USDT"
    assert symbols[-1] == "ALT296USDT"
    assert len(set(symbols)) == 300
    assert pick_symbols(100) == symbols[:100]  # 300 symbols are 100 and 200 more


def test_trade_rates_fall_from_the_top_rate_down_a_zipf_law() -> None:
    rates = zipf_rates(pick_symbols(300), 30.0, 1.0)
    assert rates["BTCUSDT"] == 30.0
    assert rates["ETHUSDT"] == 15.0
    assert rates["XRPUSDT"] == 7.5
    assert rates["ALT096USDT"] == 0.3  # the 100th symbol
    assert rates["ALT296USDT"] == 0.1  # the 300th
    assert sum(rates.values()) == pytest.approx(30.0 * sum(1 / r for r in range(1, 301)), 1e-3)
    flat = zipf_rates(pick_symbols(3), 5.0, 0.0)
    assert set(flat.values()) == {5.0}


def test_trades_published_between_two_views_count_a_symbol_that_had_not_traded() -> None:
    assert published({"last_id": 100, "first_id": 1}, {"last_id": 130, "first_id": 1}) == 30
    assert published({"last_id": None, "first_id": None}, {"last_id": 52, "first_id": 50}) == 3
    assert published({"last_id": None, "first_id": None}, {"last_id": None, "first_id": None}) == 0


PAGE_BEFORE = """
# TYPE arb_engine_tick_delay_seconds histogram
arb_engine_tick_delay_seconds_bucket{le="1.0"} 0.0
arb_engine_tick_delay_seconds_bucket{le="2.0"} 10.0
arb_engine_tick_delay_seconds_bucket{le="4.0"} 10.0
arb_engine_tick_delay_seconds_bucket{le="+Inf"} 10.0
arb_engine_tick_delay_seconds_count 10.0
arb_engine_tick_delay_seconds_sum 15.0
"""
PAGE_AFTER = """
# TYPE arb_engine_tick_delay_seconds histogram
arb_engine_tick_delay_seconds_bucket{le="1.0"} 0.0
arb_engine_tick_delay_seconds_bucket{le="2.0"} 60.0
arb_engine_tick_delay_seconds_bucket{le="4.0"} 108.0
arb_engine_tick_delay_seconds_bucket{le="+Inf"} 110.0
arb_engine_tick_delay_seconds_count 110.0
arb_engine_tick_delay_seconds_sum 200.0
"""


def test_quantiles_of_what_a_histogram_observed_between_two_pages() -> None:
    buckets = histogram_between(
        metric_totals(PAGE_BEFORE), metric_totals(PAGE_AFTER), "arb_engine_tick_delay_seconds"
    )
    assert buckets == {1.0: 0.0, 2.0: 50.0, 4.0: 98.0, math.inf: 100.0}
    assert histogram_quantile(buckets, 0.5) == pytest.approx(2.0)
    assert histogram_quantile(buckets, 0.25) == pytest.approx(1.5)  # halfway into (1, 2]
    assert histogram_quantile(buckets, 0.74) == pytest.approx(3.0)  # halfway into (2, 4]
    assert histogram_quantile(buckets, 0.99) == 4.0  # in +Inf: the highest finite bound
    assert math.isnan(histogram_quantile({1.0: 0.0, math.inf: 0.0}, 0.99))
    assert math.isnan(histogram_quantile({}, 0.5))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_follow_100_symbols_for_ten_minutes() -> None:
    opts = _options(parse("--strategies", str(REPO / "strategies")))
    assert len(opts.symbols) == 100
    assert opts.measure_s == 600.0
    assert opts.history_backfill == "1d"
    assert opts.rates["BTCUSDT"] == 30.0
    assert opts.settings == {}
    strategies = str(REPO / "strategies")
    tuned = _options(
        parse("--strategies", strategies, "--set", "ARB_COLLECT_RATIOS_INTERVAL=10m",
              "--set", "ARB_X=a=b")
    )  # fmt: skip
    assert tuned.settings == {"ARB_COLLECT_RATIOS_INTERVAL": "10m", "ARB_X": "a=b"}


def test_bad_flags_are_one_line_naming_each() -> None:
    with pytest.raises(ConfigError) as caught:
        _options(parse("--symbols", "0", "--measure", "soon", "--zipf", "-1",
                       "--set", "COLLECT_RATIOS_INTERVAL=10m",
                       "--strategies", "nowhere"))  # fmt: skip
    message = str(caught.value)
    assert message.startswith("bench scale: --measure: ")
    assert "\n" not in message
    for part in ("--symbols must be at least 1, got 0", "--zipf must be 0 or more",
                 "--set: expected ARB_NAME=VALUE, got 'COLLECT_RATIOS_INTERVAL=10m'",
                 "--strategies: no *.json strategy files in nowhere"):  # fmt: skip
        assert part in message
