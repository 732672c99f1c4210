"""Errors of exchange calls, by what the caller should do about them.

- ``RetryableExchangeError`` (network, 5xx, 408, 429, 418, -1021 timestamp):
  try again later; the REST client already waits out rate limits and bans
  before its next call.
- ``FatalExchangeError`` (bad signature -1022, auth 401/403, invalid
  parameters): retrying cannot help; stop and tell a person.
- ``OrderOutcomeUnknown``: an order call that failed in a way that does not
  tell whether the order was executed (5xx, timeout, dropped connection).
  Neither retry nor give up: query the order by its client id first.
"""

from __future__ import annotations

from arbengine.domain.errors import ArbError, FatalError, RetryableError


class ExchangeError(ArbError):
    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class RetryableExchangeError(ExchangeError, RetryableError):
    pass


class RateLimited(RetryableExchangeError):
    """HTTP 429 or -1003: slow down; the client pauses every call until ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: float, status: int | None = 429):
        super().__init__(message, status=status, code=-1003)
        self.retry_after_s = retry_after_s


class IpBanned(RetryableExchangeError):
    """HTTP 418: the IP is banned; no call is sent until the ban ends."""

    def __init__(self, message: str, *, retry_after_s: float):
        super().__init__(message, status=418)
        self.retry_after_s = retry_after_s


class TimestampOutsideWindow(RetryableExchangeError):
    """-1021: our clock drifted from the server's; the client resyncs before retrying."""


class FatalExchangeError(ExchangeError, FatalError):
    pass


class BadSignature(FatalExchangeError):
    """-1022: the API secret is wrong (or the request was altered)."""


class InvalidResponse(RetryableExchangeError):
    """A reply that is not the JSON we expect (a proxy error page, a truncated body)."""


class OrderOutcomeUnknown(ExchangeError):
    """The order may or may not have been executed: query it before anything else."""

    def __init__(self, message: str, *, client_order_id: str | None, status: int | None = None):
        super().__init__(message, status=status)
        self.client_order_id = client_order_id
