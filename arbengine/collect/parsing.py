"""Numbers out of exchange JSON: Binance sends decimals as strings, sometimes as numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def number(row: Mapping[str, Any], key: str) -> float:
    """``row[key]`` as a float; a missing or non-numeric value raises naming the key."""
    value = row.get(key)
    if value is None or value == "" or isinstance(value, bool):
        raise ValueError(f"missing number {key!r} in {dict(row)!r:.200}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key!r} is not a number: {value!r}") from None


def optional_number(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    return number(row, key)
