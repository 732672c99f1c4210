"""Registration, login, refresh rotation, logout and token attacks, against a real daemon."""

from __future__ import annotations

import base64
import hashlib
import time

import orjson
import pytest

from tests.e2e.api.harness import PASSWORD, ApiUnderTest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_register_returns_working_tokens_and_the_invite_is_single_use(
    api: ApiUnderTest,
) -> None:
    code = await api.invite()
    first = await api.post(
        "/api/register", {"invite_code": code, "username": "Rita_1", "password": PASSWORD}
    )
    assert first.status == 201
    assert first.body["token_type"] == "Bearer"
    assert first.body["expires_in"] == 15 * 60
    assert first.body["refresh_expires_in"] == 30 * 86400
    assert first.body["user"]["username"] == "rita_1"  # stored lower-case
    assert first.body["user"]["role"] == "user"

    me = await api.get("/api/me", token=first.body["access_token"])
    assert me.status == 200
    assert me.body["username"] == "rita_1"

    again = await api.post(
        "/api/register", {"invite_code": code, "username": "rita_2", "password": PASSWORD}
    )
    assert again.status == 403
    assert again.error["code"] == "invalid_invite"
    assert again.error["field"] == "invite_code"
    (used,) = await api.sql("SELECT used_by, used_at FROM invite_codes WHERE code = $1", code)
    assert used["used_by"] == first.body["user"]["id"]
    assert used["used_at"] is not None


async def test_concurrent_registrations_with_one_invite_create_one_user(
    api: ApiUnderTest,
) -> None:
    import asyncio

    code = await api.invite()
    names = [api.unique_name("race") for _ in range(4)]
    replies = await asyncio.gather(
        *(
            api.post("/api/register", {"invite_code": code, "username": n, "password": PASSWORD})
            for n in names
        )
    )
    assert sorted(r.status for r in replies) == [201, 403, 403, 403]
    created = await api.sql("SELECT count(*) AS n FROM users WHERE username = ANY($1)", names)
    assert created[0]["n"] == 1


async def test_an_expired_or_unknown_invite_is_refused(api: ApiUnderTest) -> None:
    expired = await api.invite()
    await api.sql(
        "UPDATE invite_codes SET expires_at = now() - interval '1 minute' WHERE code = $1",
        expired,
    )
    for code in (expired, "no-such-code-000"):
        reply = await api.post(
            "/api/register",
            {"invite_code": code, "username": api.unique_name(), "password": PASSWORD},
        )
        assert reply.status == 403
        assert reply.error == {
            "code": "invalid_invite",
            "message": "the invite code is unknown, used, revoked or expired",
            "field": "invite_code",
        }


async def test_a_taken_username_is_409_and_leaves_the_invite_usable(api: ApiUnderTest) -> None:
    taken = await api.new_user("taken")
    code = await api.invite()
    reply = await api.post(
        "/api/register",
        {"invite_code": code, "username": taken.username.upper(), "password": PASSWORD},
    )
    assert reply.status == 409
    assert reply.error["code"] == "username_taken"
    assert reply.error["field"] == "username"
    (invite,) = await api.sql("SELECT used_at FROM invite_codes WHERE code = $1", code)
    assert invite["used_at"] is None


async def test_a_short_password_is_refused_naming_the_field(api: ApiUnderTest) -> None:
    reply = await api.post(
        "/api/register",
        {"invite_code": await api.invite(), "username": api.unique_name(), "password": "short"},
    )
    assert reply.status == 400
    assert reply.error["field"] == "password"
    assert reply.error["code"] == "invalid_body"


