"""Request id, CORS, JSON errors and security headers: applied to every response."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
import structlog
from aiohttp import web

from arbengine.api.connections import serving
from arbengine.api.http_errors import ApiError, database_unavailable, error_response
from arbengine.logs import get_logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-store",
}

CORS_METHODS = "GET, POST"
CORS_HEADERS = "Authorization, Content-Type, X-Request-Id"
CORS_EXPOSE = "X-Request-Id, Retry-After, WWW-Authenticate"
CORS_MAX_AGE = "600"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}

# The database is down or too slow: the client should retry, not report a bug.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InsufficientResourcesError,
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def make_middleware(cors_origins: Iterable[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    allowed = frozenset(cors_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # From here until the answer the connection is busy, not idle (connections.py).
        with serving(request):
            return await _respond(request, handler, allowed)

    return middleware


async def _respond(
    request: web.Request, handler: Handler, allowed: frozenset[str]
) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id")
    request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    origin = request.headers.get("Origin")
    try:
        if (
            request.method == "OPTIONS"
            and origin
            and "Access-Control-Request-Method" in request.headers
        ):
            response: web.StreamResponse = _preflight(request, origin, allowed)
        else:
            response = await _handle(request, handler, request_id)
        if origin and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE
        if allowed:
            response.headers["Vary"] = "Origin"
        response.headers["X-Request-Id"] = request_id
        response.headers["Server"] = "arbengine"  # no library versions to fingerprint
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
    finally:
        structlog.contextvars.unbind_contextvars("request_id")


def _preflight(request: web.Request, origin: str, allowed: frozenset[str]) -> web.StreamResponse:
    if origin not in allowed:
        return error_response(403, "cors_origin_not_allowed", f"origin {origin!r} is not allowed")
    method = request.headers["Access-Control-Request-Method"]
    if method not in ("GET", "POST"):
        return error_response(403, "cors_method_not_allowed", f"method {method!r} is not allowed")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE,
        },
    )


async def _handle(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return err.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route for {request.path}"
        response = error_response(exc.status, code, message)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except UNAVAILABLE as exc:
        get_logger("api").warning(
            "api.database_unavailable",
            component="api",
            path=request.path,
            error=f"{type(exc).__name__}: {exc}",
        )
        return database_unavailable().response()
    except Exception:
        get_logger("api").exception(
            "api.unhandled_error", component="api", path=request.path, method=request.method
        )
        return error_response(
            500, "internal_error", f"internal error; quote request id {request_id}"
        )
