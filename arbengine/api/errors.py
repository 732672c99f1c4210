"""One error shape for every non-2xx answer: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from aiohttp import web

from arbengine.api.jsonio import json_response


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message, "field": field}}, status=status
    )


class ApiError(Exception):
    """Raised by handlers for a client mistake; turned into a JSON error by the middleware."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.field)
