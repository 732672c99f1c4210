"""The exchange credentials never appear in the daemon's output, errors and stop included."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.collect.conftest import Run, fault

API_KEY = "kEy7Qm2vXbN4pLr9TzW6sHc3YdJ8uFa5"
API_SECRET = "sEcR3tG8hK2mP5wQ9xZ4vB7nC1jL6tYr"


@pytest.mark.settings({"ARB_EXCHANGE_API_KEY": API_KEY, "ARB_EXCHANGE_API_SECRET": API_SECRET})
async def test_no_output_line_holds_the_api_key_or_secret(run: Run) -> None:
    await run.advance(2)
    # The paths that report trouble: a rate limit, a server error, a dropped stream.
    await fault(
        run.sim,
        {
            "rest_429": {"count": 1, "retry_after": 1},
            "http_5xx": {"count": 2, "status": 503, "path": "/fapi/v1/"},
            "drop_ws": {"which": "market", "mode": "abort"},
        },
    )
    await run.advance(3)
    for event in ("rest.rate_limited", "stream.reconnecting"):
        await run.daemon.wait_for(event)
    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(60) == 0

    assert run.daemon.env["ARB_EXCHANGE_API_SECRET"] == API_SECRET  # the daemon had them
    assert len(run.daemon.raw) > 20
    leaks = [line for line in run.daemon.raw if API_SECRET in line or API_KEY in line]
    assert leaks == []
