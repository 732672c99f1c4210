"""The soak benchmark's arithmetic: least-squares slope, flat within noise, settings, metrics."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from arbengine.benchmarks.soak_bench import (
    Sample,
    _options,
    add_arguments,
    analyse,
    fit_line,
    metric_totals,
    scaled_settings,
)
from arbengine.domain.errors import ConfigError


def series(leak_mb_per_h: float, noise_mb: float, seed: int = 3) -> list[Sample]:
    """60 market hours of memory: it fills a 26 h window, settles by 40 h (buffers that
    doubled are touched as they are written), and leaks ``leak_mb_per_h`` throughout."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(601):
        h = i * 0.1
        mb = 100 + 4 * min(h, 26.0) + 0.5 * min(max(0.0, h - 26.0), 14.0) + leak_mb_per_h * h
        out.append(Sample(h * 30, h, mb + noise_mb * rng.standard_normal(), 50.0, 1.0))
    return out


def test_the_slope_is_the_least_squares_line() -> None:
    fit = fit_line([0, 1, 2, 3], [1.0, 3.0, 5.0, 7.0])
    assert fit.slope == pytest.approx(2.0)
    assert fit.ci95 == pytest.approx(0.0, abs=1e-12)
    assert fit.drift == pytest.approx(6.0)


def test_memory_flat_once_settled_passes_and_a_leak_fails() -> None:
    ok = analyse(series(0.0, 2.0), 26.0, 52.0)
    assert ok.full.market_h == pytest.approx(26.0)
    assert not ok.daemon_after_window.flat  # still settling right after the window
    assert ok.daemon_settled.flat
    assert abs(ok.daemon_settled.slope) < ok.daemon_settled.ci95
    assert ok.daemon_settled.span == pytest.approx(8.0)
    leak = analyse(series(1.0, 2.0), 26.0, 52.0)  # 1 MB a market hour: 8 MB over 8 h
    assert not leak.daemon_settled.flat
    assert leak.daemon_settled.slope == pytest.approx(1.0, abs=leak.daemon_settled.ci95)
    assert leak.daemon_settled_wall.slope == pytest.approx(120.0, rel=0.3)  # 30 s a market h


def test_too_few_settled_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="only 0 samples after 70 market hours"):
        analyse(series(0.0, 1.0), 26.0, 70.0)


def test_wall_intervals_are_divided_by_the_speed_with_a_floor() -> None:
    scaled = scaled_settings(72)
    assert scaled["ARB_COLLECT_RATIOS_INTERVAL"] == "4167ms"  # 5 min of market
    assert scaled["ARB_COLLECT_MAX_CONNECTION_AGE"] == "1150000ms"  # 23 h of market
    assert scaled["ARB_COLLECT_PREMIUM_INDEX_INTERVAL"] == "28ms"
    assert scaled_settings(10_000)["ARB_COLLECT_PREMIUM_INDEX_INTERVAL"] == "20ms"


def test_metrics_are_summed_over_labels_and_kept_per_label() -> None:
    page = (
        "# TYPE arb_tape_gaps_total counter\n"
        'arb_tape_gaps_total{outcome="seen"} 3.0\n'
        'arb_tape_gaps_total{outcome="hole"} 1.0\n'
    )
    totals = metric_totals(page)
    assert totals["arb_tape_gaps_total"] == 4.0
    assert totals['arb_tape_gaps_total{outcome="hole"}'] == 1.0


def test_bad_options_are_one_line_naming_each_problem(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--hours", "20", "--speed", "0", "--strategies", str(tmp_path), "--symbols", ","]
    )
    with pytest.raises(ConfigError) as err:
        _options(args)
    message = str(err.value)
    assert "\n" not in message
    for part in ("--symbols", "--speed", "--hours (20) must be longer than --settled-hours (52)",
                 f"no *.json strategy files in {tmp_path}"):  # fmt: skip
        assert part in message


def test_a_quiet_series_is_flat_unless_it_moves_more_than_a_megabyte() -> None:
    hours = [52 + 0.25 * i for i in range(33)]
    assert fit_line(hours, [400.0] * 32 + [400.004]).flat  # one page, no noise to speak of
    assert not fit_line(hours, [400 + 0.2 * (h - 52) for h in hours]).flat  # 1.6 MB in 8 h
