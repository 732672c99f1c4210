from __future__ import annotations

import copy
import pickle

import pytest

from arbengine.domain.durations import (
    Duration,
    DurationError,
    format_duration_ms,
    parse_duration_ms,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("15s", 15_000),
        ("30m", 1_800_000),
        ("4h", 14_400_000),
        ("1d", 86_400_000),
        ("0s", 0),
    ],
)
def test_parse(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms
    assert parse_duration_ms(format_duration_ms(ms)) == ms


@pytest.mark.parametrize("text", ["", "15", "1.5s", "-1s", "15 s", "1w", "s"])
def test_rejects(text: str) -> None:
    with pytest.raises(DurationError, match="expected a duration"):
        parse_duration_ms(text)


def test_a_duration_is_converted_once_and_keeps_its_spelling() -> None:
    d = Duration("1500ms")
    assert (d.ms, d.seconds, d.text, str(d)) == (1500, 1.5, "1500ms", "1500ms")
    assert d == Duration("1500ms")
    assert hash(d) == hash(Duration("1500ms"))
    assert Duration("60s") != Duration("1m")  # as written: what `config show` prints
    with pytest.raises(AttributeError):
        d.ms = 1
    with pytest.raises(DurationError, match="expected a duration"):
        Duration("1.5s")


def test_a_duration_can_be_copied_and_pickled() -> None:
    d = Duration("250ms")
    assert copy.deepcopy(d) == d
    again = pickle.loads(pickle.dumps(d))
    assert (again, again.ms, again.seconds) == (d, 250, 0.25)
