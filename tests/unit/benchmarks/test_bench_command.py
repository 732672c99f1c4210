"""``arbengine bench``: every benchmark listed and runnable, none imported until it runs."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from arbengine.cli import BENCHMARKS
from tests.conftest import REPO


def python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_building_the_command_line_imports_no_benchmark() -> None:
    loaded = python(
        "import sys\n"
        "from arbengine.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.startswith('arbengine.benchmarks')))\n"
    )
    assert loaded.strip() == "[]"


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_listed_benchmark_imports_and_takes_its_options(name: str) -> None:
    module = importlib.import_module(BENCHMARKS[name][0])  # a missing one fails here, loudly
    assert callable(module.add_arguments)
    assert callable(module.run)
    usage = python(f"from arbengine.cli import main; main(['bench', {name!r}, '--help'])")
    assert usage.startswith(f"usage: arbengine bench {name} [-h] [--json FILE]"), usage
