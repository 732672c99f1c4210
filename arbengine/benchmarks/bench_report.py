"""The shape every benchmark reports in, so ``arbengine bench`` prints and saves them alike.

A benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> BenchReport``;
``arbengine bench NAME`` prints the report as a table and ``--json FILE`` saves it.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class BenchRow:
    metric: str
    value: float
    unit: str
    target: str = ""
    """Human statement of the goal, e.g. '>= 100000'; empty when there is none."""
    passed: bool | None = None


@dataclass(frozen=True)
class BenchReport:
    name: str
    rows: list[BenchRow]
    params: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(
        default_factory=lambda: {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        }
    )
    finished_at: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    def to_table(self) -> str:
        header = ("metric", "value", "unit", "target", "ok")
        body = [
            (
                r.metric,
                f"{r.value:,.3f}" if abs(r.value) < 1000 else f"{r.value:,.0f}",
                r.unit,
                r.target,
                "" if r.passed is None else ("yes" if r.passed else "NO"),
            )
            for r in self.rows
        ]
        widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
        lines = [f"benchmark: {self.name}  " + " ".join(f"{k}={v}" for k, v in self.params.items())]
        for row in [header, *body]:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        return "\n".join(lines)
