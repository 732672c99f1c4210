"""``arbengine bench risk``, tiny: the gate's decision times with 100 open positions and the
engine's tick without and with the notifier busy are reported as a table and as JSON
(timing is not judged here)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.conftest import REPO


async def test_a_tiny_risk_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "risk.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", "bench", "risk", "--intents", "2000",
        "--symbols", "2", "--ticks", "4", "--tick-interval", "0.05", "--history-h", "1",
        "--events-per-s", "200", "--json", str(out),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "ARB_CONFIG": str(REPO / "config" / "arbengine.toml")},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode()
    report = json.loads(out.read_bytes())
    rows = {row["metric"]: row for row in report["rows"]}
    missed = [m for m, row in rows.items() if row["passed"] is False]
    assert process.returncode == (1 if missed else 0), text
    assert report["name"] == "risk"
    assert report["params"] == {
        "intents": 2000, "open_positions": 100, "inputs_per_intent": 5,
        "engine_symbols": 2, "ticks": 4, "tick_interval_s": 0.05, "events_per_s": 200,
    }  # fmt: skip
    p50, p99, worst = (rows[f"gate decision {q}"]["value"] for q in ("p50", "p99", "max"))
    assert 0 < p50 <= p99 <= worst, text
    assert rows["gate decision p99"]["target"] == "<= 50"
    assert rows["intents allowed"]["value"] == 2000  # every rule ran: the slowest path
    assert "gate decision p99" in text
    # The notifier's half: the engine tick without and with alerts published meanwhile.
    assert rows["notify.events_published"]["value"] > 0
    for phase in ("without", "with"):
        assert (
            0
            < rows[f"notify.tick_{phase}.p50"]["value"]
            <= rows[f"notify.tick_{phase}.p99"]["value"]
        )
    assert rows["notify.delivered"]["value"] > 0
