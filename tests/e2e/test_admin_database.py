"""``arbengine admin`` opens the database as every one-off command does: when it cannot, the
action ends with exit status 1 and one line, and a usage mistake never tries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port


def admin(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    return subprocess.run(
        [sys.executable, "-m", "arbengine", "admin", *args],
        cwd=tmp_path,
        env={**os.environ, "ARB_DATABASE_URL": url, "ARB_DATABASE_CONNECT_TIMEOUT": "2s"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args", [["list-users"], ["gen-invite"], ["create-admin", "someone", "--password-stdin"]]
)
def test_no_database_is_exit_1_with_one_line(tmp_path: Path, args: list[str]) -> None:
    done = admin(tmp_path, *args, stdin="a long enough password\n")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("arbengine: cannot connect to PostgreSQL (ARB_DATABASE_URL): ")
    assert "Connection refused" in done.stderr
    assert "nobody@" not in done.stderr  # the URL may hold a password: never shown
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_usage_mistake_is_reported_before_connecting(tmp_path: Path) -> None:
    done = admin(tmp_path, "gen-invite", "--count", "0")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == "arbengine: --count must be between 1 and 1000"
