"""``arbengine sim`` arguments become the SimConfig they describe."""

from __future__ import annotations

import argparse

import pytest

from arbengine.sim.sim_args import add_arguments, parse_rates, parse_speed, parse_start
from arbengine.sim.sim_command import config_from_args


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults() -> None:
    config = config_from_args(parse())
    assert (config.host, config.port, config.seed, config.speed) == ("127.0.0.1", 9000, 1, 1.0)
    assert config.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
    assert config.start_ms is None
    assert config.faults is None
    assert config.check_timestamps is True


def test_the_issue_example() -> None:
    config = config_from_args(
        parse("--port", "9000", "--seed", "1", "--speed", "10", "--symbols", "btcusdt,ETHUSDT")
    )
    assert (config.port, config.seed, config.speed, config.manual) == (9000, 1, 10.0, False)
    assert config.symbols == ("BTCUSDT", "ETHUSDT")


def test_speed_start_and_rates_spellings() -> None:
    assert parse_speed("max") == (0.0, False)
    assert parse_speed("0") == (0.0, False)
    assert parse_speed("manual") == (1.0, True)
    assert parse_speed("2.5") == (2.5, False)
    with pytest.raises(ValueError, match="could not convert"):
        parse_speed("fast")
    assert parse_start("1704067200000") == 1_704_067_200_000
    assert parse_start("2024-01-01T00:00:00Z") == 1_704_067_200_000
    assert parse_start("2024-01-01T01:00:00+01:00") == 1_704_067_200_000
    assert parse_rates("50,BTCUSDT=200") == (50.0, {"BTCUSDT": 200.0})


def test_fault_flags_merge_into_the_initial_faults() -> None:
    config = config_from_args(
        parse("--faults", '{"duplicate": {"count": 3}}', "--rest-latency-ms", "40")
    )
    assert config.faults is not None
    assert config.faults.duplicate is not None
    assert config.faults.duplicate.count == 3
    assert config.faults.latency is not None
    assert config.faults.latency.rest_ms == 40
