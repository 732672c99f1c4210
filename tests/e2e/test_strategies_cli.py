"""``arbengine strategies check | schema``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from tests.conftest import REPO


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbengine", "strategies", *args],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip


def test_shipped_strategies_are_valid() -> None:
    result = cli("check")
    assert result.returncode == 0, result.stderr
    assert "v51 ok" in result.stdout
    assert "v52 ok" in result.stdout


def test_errors_are_listed_with_file_and_json_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "name": "x", "symbols": ["BTCUSDT"], "direction": {"feature": "flow_fast", "min": 0.1},
        "factors": [{"feature": "flow_mid", "weight": -1, "full": 0.1}],
        "entry": {"threshold": 50}, "exit": {"sl_atr": 1}, "colour": "red",
    }))  # fmt: skip
    result = cli("check", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert f"{bad}: $.factors[0].weight: must be > 0" in lines
    assert f"{bad}: $.colour: unknown key" in lines
    assert result.stdout == ""


def test_schema_is_draft_2020_12_and_accepts_the_shipped_files() -> None:
    result = cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in (REPO / "strategies").glob("*.json"):
        jsonschema.Draft202012Validator(schema).validate(json.loads(path.read_text()))
