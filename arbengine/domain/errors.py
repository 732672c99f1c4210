"""The engine's small error tree.

Callers catch by category, never by message: a ``RetryableError`` may succeed
if tried again later (network, 5xx, 429, database outage); a ``FatalError``
will not (bad configuration, authentication, a rejected signature).
"""

from __future__ import annotations

import os


class ArbError(Exception):
    """Base of every error the engine raises on purpose."""


class RetryableError(ArbError):
    """Trying again later may succeed."""


def is_retryable(exc: BaseException) -> bool:
    """The supervisor's classifier: an outage to wait out, or a fault to count."""
    return isinstance(exc, RetryableError)


class FatalError(ArbError):
    """Trying again will not help; a person must change something."""


class ConfigError(FatalError):
    """A setting, a strategy file or a command-line value is wrong.

    ``str(err)`` is the single line shown to the user: where, what, what was expected.
    """


class CannotListen(FatalError):
    """An address to serve on is taken or is not this machine's."""

    def __init__(self, host: str, port: int, exc: OSError, what: str = "") -> None:
        where = f"{host}:{port} {what}" if what else f"{host}:{port}"
        super().__init__(f"cannot listen on {where}: {os_reason(exc)}")


def os_reason(exc: OSError) -> str:
    """What went wrong as a person reads it (``address already in use``), without the
    call around it that asyncio or a resolver adds to the message."""
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    text = str(exc.strerror or exc)
    return text[:1].lower() + text[1:]
