"""schemathesis hooks for test_contract.py: valid ranges are what the document's x-range says.

JSON Schema describes each query parameter alone, so a fuzzer drawing ``from``
and ``to`` independently would call a seven-year range "valid" where the
document states a seven-day cap. The document states the cap (``x-range`` on
each ranged operation); this hook makes every positive case honour it, reading
the caps from the document under test and nowhere else. Negative cases are
left alone. So the contract test still proves that every range the document
allows is accepted, and every other check applies unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import schemathesis
from schemathesis.generation.modes import GenerationMode

CLOCK_MARGIN_MS = 60_000
"""``to`` left out means the server's now, a moment later than ours: stay this far inside."""


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _cap_ms(rule: dict[str, Any], query: dict[str, Any]) -> int | None:
    caps = []
    if "max_span_ms" in rule:
        caps.append(int(rule["max_span_ms"]))
    if "max_bars" in rule:
        interval = query.get("interval")
        bar_ms = rule["interval_ms"].get(interval) if isinstance(interval, str) else None
        if bar_ms is None:
            return None  # not a valid interval: not a positive case after all
        caps.append(int(rule["max_bars"]) * int(bar_ms))
    return min(caps) if caps else None


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    operation = context.operation
    rule = operation.definition.raw.get("x-range") if operation is not None else None
    meta = case.meta
    if rule is None or meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    query = case.query
    if not query or "from" not in query:
        return case  # the server picks a default range within its caps
    if "interval" not in query and "interval_ms" in rule:
        query = {**query, "interval": "1h"}  # the documented default
    start, end = _integer(query["from"]), _integer(query.get("to"))
    cap = _cap_ms(rule, query)
    if start is None or cap is None or ("to" in query and end is None):
        return case
    now = end is None
    end = int(time.time() * 1000) if end is None else end
    if start < end and end - start <= cap - (CLOCK_MARGIN_MS if now else 0):
        return case
    start = max(0, end - cap + (CLOCK_MARGIN_MS if now else 0))
    wanted = str(start) if isinstance(case.query["from"], str) else start
    case.query = {**case.query, "from": wanted}
    return case
