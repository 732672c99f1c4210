"""The engine's small error tree.

Callers catch by category, never by message: a ``RetryableError`` may succeed
if tried again later (network, 5xx, 429, database outage); a ``FatalError``
will not (bad configuration, authentication, a rejected signature).
"""

from __future__ import annotations


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
