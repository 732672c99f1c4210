"""Registration by invite, login, refresh-token rotation, logout, and who am I."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import Counter

from arbengine.api import queries
from arbengine.api.client_address import throttle_key
from arbengine.api.http_errors import ApiError, too_many_requests, unauthorized
from arbengine.api.queries import RegisterOutcome, RotateOutcome
from arbengine.api.ratelimit import Refused
from arbengine.api.schemas import LoginBody, RefreshBody, RegisterBody, Tokens, User
from arbengine.api.services import Call, Services
from arbengine.api.tokens import TokenError, token_hash
from arbengine.logs import get_logger

log = get_logger("api.auth")

LOGINS = Counter(
    "arb_api_logins_total",
    "Login attempts by outcome (ok, failed, or refused by the address / account-address limit)",
    ["outcome"],
)
LOGINS_DELAYED = Counter(
    "arb_api_logins_delayed_total", "Login attempts made to wait: their account is under attack"
)
_REFUSAL_TEXT = {
    "address": "too many failed logins from this address",
    "account_address": "too many failed logins to this account from this address",
}


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
    key = throttle_key(call.remote)
    wait = services.register_per_ip.retry_after(key)
    if wait is not None:
        raise too_many_requests("too many registration attempts from this address", wait)
    services.register_per_ip.hit(key)
    password_hash = await services.passwords.hash(body.password)
    username = body.username.lower()
    outcome, user = await queries.register(services.db(), body.invite_code, username, password_hash)
    if outcome is RegisterOutcome.INVALID_INVITE:
        # Well-formed but not honoured: a refusal (403), not a malformed request (400).
        raise ApiError(
            403,
            "invalid_invite",
            "the invite code is unknown, used, revoked or expired",
            "invite_code",
        )
    if outcome is RegisterOutcome.USERNAME_TAKEN:
        raise ApiError(409, "username_taken", f"the username {username!r} is taken", "username")
    assert user is not None
    log.info("auth.registered", user_id=user["id"], username=username)
    return await _issue(services, user)


async def login(call: Call) -> Tokens:
    body: LoginBody = call.body
    services = call.services
    throttle = services.login_throttle
    username = body.username.lower()
    remote = call.remote
    # Checked and counted in one step, before the first await: concurrent guesses queue up
    # behind the limit instead of all passing a check that none of them has counted yet.
    attempt = throttle.admit(username, throttle_key(remote))
    if isinstance(attempt, Refused):
        LOGINS.labels(f"throttled_{attempt.scope}").inc()
        log.warning("auth.login_throttled", username=username, remote=remote, limit=attempt.scope)
        raise too_many_requests(_REFUSAL_TEXT[attempt.scope], attempt.retry_after_s)
    try:
        if attempt.delay_s > 0:
            LOGINS_DELAYED.inc()
            log.info(
                "auth.login_delayed", username=username, remote=remote, delay_s=attempt.delay_s
            )
            await asyncio.sleep(attempt.delay_s)
        row = await queries.user_by_name(services.db(), username)
        ok, new_hash = await services.passwords.verify(
            row["password_hash"] if row else None, body.password
        )
    except BaseException:
        throttle.abandoned(attempt)
        raise
    if not ok or row is None:
        throttle.failed(attempt)
        LOGINS.labels("failed").inc()
        log.info("auth.login_failed", username=username, remote=remote)
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    throttle.succeeded(attempt)
    LOGINS.labels("ok").inc()
    if row["banned"]:
        raise ApiError(403, "banned", "this account is banned")
    user = await queries.record_login(services.db(), row["id"], new_hash)
    log.info("auth.logged_in", user_id=row["id"], remote=remote)
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
