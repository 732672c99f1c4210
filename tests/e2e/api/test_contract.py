"""schemathesis against /api/openapi.json of a real daemon: no 5xx, no schema violations.

Every operation of the document is exercised with generated valid and invalid
input (the coverage phase's boundary values, then fuzzing), with a real
access token, on a database holding rows of every table the routes read, so
response schemas are checked against real rows and not only empty lists.

A schema-valid request must be accepted (schemathesis's positive-data check
holds for every operation, with no exception): where a rule cannot be written
in JSON Schema (a range's length relates ``from`` to ``to``) the document
states it in ``x-range``, and ``schemathesis_hooks.py`` keeps generated ranges
within it. An invite code the schema allows but the database does not know is
a refusal (403), not an invalid request.

schemathesis runs as its own command line (the way it is run by hand), with
one worker: hypothesis parses lambda sources with ``ast.parse``, which is not
thread-safe on CPython 3.11. The example count is bounded to keep this test
within seconds; ``--seed`` makes a failure reproducible.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import asyncpg
import pytest

from arbengine.api.http_app import all_routes
from tests.e2e.api.harness import ApiUnderTest
from tests.e2e.api.live_seed import seed_live_data
from tests.e2e.api.seed import HOUR, seed_market_data

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
MAX_EXAMPLES = 40
SEED = 20240601


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    api: ApiUnderTest, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    conn = await asyncpg.connect(api.db_url)
    try:
        await seed_market_data(conn, now, (now // HOUR - 3) * HOUR)
        await seed_live_data(conn, now)
    finally:
        await conn.close()
    session = await api.new_user("fuzzer")

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "run",
        f"{api.base}/api/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {session.access}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    out, _ = await asyncio.wait_for(process.communicate(), 240)
    text = out.decode(errors="replace")
    assert process.returncode == 0, text
    # The junit report: one test case per operation, every one run and none failed, but the
    # document itself (schemathesis skips its source).
    [report] = tmp_path.glob("*.xml")
    suites = ElementTree.parse(report).getroot()
    assert {k: suites.get(k) for k in ("errors", "failures", "skipped")} == dict.fromkeys(
        ("errors", "failures", "skipped"), "0"
    ), text
    cases = suites.findall("./testsuite/testcase")
    expected = {f"{r.method} {r.path}" for r in all_routes() if r.path != "/api/openapi.json"}
    assert sorted(c.get("name") for c in cases) == sorted(expected), text
    assert [c.get("name") for c in cases if len(c)] == [], text  # no failure/error/skipped
    # The daemon logged no unhandled error while being fuzzed.
    assert api.daemon.events("api.unhandled_error") == []
