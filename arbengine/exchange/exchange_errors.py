"""Errors of exchange calls, by what the caller should do about them.

- ``RetryableExchangeError`` (network, 5xx, 408, 429, 418, 403 WAF block,
  -1021 timestamp): try again later; the REST client already waits out rate
  limits, bans and blocks before its next call.
- ``FatalExchangeError`` (bad signature -1022, auth 401, invalid parameters,
  an unexpected HTTP status): retrying cannot help; stop and tell a person.
  ``InvalidSymbol`` (-1121) is the one a caller handles per symbol: the
  exchange does not list that symbol (a typo, a delisting), the others are fine.
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


class WafBlocked(RetryableExchangeError):
    """HTTP 403: the exchange's web application firewall refuses us (often with an HTML page).

    Usually an IP-wide block that lifts by itself: no call is sent until ``retry_after_s``
    has passed, and hammering it would only make it last longer.
    """

    def __init__(self, message: str, *, retry_after_s: float):
        super().__init__(message, status=403)
        self.retry_after_s = retry_after_s


class TimestampOutsideWindow(RetryableExchangeError):
    """-1021: our clock drifted from the server's; the client resyncs before retrying."""


class FatalExchangeError(ExchangeError, FatalError):
    pass


class BadSignature(FatalExchangeError):
    """-1022: the API secret is wrong (or the request was altered)."""


class InvalidSymbol(FatalExchangeError):
    """-1121: the exchange does not list ``symbol``; calls for other symbols are unaffected."""

    def __init__(self, message: str, *, symbol: str | None, status: int | None = 400):
        super().__init__(message, status=status, code=-1121)
        self.symbol = symbol


class UnexpectedStatus(FatalExchangeError):
    """An HTTP status the exchange's API does not use for this call (404, 451, a 3xx …):
    a wrong ``rest_url``, a proxy in between, or a region the exchange refuses."""


class InvalidResponse(RetryableExchangeError):
    """A reply that is not the JSON we expect (a proxy error page, a truncated body)."""


class OrderOutcomeUnknown(ExchangeError):
    """The order may or may not have been executed: query it before anything else."""

    def __init__(self, message: str, *, client_order_id: str | None, status: int | None = None):
        super().__init__(message, status=status)
        self.client_order_id = client_order_id
