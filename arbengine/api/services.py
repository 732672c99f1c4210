"""What handlers work with: settings-derived parts built once per app, and one call's inputs."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from arbengine.api.cache import ResponseCache
from arbengine.api.client_address import ClientAddresses
from arbengine.api.http_errors import ApiError, unauthorized
from arbengine.api.params import Window
from arbengine.api.ratelimit import LoginThrottle, SlidingWindowLimiter
from arbengine.api.tokens import Passwords, TokenError, TokenService, load_or_create_secret
from arbengine.api.users import UserDirectory, UserState
from arbengine.domain.errors import ConfigError, os_reason
from arbengine.logs import get_logger
from arbengine.settings import Settings

ADMIN_ROLE = "admin"


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool | None
    symbols: tuple[str, ...]
    tokens: TokenService
    passwords: Passwords
    users: UserDirectory | None
    addresses: ClientAddresses
    login_throttle: LoginThrottle
    register_per_ip: SlidingWindowLimiter
    cache: ResponseCache = field(default_factory=ResponseCache)
    wall_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))

    @classmethod
    def build(cls, settings: Settings | None, pool: asyncpg.Pool | None) -> Services:
        log = get_logger("api")
        if settings is None:
            # The bare app of unit tests: an ephemeral key, nothing written to disk.
            settings = Settings()
            secret = secrets.token_urlsafe(48)
        else:
            auth = settings.auth
            try:
                secret, generated = load_or_create_secret(auth.jwt_secret, auth.secret_file)
            except OSError as exc:
                raise ConfigError(
                    f"[auth] secret_file {auth.secret_file}: cannot keep the token signing key "
                    f"there: {os_reason(exc)}"
                ) from None
            if generated:
                log.info("auth.secret_generated", path=auth.secret_file)
        auth = settings.auth
        window = auth.login_window.seconds
        return cls(
            settings=settings,
            pool=pool,
            symbols=tuple(settings.collect.symbols),
            tokens=TokenService(
                secret, int(auth.access_ttl.seconds), int(auth.refresh_ttl.seconds)
            ),
            passwords=Passwords(),
            users=UserDirectory(pool) if pool is not None else None,
            addresses=ClientAddresses(settings.http.trusted_proxies),
            login_throttle=LoginThrottle(
                per_address=auth.login_attempts_per_ip,
                per_account_address=auth.login_attempts_per_account_ip,
                delay_after=auth.login_delay_after,
                delay_initial_s=auth.login_delay_initial.seconds,
                delay_max_s=auth.login_delay_max.seconds,
                window_s=window,
            ),
            register_per_ip=SlidingWindowLimiter(auth.register_attempts_per_ip, window),
        )

    def db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise ApiError(503, "database_unavailable", "this server has no database")
        return self.pool

    async def authenticate(self, request: web.Request) -> UserState:
        """The caller's current state from a Bearer access token, or 401/403."""
        header = request.headers.get("Authorization")
        if not header:
            raise unauthorized("unauthorized", "an Authorization: Bearer token is required")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("invalid_token", "the Authorization header must be 'Bearer <token>'")
        try:
            claims = self.tokens.decode(token.strip(), "access")
        except TokenError as err:
            raise unauthorized(err.code, err.message) from None
        if self.users is None:
            raise ApiError(503, "database_unavailable", "this server has no database")
        user = await self.users.get(claims.user_id)
        if user is None:
            raise unauthorized("invalid_token", "the token's user no longer exists")
        if user.banned:
            raise ApiError(403, "banned", "this account is banned")
        return user

    @staticmethod
    def require_admin(user: UserState | None) -> None:
        """403 with the shared error shape unless ``user`` is an admin (its current role,
        read with the ban flag: a demotion takes effect on the next request)."""
        if user is None or user.role != ADMIN_ROLE:
            raise ApiError(403, "forbidden", "this route is for admins only")


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a handler sees it: validated inputs and, when required, the user."""

    request: web.Request
    services: Services
    query: Any
    body: Any
    user: UserState | None
    window: Window | None = None
    path: Any = None
    """The route's path parameters (``Route.path_params``), validated."""

    @property
    def range(self) -> Window:
        """The resolved ``from``/``to`` of a route whose query has them."""
        assert self.window is not None, "this route takes no time range"
        return self.window

    @property
    def remote(self) -> str:
        """The client's address: the peer, or what a trusted proxy says (see client_address)."""
        return self.services.addresses.of(self.request)

    def now_ms(self) -> int:
        return self.services.wall_ms()
