"""Tokens, the signing key file and password hashing, without a server."""

from __future__ import annotations

import base64
import stat
import time
from pathlib import Path

import jwt
import orjson
import pytest

from arbengine.api.tokens import (
    Passwords,
    TokenError,
    TokenService,
    load_or_create_secret,
    token_hash,
)
from arbengine.domain.errors import ConfigError

KEY = "k" * 64  # long enough for HS512 too (used to forge a wrong-algorithm token)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(clock: Clock | None = None) -> TokenService:
    return TokenService(KEY, 900, 30 * 86400, clock=clock or Clock(1_700_000_000))


def test_access_tokens_carry_the_required_claims_and_are_hs256() -> None:
    token = service().issue_access(42)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["sub"] == "42"
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 900
    assert {"iss", "jti"} <= claims.keys()


def test_a_fresh_token_decodes_to_its_user() -> None:
    tokens = TokenService(KEY, 900, 86400)
    claims = tokens.decode(tokens.issue_access(7), "access")
    assert (claims.user_id, claims.type, claims.family) == (7, "access", None)
    refresh = tokens.issue_refresh(7)
    decoded = tokens.decode(refresh.token, "refresh")
    assert decoded.family == refresh.family
    assert refresh.token_hash == token_hash(refresh.token)


def test_refresh_tokens_of_one_family_are_distinct() -> None:
    tokens = service()
    first = tokens.issue_refresh(1)
    second = tokens.issue_refresh(1, first.family)
    assert first.token != second.token  # same second, same family: the jti differs
    assert first.family == second.family


def _expect(code: str, token: str, kind: str = "access") -> None:
    tokens = TokenService(KEY, 900, 86400)
    with pytest.raises(TokenError) as caught:
        tokens.decode(token, kind)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_an_expired_token_is_refused_as_expired() -> None:
    issued_long_ago = service(Clock(1_000_000_000)).issue_access(1)
    _expect("token_expired", issued_long_ago)


def test_a_token_signed_with_another_key_is_refused() -> None:
    other = TokenService("o" * 48, 900, 86400).issue_access(1)
    _expect("invalid_token", other)


def test_alg_none_and_other_algorithms_are_refused() -> None:
    claims = jwt.decode(
        TokenService(KEY, 900, 86400).issue_access(1), options={"verify_signature": False}
    )

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    _expect("invalid_token", f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.")
    _expect("invalid_token", jwt.encode(claims, KEY, algorithm="HS512"))


def test_a_token_of_the_other_type_is_refused() -> None:
    tokens = TokenService(KEY, 900, 86400)
    _expect("invalid_token", tokens.issue_refresh(1).token, "access")
    _expect("invalid_token", tokens.issue_access(1), "refresh")


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "type", "iss"])
def test_a_token_missing_a_required_claim_is_refused(missing: str) -> None:
    claims = jwt.decode(
        TokenService(KEY, 900, 86400).issue_access(1), options={"verify_signature": False}
    )
    del claims[missing]
    _expect("invalid_token", jwt.encode(claims, KEY, algorithm="HS256"))


@pytest.mark.parametrize("sub", ["admin", "-1", "٣", "1" * 19])
def test_a_subject_that_is_not_a_user_id_is_refused(sub: str) -> None:
    claims = jwt.decode(
        TokenService(KEY, 900, 86400).issue_access(1), options={"verify_signature": False}
    )
    _expect("invalid_token", jwt.encode({**claims, "sub": sub}, KEY, algorithm="HS256"))


def test_garbage_is_refused() -> None:
    for text in ("", "abc", "a.b.c", "Ω.Ω.Ω"):
        _expect("invalid_token", text)


def test_the_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "jwt.secret"
    key, generated = load_or_create_secret("", str(path))
    assert generated
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret("", str(path)) == (key, False)
    assert [p.name for p in path.parent.iterdir()] == ["jwt.secret"]  # no temporary left


def test_a_configured_key_wins_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    assert load_or_create_secret(KEY, str(path)) == (KEY, False)
    assert not path.exists()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_text(KEY)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by other users"):
        load_or_create_secret("", str(path))


def test_a_short_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_text("short")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="shorter than 32"):
        load_or_create_secret("", str(path))


async def test_passwords_verify_and_unknown_users_take_the_same_path() -> None:
    passwords = Passwords()
    stored = await passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert await passwords.verify(stored, "correct horse battery") == (True, None)
    assert await passwords.verify(stored, "wrong") == (False, None)
    assert await passwords.verify(None, "anything") == (False, None)
    assert await passwords.verify("not a hash", "anything") == (False, None)


async def test_an_outdated_hash_is_upgraded_on_login() -> None:
    import argon2

    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw-123456")
    ok, upgraded = await Passwords().verify(weak, "pw-123456")
    assert ok
    assert upgraded is not None
    assert upgraded != weak
    assert argon2.PasswordHasher().verify(upgraded, "pw-123456")


def test_a_verified_access_token_still_expires_on_time() -> None:
    clock = Clock(time.time())
    tokens = service(clock)
    token = tokens.issue_access(5)
    assert tokens.decode(token, "access").user_id == 5
    assert tokens.decode(token, "access").user_id == 5  # now from the verified set
    clock.now += 900
    with pytest.raises(TokenError) as caught:
        tokens.decode(token, "access")
    assert caught.value.code == "token_expired"


def test_a_verified_access_token_is_still_not_a_refresh_token() -> None:
    tokens = service(Clock(time.time()))
    token = tokens.issue_access(5)
    tokens.decode(token, "access")
    with pytest.raises(TokenError):
        tokens.decode(token, "refresh")
