"""Running ``arbengine bench …`` as a user would, in a process of its own, for a short run."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import REPO


@dataclass(frozen=True)
class BenchRun:
    returncode: int
    text: str
    """What it printed (stdout and stderr)."""
    report: dict[str, Any]
    """The ``--json`` report."""

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        return {row["metric"]: row for row in self.report["rows"]}


async def run_bench(name: str, *args: str, database_url: str, cwd: Path) -> BenchRun:
    """``arbengine bench <name> <args>`` on ``database_url`` with the shipped strategies."""
    out = cwd / f"{name}.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", "bench", name, *args,
        "--strategies", str(REPO / "strategies"),
        "--database-url", database_url, "--json", str(out),
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "ARB_CONFIG": str(REPO / "config" / "arbengine.toml")},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 240)
    text = output.decode(errors="replace")
    assert process.returncode is not None
    report = orjson.loads(out.read_bytes()) if out.exists() else {}
    return BenchRun(process.returncode, text, report)
