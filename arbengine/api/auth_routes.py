"""Registration by invite, login, refresh-token rotation, logout, and who am I."""

from __future__ import annotations

import asyncpg

from arbengine.api import queries
from arbengine.api.auth import TokenError, token_hash
from arbengine.api.errors import ApiError, bad_request, too_many_requests, unauthorized
from arbengine.api.queries import RegisterOutcome, RotateOutcome
from arbengine.api.schemas import LoginBody, RefreshBody, RegisterBody, Tokens, User
from arbengine.api.services import Call, Services
from arbengine.logs import get_logger

log = get_logger("api.auth")


def user_shape(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
    )


async def _issue(services: Services, user: asyncpg.Record) -> Tokens:
    refresh = services.tokens.issue_refresh(user["id"])
    await queries.store_refresh(
        services.db(), user["id"], refresh.family, refresh.token_hash, refresh.expires_at
    )
    return Tokens(
        access_token=services.tokens.issue_access(user["id"]),
        refresh_token=refresh.token,
        expires_in=services.tokens.access_ttl_s,
        refresh_expires_in=services.tokens.refresh_ttl_s,
        user=user_shape(user),
    )


async def register(call: Call) -> Tokens:
    body: RegisterBody = call.body
    services = call.services
    wait = services.register_per_ip.retry_after(call.remote)
    if wait is not None:
        raise too_many_requests("too many registration attempts from this address", wait)
    services.register_per_ip.hit(call.remote)
    password_hash = await services.passwords.hash(body.password)
    username = body.username.lower()
    outcome, user = await queries.register(services.db(), body.invite_code, username, password_hash)
    if outcome is RegisterOutcome.INVALID_INVITE:
        raise bad_request(
            "invalid_invite", "the invite code is unknown, used or expired", "invite_code"
        )
    if outcome is RegisterOutcome.USERNAME_TAKEN:
        raise ApiError(409, "username_taken", f"the username {username!r} is taken", "username")
    assert user is not None
    log.info("auth.registered", user_id=user["id"], username=username)
    return await _issue(services, user)


async def login(call: Call) -> Tokens:
    body: LoginBody = call.body
    services = call.services
    username = body.username.lower()
    for limiter, key, what in (
        (services.login_per_ip, call.remote, "from this address"),
        (services.login_per_account, username, "for this account"),
    ):
        wait = limiter.retry_after(key)
        if wait is not None:
            log.warning("auth.login_throttled", username=username, remote=call.remote)
            raise too_many_requests(f"too many failed logins {what}", wait)
    row = await queries.user_by_name(services.db(), username)
    ok, new_hash = await services.passwords.verify(
        row["password_hash"] if row else None, body.password
    )
    if not ok or row is None:
        services.login_per_ip.hit(call.remote)
        services.login_per_account.hit(username)
        log.info("auth.login_failed", username=username, remote=call.remote)
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    if row["banned"]:
        raise ApiError(403, "banned", "this account is banned")
    services.login_per_account.reset(username)
    user = await queries.record_login(services.db(), row["id"], new_hash)
    log.info("auth.logged_in", user_id=row["id"])
    return await _issue(services, user)


async def refresh(call: Call) -> Tokens:
    body: RefreshBody = call.body
    services = call.services
    try:
        claims = services.tokens.decode(body.refresh_token, "refresh")
    except TokenError as err:
        raise unauthorized(err.code, err.message) from None
    assert claims.family is not None
    successor = services.tokens.issue_refresh(claims.user_id, claims.family)
    rotation = await queries.rotate_refresh(
        services.db(),
        token_hash(body.refresh_token),
        claims.family,
        successor.token_hash,
        successor.expires_at,
    )
    match rotation.outcome:
        case RotateOutcome.OK:
            pass
        case RotateOutcome.REUSED:
            log.warning("auth.refresh_reused", user_id=claims.user_id, family=claims.family)
            raise unauthorized(
                "refresh_reused",
                "this refresh token was already used; every session of its login is revoked",
            )
        case RotateOutcome.BANNED:
            raise ApiError(403, "banned", "this account is banned")
        case RotateOutcome.REVOKED:
            raise unauthorized("invalid_token", "this refresh token was revoked")
        case RotateOutcome.EXPIRED:
            raise unauthorized("token_expired", "the refresh token has expired")
        case _:
            raise unauthorized("invalid_token", "this refresh token is not known")
    assert rotation.user is not None
    return Tokens(
        access_token=services.tokens.issue_access(claims.user_id),
        refresh_token=successor.token,
        expires_in=services.tokens.access_ttl_s,
        refresh_expires_in=services.tokens.refresh_ttl_s,
        user=user_shape(rotation.user),
    )


async def logout(call: Call) -> None:
    """Revoke the refresh token's whole family (this login on every device it reached).

    Access tokens already issued stay valid until they expire (at most
    ``access_ttl``); a ban, by contrast, applies at once.
    """
    body: RefreshBody = call.body
    user_id: int | None = None
    try:
        user_id = call.services.tokens.decode(body.refresh_token, "refresh").user_id
    except TokenError as err:
        # An expired token is still ours (its signature was checked): let it end its family.
        if err.code != "token_expired":
            raise unauthorized(err.code, err.message) from None
    if not await queries.revoke_family_of(call.services.db(), token_hash(body.refresh_token)):
        raise unauthorized("invalid_token", "this refresh token is not known")
    log.info("auth.logged_out", user_id=user_id)


async def me(call: Call) -> User:
    assert call.user is not None
    row = await queries.user_by_id(call.services.db(), call.user.id)
    if row is None:
        raise unauthorized("invalid_token", "the token's user no longer exists")
    return user_shape(row)
