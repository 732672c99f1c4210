"""The aiohttp application: routes, middleware, and how it is served.

The API reads the daemon's state through ``ApiContext`` callables that the
composition root provides, so this package needs no knowledge of how tasks,
channels or the database are built.

Each route of ``routes.py`` is wrapped once here: the wrapper validates the
query string (and the JSON body), authenticates when the route asks for it,
calls the handler with a ``Call``, and encodes what it returns. Handlers
therefore hold no plumbing, and no route can skip validation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from arbengine import __version__
from arbengine.api.connections import (
    LINGER_S,
    TIMED_OUT,
    Connections,
    GuardedSite,
    descriptor_budget,
    raise_descriptor_limit,
)
from arbengine.api.context import CONTEXT, OPENAPI, ApiContext
from arbengine.api.http_errors import ApiError
from arbengine.api.jsonio import bytes_response, encode
from arbengine.api.middleware import make_middleware
from arbengine.api.openapi import build_document
from arbengine.api.params import Window, parse_body, parse_path, parse_query, resolve_range
from arbengine.api.routes import Route, api_routes, page_routes
from arbengine.api.services import Call, Services
from arbengine.api.site import load_site
from arbengine.domain.errors import CannotListen
from arbengine.logs import get_logger

__all__ = ["CONTEXT", "SERVICES", "ApiContext", "all_routes", "build_app", "serve_http"]

SERVICES = web.AppKey("services", Services)
MAX_BODY_BYTES = 64 * 1024


def all_routes() -> list[Route]:
    return api_routes() + page_routes(load_site())


def _wrap(route: Route, services: Services) -> Callable[[web.Request], Awaitable[web.Response]]:
    ranged = "to" in route.query.__struct_fields__
    check_query = route.validate_query
    body_timeout_s = services.settings.http.body_timeout.seconds

    async def handler(request: web.Request) -> web.Response:
        # Who is asking comes first: an anonymous caller learns nothing from validation.
        user = await services.authenticate(request) if route.authenticated else None
        if route.admin:
            services.require_admin(user)
        query: Any = None
        window: Window | None = None
        if check_query:
            # Routes without parameters still refuse unknown ones (NoQuery has no fields).
            query = parse_query(request.query, route.query, services.symbols)
            if ranged:
                window = resolve_range(query, services.wall_ms())
        path: Any = None
        if route.path_params is not None:
            path = parse_path(request.match_info, route.path_params)
        body: Any = None
        if route.body is not None:
            if request.content_type != "application/json":
                raise ApiError(415, "unsupported_media_type", "send the body as application/json")
            try:
                async with asyncio.timeout(body_timeout_s):
                    raw = await request.read()
            except TimeoutError:
                TIMED_OUT.labels("body").inc()
                raise ApiError(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {body_timeout_s:g} s",
                    close=True,
                ) from None
            body = parse_body(raw, route.body)
        result = await route.handler(Call(request, services, query, body, user, window, path))
        if isinstance(result, web.StreamResponse):
            return result  # type: ignore[return-value]
        status = route.status_of(result) if route.status_of else route.status
        if result is None:
            return web.Response(status=status)
        payload = result if isinstance(result, bytes) else encode(result)
        return bytes_response(payload, status=status)

    handler.__name__ = route.operation_id
    return handler


async def _user_listener(app: web.Application) -> AsyncIterator[None]:
    """Run the ban/role change listener for as long as the app serves (then cancel it)."""
    users = app[SERVICES].users
    task = asyncio.create_task(users.run(), name="api.users") if users else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def build_app(ctx: ApiContext) -> web.Application:
    services = Services.build(ctx.settings, ctx.pool)
    cors = services.settings.http.cors_origins if ctx.settings is not None else []
    app = web.Application(middlewares=[make_middleware(cors)], client_max_size=MAX_BODY_BYTES)
    app[CONTEXT] = ctx
    app[SERVICES] = services
    routes = all_routes()
    for route in routes:
        app.router.add_route(
            route.method, route.path, _wrap(route, services), name=route.operation_id
        )
    document = build_document(routes, version=ctx.version or __version__, symbols=services.symbols)
    app[OPENAPI] = msgspec.json.encode(document)
    app.cleanup_ctx.append(_user_listener)
    return app


@contextlib.asynccontextmanager
async def serve_http(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` until the context exits; yields the bound port (``port=0`` picks one).

    Connections are capped and held to deadlines (connections.py); the cap leaves
    ``[http] descriptor_reserve`` file descriptors to the rest of the process.
    """
    limits = descriptor_budget(app[SERVICES].settings.http, raise_descriptor_limit())
    connections = Connections(limits)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=5.0,
        keepalive_timeout=limits.keepalive_s,
        lingering_time=LINGER_S,
    )
    await runner.setup()
    try:  # cleaned up even when the port is taken: the app's cleanup stops its listeners
        site = GuardedSite(runner, host, port, connections)
        try:
            await site.start()
        except OSError as exc:
            raise CannotListen(host, port, exc) from None
        get_logger("api").info(
            "api.listening",
            component="api",
            max_connections=limits.max_connections,
            keepalive_timeout_s=limits.keepalive_s,
            header_timeout_s=limits.header_s,
            body_timeout_s=limits.body_s,
            send_timeout_s=limits.send_s,
        )
        yield site.bound_port
    finally:
        await runner.cleanup()