async def test_passwords_are_stored_as_argon2id_and_refresh_tokens_as_sha256(
    api: ApiUnderTest,
) -> None:
    session = await api.new_user()
    (user,) = await api.sql("SELECT password_hash FROM users WHERE id = $1", session.user_id)
    assert user["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in user["password_hash"]
    tokens = await api.sql(
        "SELECT token_hash FROM refresh_tokens WHERE user_id = $1", session.user_id
    )
    assert [t["token_hash"] for t in tokens] == [
        hashlib.sha256(session.refresh.encode()).hexdigest()
    ]


async def test_login_gives_a_token_pair_and_wrong_credentials_are_401(
    api: ApiUnderTest,
) -> None:
    session = await api.new_user()
    ok = await api.post("/api/login", {"username": session.username.upper(), "password": PASSWORD})
    assert ok.status == 200
    assert ok.body["user"]["id"] == session.user_id
    assert ok.body["user"]["last_login_at"] is not None
    assert (await api.get("/api/me", token=ok.body["access_token"])).status == 200

    wrong = await api.post("/api/login", {"username": session.username, "password": "x" * 12})
    nobody = await api.post("/api/login", {"username": "nobody_here", "password": "x" * 12})
    for reply in (wrong, nobody):
        assert reply.status == 401
        assert reply.error == {
            "code": "invalid_credentials",
            "message": "wrong username or password",
            "field": None,
        }


async def test_authenticated_routes_need_a_bearer_token(api: ApiUnderTest) -> None:
    missing = await api.get("/api/me")
    assert missing.status == 401
    assert missing.error["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    basic = await api.get("/api/me", headers={"Authorization": "Basic dTpw"})
    assert basic.status == 401
    assert basic.error["code"] == "invalid_token"


async def test_refresh_rotates_and_a_spent_token_cannot_be_used_again(api: ApiUnderTest) -> None:
    session = await api.new_user()
    first = await api.post("/api/refresh", {"refresh_token": session.refresh})
    assert first.status == 200
    assert first.body["refresh_token"] != session.refresh
    assert (await api.get("/api/me", token=first.body["access_token"])).status == 200

    second = await api.post("/api/refresh", {"refresh_token": first.body["refresh_token"]})
    assert second.status == 200


async def test_reusing_a_spent_refresh_token_revokes_its_whole_family(api: ApiUnderTest) -> None:
    session = await api.new_user()
    other_login = await api.post("/api/login", {"username": session.username, "password": PASSWORD})
    rotated = await api.post("/api/refresh", {"refresh_token": session.refresh})
    assert rotated.status == 200

    replay = await api.post("/api/refresh", {"refresh_token": session.refresh})
    assert replay.status == 401
    assert replay.error["code"] == "refresh_reused"

    successor = await api.post("/api/refresh", {"refresh_token": rotated.body["refresh_token"]})
    assert successor.status == 401
    assert successor.error["code"] == "invalid_token"

    # Another login of the same user is another family, and is left alone.
    elsewhere = await api.post("/api/refresh", {"refresh_token": other_login.body["refresh_token"]})
    assert elsewhere.status == 200


async def test_logout_revokes_the_refresh_token_family(api: ApiUnderTest) -> None:
    session = await api.new_user()
    rotated = await api.post("/api/refresh", {"refresh_token": session.refresh})
    out = await api.post("/api/logout", {"refresh_token": rotated.body["refresh_token"]})
    assert out.status == 204
    assert out.body == b""
    for token in (session.refresh, rotated.body["refresh_token"]):
        reply = await api.post("/api/refresh", {"refresh_token": token})
        assert reply.status == 401
    unknown = await api.post("/api/logout", {"refresh_token": api.forge({"type": "refresh"})})
    assert unknown.status == 401


def _unsigned(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


ATTACKS = {
    "expired": (lambda api, uid: api.forge({"sub": uid, "iat": 1, "exp": 2}), "token_expired"),
    "forged signature": (
        lambda api, uid: api.forge({"sub": uid}, key="not-the-server-key-" * 3),
        "invalid_token",
    ),
    "alg none": (
        lambda api, uid: _unsigned(
            {
                "iss": "arbengine",
                "sub": uid,
                "type": "access",
                "iat": int(time.time()),
                "exp": int(time.time()) + 600,
                "jti": "x",
            }
        ),
        "invalid_token",
    ),
    "other algorithm with the right key": (
        lambda api, uid: api.forge({"sub": uid}, alg="HS512"),
        "invalid_token",
    ),
    "refresh token used as access": (
        lambda api, uid: api.forge({"sub": uid, "type": "refresh", "fam": "f"}),
        "invalid_token",
    ),
    "no expiry": (
        lambda api, uid: _resign_without(api, {"sub": uid}, "exp"),
        "invalid_token",
    ),
    "unknown user": (lambda api, uid: api.forge({"sub": "987654321"}), "invalid_token"),
    "tampered subject": (lambda api, uid: _tamper(api.forge({"sub": uid})), "invalid_token"),
}


def _resign_without(api: ApiUnderTest, claims: dict, dropped: str) -> str:
    import jwt

    token = api.forge(claims)
    payload = jwt.decode(token, options={"verify_signature": False})
    payload.pop(dropped)
    return jwt.encode(payload, api.secret, algorithm="HS256")


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "1"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_token_attacks_are_refused(api: ApiUnderTest, attack: str) -> None:
    session = await api.new_user("victim")
    make, code = ATTACKS[attack]
    token = make(api, str(session.user_id))
    for path in ("/api/me", "/api/stats"):
        reply = await api.get(path, token=token)
        assert reply.status == 401, (attack, path, reply.body)
        assert reply.error["code"] == code


async def test_an_access_token_is_not_a_refresh_token(api: ApiUnderTest) -> None:
    session = await api.new_user()
    reply = await api.post("/api/refresh", {"refresh_token": session.access})
    assert reply.status == 401
    assert reply.error["code"] == "invalid_token"
    assert "access token cannot be used as a refresh token" in reply.error["message"]


async def test_a_ban_applies_at_once_everywhere_and_unban_restores_login(
    api: ApiUnderTest,
) -> None:
    session = await api.new_user("banned")
    assert (await api.get("/api/stats", token=session.access)).status == 200  # now cached

    code, out, err = await api.admin("ban-user", session.username)
    assert (code, err) == (0, "")
    assert out.startswith(f"banned {session.username}")

    for path in ("/api/me", "/api/stats", "/api/snapshots?symbol=BTCUSDT"):
        reply = await api.get(path, token=session.access)
        assert reply.status == 403, path
        assert reply.error["code"] == "banned"
    refresh = await api.post("/api/refresh", {"refresh_token": session.refresh})
    assert refresh.status == 403
    assert refresh.error["code"] == "banned"
    login = await api.post("/api/login", {"username": session.username, "password": PASSWORD})
    assert login.status == 403
    assert login.error["code"] == "banned"

    assert (await api.admin("unban-user", session.username))[0] == 0
    again = await api.post("/api/login", {"username": session.username, "password": PASSWORD})
    assert again.status == 200
    assert (await api.get("/api/me", token=session.access)).status == 200
    # The ban revoked the refresh tokens it found; lifting it does not bring them back.
    stale = await api.post("/api/refresh", {"refresh_token": session.refresh})
    assert stale.status == 401


async def test_a_ban_by_plain_sql_also_applies_at_once(api: ApiUnderTest) -> None:
    session = await api.new_user("sqlban")
    assert (await api.get("/api/me", token=session.access)).status == 200
    await api.sql("UPDATE users SET banned = true WHERE id = $1", session.user_id)
    reply = await api.get("/api/me", token=session.access)
    assert reply.status == 403


async def test_a_deleted_user_is_refused(api: ApiUnderTest) -> None:
    session = await api.new_user("gone")
    assert (await api.get("/api/me", token=session.access)).status == 200
    await api.sql("DELETE FROM users WHERE id = $1", session.user_id)
    reply = await api.get("/api/me", token=session.access)
    assert reply.status == 401
    assert reply.error["code"] == "invalid_token"
