"""Tokens (PyJWT), password hashes (argon2) and the signing key.

Nothing here is hand-rolled: PyJWT signs and verifies, with the algorithm
pinned to HS256 so a token naming ``none`` or another algorithm is refused
before its claims are read; argon2-cffi hashes with its RFC 9106 defaults and
says when a stored hash should be upgraded.

Access tokens are stateless and live ``access_ttl`` (15 min). Refresh tokens
are also JWTs, but each one is recorded (as a SHA-256 of the token) in
``refresh_tokens`` and may be used once: using one issues its successor in the
same family, and using one a second time revokes the family (the token was
copied; whoever holds the successor must log in again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import argon2
import jwt

from arbengine.domain.errors import ConfigError

ALGORITHM = "HS256"
ISSUER = "arbengine"
TokenType = Literal["access", "refresh"]
MIN_SECRET_LENGTH = 32
VERIFIED_CACHE_SIZE = 10_000


def load_or_create_secret(configured: str, secret_file: str) -> tuple[str, bool]:
    """The signing key: the configured one, else the kept one, else a new one kept for next time.

    Returns the key and whether it was generated now. The file is created with
    mode 0600 in one step (a temporary file linked into place), so a second
    process starting at the same moment reads a complete key, never half of one.
    """
    if configured:
        return configured, False
    path = Path(secret_file)
    try:
        return _read_secret(path), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_urlsafe(48)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_secret(path), False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return key, True


def _read_secret(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: the token signing key is readable by other users "
            f"(mode {stat.S_IMODE(mode):o}); run chmod 600 {path}"
        )
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{path}: the token signing key is shorter than 32 characters")
    return key


class TokenError(Exception):
    """A token that must not be honoured; ``code`` is what the client is told."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    type: TokenType
    issued_at: int
    expires_at: int
    family: str | None


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    token: str
    token_hash: str
    family: str
    expires_at: int


def token_hash(token: str) -> str:
    """What ``refresh_tokens`` stores: a leaked table gives no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(
        self,
        secret: str,
        access_ttl_s: int,
        refresh_ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self._clock = clock
        # Verified access tokens. A token that verified once verifies until it expires (the
        # key never changes while we run), so repeat requests skip PyJWT, which costs about
        # 30 µs a call: half the time of a cached route. Expiry is still checked on each hit.
        self._verified: dict[str, Claims] = {}

    def _encode(self, user_id: int, kind: TokenType, ttl_s: int, **extra: str) -> tuple[str, int]:
        now = int(self._clock())
        expires = now + ttl_s
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "type": kind,
            "iat": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires

    def issue_access(self, user_id: int) -> str:
        return self._encode(user_id, "access", self.access_ttl_s)[0]

    def issue_refresh(self, user_id: int, family: str | None = None) -> IssuedRefresh:
        family = family or str(uuid.uuid4())
        token, expires = self._encode(user_id, "refresh", self.refresh_ttl_s, fam=family)
        return IssuedRefresh(token, token_hash(token), family, expires)

    def decode(self, token: str, expected: TokenType) -> Claims:
        """Verified claims, or TokenError saying why the token is refused."""
        known = self._verified.get(token)
        if known is not None and known.type == expected:
            if self._clock() < known.expires_at:
                return known
            del self._verified[token]
            raise TokenError("token_expired", f"the {expected} token has expired")
        claims = self._verify(token, expected)
        if expected == "access":
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = claims
        return claims

    def _verify(self, token: str, expected: TokenType) -> Claims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "type", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token_expired", f"the {expected} token has expired") from None
        except jwt.InvalidSignatureError:
            raise TokenError("invalid_token", "the token signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError("invalid_token", f"tokens must be signed with {ALGORITHM}") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError("invalid_token", f"the token is not valid: {exc}") from None
        kind = claims.get("type")
        if kind != expected:
            raise TokenError(
                "invalid_token", f"a {kind} token cannot be used as a {expected} token"
            )
        sub = claims["sub"]
        if not (sub.isascii() and sub.isdigit()) or len(sub) > 18:
            raise TokenError("invalid_token", "the token subject is not a user id")
        family = claims.get("fam")
        if expected == "refresh" and not isinstance(family, str):
            raise TokenError("invalid_token", "the refresh token names no family")
        return Claims(int(sub), kind, int(claims["iat"]), int(claims["exp"]), family)


class Passwords:
    """argon2id hashing off the event loop, at most ``concurrency`` at a time.

    Each hash takes tens of milliseconds and 64 MiB; the bound keeps a burst of
    logins from starving the loop's thread pool or the machine's memory.
    """

    def __init__(self, concurrency: int = 2) -> None:
        self._hasher = argon2.PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """Whether ``password`` matches, and a new hash when the stored one is outdated.

        With no stored hash (no such user) a dummy one is checked, so the answer
        takes as long as for a real user and does not reveal who exists.
        """
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            stored = self._dummy
            real = False
        else:
            real = True
        async with self._slots:
            ok = await asyncio.to_thread(self._check, stored, password)
        if not (ok and real):
            return False, None
        if self._hasher.check_needs_rehash(stored):
            return True, await self.hash(password)
        return True, None

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def hash_sync(self, password: str) -> str:
        """For the admin command line, which has no event loop to spare."""
        return self._hasher.hash(password)
