"""``arbengine bench live`` end to end, tiny: three signals through the live executor on the
loopback sim, every figure reported (timing is not judged here)."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench import run_bench

SPREADS = (
    "signal -> entry order on the wire",
    "entry fill -> stop-loss acknowledged",
    "TP1 fill -> breakeven stop acknowledged",
)


async def test_a_tiny_live_run_reports_every_figure(database_url: str, tmp_path: Path) -> None:
    run = await run_bench(
        "live", "--signals", "3", "--symbols", "BTCUSDT,ETHUSDT", "--pause", "0",
        database_url=database_url, cwd=tmp_path,
    )  # fmt: skip
    rows, text = run.rows, run.text
    assert run.report["name"] == "live", text
    missed = [m for m, row in rows.items() if row["passed"] is False]
    # 1 exactly when a target is missed (timing on a loaded machine is not judged here).
    assert run.returncode == (1 if missed else 0), text
    assert run.report["params"]["signals"] == 3
    assert run.report["params"]["strategy"].startswith("v52 ")
    assert rows["signals traded"]["value"] == 3
    for spread in SPREADS:
        values = [rows[f"{spread} {q}"]["value"] for q in ("p50", "p90", "p99", "max")]
        assert 0 < values[0] <= values[1] <= values[2] <= values[3], (spread, values)
    assert rows["signal -> entry order on the wire p99"]["target"] == "<= 20"
    assert rows["entry fill -> stop-loss acknowledged p99"]["target"] == "<= 100"
    # Each trade's move to breakeven was recorded by the executor, with no unprotected gap.
    moved = rows["breakeven moves recorded (trade.breakeven_moved)"]
    assert (moved["value"], moved["passed"]) == (3, True)
    unprotected = rows["unprotected during the breakeven move, max"]
    assert (unprotected["value"], unprotected["passed"]) == (0, True)
    assert rows["breakeven replace p99"]["value"] > 0
    assert "signal -> entry order on the wire p99" in text  # and the table went to stdout
