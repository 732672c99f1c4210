"""What a log line may carry: an exception's traceback, never its frames' local variables."""

from __future__ import annotations

import logging

import orjson
import pytest

from arbengine.logs import configure_logging, get_logger

SECRET = "s3cr3t-exchange-key-do-not-log"


def _fail_with_a_secret_in_scope() -> None:
    api_secret = SECRET  # a local a careless traceback renderer would print
    raise ValueError(f"bad reply ({len(api_secret)} chars)")


@pytest.mark.parametrize("pretty", [False, True])
def test_an_exception_is_logged_with_its_traceback_but_not_its_locals(
    capsys: pytest.CaptureFixture[str], pretty: bool
) -> None:
    configure_logging("info", pretty=pretty)
    try:
        try:
            _fail_with_a_secret_in_scope()
        except ValueError:
            get_logger("test").exception("test.failed")
        out = capsys.readouterr().out
    finally:
        logging.getLogger().handlers.clear()
    assert "test.failed" in out
    assert "_fail_with_a_secret_in_scope" in out  # the traceback is there
    assert SECRET not in out
    if not pretty:
        line = orjson.loads(out.strip().splitlines()[-1])
        assert line["exception"][0]["exc_type"] == "ValueError"
