"""One error shape for every non-2xx answer: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from aiohttp import web

from arbengine.api.jsonio import json_response


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message, "field": field}},
        status=status,
        headers=headers,
    )


class ApiError(Exception):
    """Raised by handlers for a client mistake; turned into a JSON error by the middleware."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        self.close = close
        """Close the connection after answering (the request was not read to its end)."""

    def response(self) -> web.Response:
        response = error_response(self.status, self.code, self.message, self.field, self.headers)
        if self.close:
            response.force_close()
        return response


def bad_request(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(400, code, message, field)


def unauthorized(code: str, message: str) -> ApiError:
    """401 with the RFC 6750 challenge, so clients know a Bearer token is what is missing."""
    challenge = 'Bearer realm="arbengine"'
    if code != "unauthorized":
        description = message.replace('"', "'")
        challenge += f', error="invalid_token", error_description="{description}"'
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def database_unavailable() -> ApiError:
    """PostgreSQL is away or too slow: the client should retry, not report a bug."""
    return ApiError(
        503,
        "database_unavailable",
        "the database is unavailable or too slow; try again shortly",
        headers={"Retry-After": "5"},
    )


def too_many_requests(message: str, retry_after_s: float) -> ApiError:
    seconds = max(1, int(retry_after_s + 0.999))
    return ApiError(429, "too_many_requests", message, headers={"Retry-After": str(seconds)})
