from __future__ import annotations

import pytest

from arbengine.domain.durations import DurationError, format_duration_ms, parse_duration_ms


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
