"""The admin routes against a real daemon: users (list, ban, unban, role), invite codes
(make, list, revoke), the audit; who may call them, what they refuse, and races between
admins."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
from typing import Any

import orjson
import pytest

from tests.e2e.api.harness import PASSWORD, ApiUnderTest, Reply, Session

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/api/admin/users", None),
    ("POST", "/api/admin/users/1/ban", None),
    ("POST", "/api/admin/users/1/unban", None),
    ("POST", "/api/admin/users/1/role", {"role": "admin"}),
    ("GET", "/api/admin/invites", None),
    ("POST", "/api/admin/invites", {}),
    ("POST", "/api/admin/invites/abcdefgh12/revoke", None),
    ("GET", "/api/admin/audit", None),
]


async def new_admin(api: ApiUnderTest) -> Session:
    """A registered user made admin in the database before their first request (so the
    daemon has no state of them cached yet)."""
    session = await api.new_user("admin")
    await api.sql("UPDATE users SET role = 'admin' WHERE id = $1", session.user_id)
    return session


async def audit_of(api: ApiUnderTest, target: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(who, action, result, detail) of the audit rows about ``target``, oldest first."""
    rows = await api.sql(
        "SELECT who, action, result, detail::text AS detail FROM admin_audit "
        "WHERE target = $1 ORDER BY id",
        target,
    )
    return [(r["who"], r["action"], r["result"], orjson.loads(r["detail"])) for r in rows]


def status_and_code(reply: Reply) -> tuple[int, str | None]:
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    return reply.status, error["code"] if error else None


# -- who may call ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
async def test_anonymous_callers_get_401_and_users_403_before_anything_is_read(
    api: ApiUnderTest, method: str, path: str, body: Any
) -> None:
    user = await api.new_user("plain")
    before = (await api.sql("SELECT count(*) AS n FROM admin_audit"))[0]["n"]
    anonymous = await api.request(method, path, json=body)
    assert status_and_code(anonymous) == (401, "unauthorized")
    refused = await api.request(method, path, json=body, token=user.access)
    assert status_and_code(refused) == (403, "forbidden")
    # Nonsense in the path, the query or the body is not looked at for a non-admin.
    garbled = path.replace("/1/", "/not-an-id/").replace("abcdefgh12", "!")
    nonsense = await api.request(
        method,
        garbled + "?limit=0",
        data=b"{not json",
        headers={"Content-Type": "text/plain"},
        token=user.access,
    )
    assert status_and_code(nonsense) == (403, "forbidden")
    assert (await api.sql("SELECT count(*) AS n FROM admin_audit"))[0]["n"] == before


# -- users ----------------------------------------------------------------------------------


async def test_users_are_listed_with_role_ban_last_login_and_sessions(api: ApiUnderTest) -> None:
    admin = await new_admin(api)
    user = await api.new_user("listed")
    for _ in range(2):  # two more logins: three sessions with the registration's
        login = await api.post("/api/login", {"username": user.username, "password": PASSWORD})
        assert login.status == 200
    logout = await api.post("/api/logout", {"refresh_token": user.refresh})
    assert logout.status == 204

    reply = await api.get("/api/admin/users?limit=1000", admin.access)
    assert reply.status == 200, reply.body
    rows = {row["username"]: row for row in reply.body["rows"]}
    listed = rows[user.username]
    assert set(listed) == {
        "id",
        "username",
        "role",
        "banned",
        "created_at",
        "last_login_at",
        "active_sessions",
    }
    assert (listed["id"], listed["role"], listed["banned"]) == (user.user_id, "user", False)
    assert listed["active_sessions"] == 2
    assert listed["last_login_at"] is not None
    assert rows[admin.username]["role"] == "admin"
    assert reply.body["next_after"] is None
    ids = [row["id"] for row in reply.body["rows"]]
    assert ids == sorted(ids)


async def test_users_are_paged_by_id(api: ApiUnderTest) -> None:
    admin = await new_admin(api)
    for _ in range(3):
        await api.new_user("paged")
    everyone = [r["id"] for r in await api.sql("SELECT id FROM users ORDER BY id")]
    seen: list[int] = []
    after: int | None = None
    while True:
        query = "limit=2" + (f"&after={after}" if after is not None else "")
        page = await api.get(f"/api/admin/users?{query}", admin.access)
        assert page.status == 200, page.body
        assert len(page.body["rows"]) <= 2
        seen += [row["id"] for row in page.body["rows"]]
        after = page.body["next_after"]
        if after is None:
            break
        assert after == seen[-1]
    assert seen == everyone


async def test_a_ban_stops_the_users_tokens_at_once_and_asking_twice_is_safe(
    api: ApiUnderTest,
) -> None:
    admin = await new_admin(api)
    user = await api.new_user("banned")
    second = await api.post("/api/login", {"username": user.username, "password": PASSWORD})
    assert (await api.get("/api/me", user.access)).status == 200  # its state now cached

    ban = await api.post(f"/api/admin/users/{user.user_id}/ban", token=admin.access)
    assert ban.status == 200, ban.body
    assert ban.body["result"] == "done"
    assert ban.body["sessions_revoked"] == 2
    assert (ban.body["user"]["banned"], ban.body["user"]["active_sessions"]) == (True, 0)
    # At once: the very next request with the user's access token is refused.
    for path in ("/api/me", "/api/stats"):
        assert status_and_code(await api.get(path, user.access)) == (403, "banned")
    for refresh in (user.refresh, second.body["refresh_token"]):
        answer = await api.post("/api/refresh", {"refresh_token": refresh})
        assert status_and_code(answer) == (403, "banned")
    login = await api.post("/api/login", {"username": user.username, "password": PASSWORD})
    assert status_and_code(login) == (403, "banned")

    again = await api.post(f"/api/admin/users/{user.user_id}/ban", token=admin.access)
    assert again.status == 200
    assert (again.body["result"], again.body["sessions_revoked"]) == ("unchanged", 0)
    assert again.body["user"]["banned"] is True

    unban = await api.post(f"/api/admin/users/{user.user_id}/unban", token=admin.access)
    assert (unban.status, unban.body["result"], unban.body["user"]["banned"]) == (
        200,
        "done",
        False,
    )
    assert (await api.get("/api/me", user.access)).status == 200
    # The sessions the ban revoked stay revoked: the user logs in again.
    stale = await api.post("/api/refresh", {"refresh_token": user.refresh})
    assert stale.status == 401
    unban_again = await api.post(f"/api/admin/users/{user.user_id}/unban", token=admin.access)
    assert (unban_again.status, unban_again.body["result"]) == (200, "unchanged")

    who = f"admin:{admin.username}"
    assert await audit_of(api, user.username) == [
        (who, "ban", "done", {"user_id": user.user_id, "sessions_revoked": 2}),
        (who, "ban", "unchanged", {"user_id": user.user_id, "sessions_revoked": 0}),
        (who, "unban", "done", {"user_id": user.user_id}),
        (who, "unban", "unchanged", {"user_id": user.user_id}),
    ]
    logged = [e for e in api.daemon.events("admin.ban") if e["username"] == user.username]
    assert [(e["who"], e["result"], e["sessions_revoked"]) for e in logged] == [
        (who, "done", 2),
        (who, "unchanged", 0),
    ]
    assert [e["result"] for e in api.daemon.events("admin.unban") if e["user_id"] == user.user_id]


async def test_a_role_change_applies_from_the_next_request(api: ApiUnderTest) -> None:
    admin = await new_admin(api)
    user = await api.new_user("promoted")
    assert (await api.get("/api/admin/users", user.access)).status == 403  # cached as a user

    promote = await api.post(
        f"/api/admin/users/{user.user_id}/role", {"role": "admin"}, token=admin.access
    )
    assert (promote.status, promote.body["result"]) == (200, "done")
    assert promote.body["user"]["role"] == "admin"
    assert (await api.get("/api/admin/users", user.access)).status == 200
    same = await api.post(
        f"/api/admin/users/{user.user_id}/role", {"role": "admin"}, token=admin.access
    )
    assert (same.status, same.body["result"]) == (200, "unchanged")

    demote = await api.post(
        f"/api/admin/users/{user.user_id}/role", {"role": "user"}, token=admin.access
    )
    assert (demote.status, demote.body["user"]["role"]) == (200, "user")
    assert status_and_code(await api.get("/api/admin/users", user.access)) == (403, "forbidden")
    assert [
        (a, r, d["before"], d["after"]) for _, a, r, d in await audit_of(api, user.username)
    ] == [
        ("set_role", "done", "user", "admin"),
        ("set_role", "unchanged", "admin", "admin"),
        ("set_role", "done", "admin", "user"),
    ]
    assert [
        e["role"] for e in api.daemon.events("admin.set_role") if e["user_id"] == user.user_id
    ] == [
        "admin",
        "admin",
        "user",
    ]


async def test_an_admin_cannot_ban_or_demote_themself(api: ApiUnderTest) -> None:
    admin = await new_admin(api)
    own = f"/api/admin/users/{admin.user_id}"
    ban = await api.post(f"{own}/ban", token=admin.access)
    assert status_and_code(ban) == (409, "self_ban")
    assert "yourself" in ban.error["message"]
    demote = await api.post(f"{own}/role", {"role": "user"}, token=admin.access)
    assert status_and_code(demote) == (409, "self_demotion")
    assert "always keeps an admin" in demote.error["message"]
    stay = await api.post(f"{own}/role", {"role": "admin"}, token=admin.access)
    assert (stay.status, stay.body["result"]) == (200, "unchanged")

    (me,) = await api.sql("SELECT role, banned FROM users WHERE id = $1", admin.user_id)
    assert (me["role"], me["banned"]) == ("admin", False)
    assert (await api.get("/api/admin/users", admin.access)).status == 200
    assert [(a, r, d.get("reason")) for _, a, r, d in await audit_of(api, admin.username)] == [
        ("ban", "refused", "self_ban"),
        ("set_role", "refused", "self_demotion"),
        ("set_role", "unchanged", None),
    ]


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        ("/api/admin/users/999999999/ban", None, "not_found", "id"),
        ("/api/admin/users/999999999/unban", None, "not_found", "id"),
        ("/api/admin/users/999999999/role", {"role": "user"}, "not_found", "id"),
        ("/api/admin/users/abc/ban", None, "invalid_parameter", "id"),
        ("/api/admin/users/0/unban", None, "invalid_parameter", "id"),
        ("/api/admin/users/1.5/ban", None, "invalid_parameter", "id"),
        ("/api/admin/users/99999999999999999999/ban", None, "invalid_parameter", "id"),
        ("/api/admin/users/1/role", {"role": "root"}, "invalid_body", "role"),
        ("/api/admin/users/1/role", {"role": "user", "banned": True}, "invalid_body", "banned"),
        ("/api/admin/users/1/role", {}, "invalid_body", "role"),
    ],
)
async def test_an_unknown_user_is_404_and_a_bad_id_or_body_400_naming_the_field(
    api: ApiUnderTest, path: str, body: Any, code: str, field: str
) -> None:
    admin = await new_admin(api)
    reply = await api.post(path, body, token=admin.access)
    status = 404 if code == "not_found" else 400
    assert (reply.status, reply.error["code"], reply.error["field"]) == (status, code, field)
    assert len(reply.error["message"].splitlines()) == 1


# -- invites ---------------------------------------------------------------------------------


async def test_invites_are_made_listed_used_and_revoked(api: ApiUnderTest) -> None:
    admin = await new_admin(api)
    made = await api.post(
        "/api/admin/invites",
        {"count": 2, "expires_in": 3600, "note": "for the desk"},
        token=admin.access,
    )
    assert made.status == 201, made.body
    codes = [row["code"] for row in made.body["rows"]]
    assert len(set(codes)) == 2
    for row in made.body["rows"]:
        assert (row["status"], row["created_by"], row["note"]) == (
            "usable",
            admin.username,
            "for the desk",
        )
        life = dt.datetime.fromisoformat(row["expires_at"]) - dt.datetime.fromisoformat(
            row["created_at"]
        )
        assert life == dt.timedelta(hours=1)
        assert (row["used_by"], row["used_at"], row["revoked_at"]) == (None, None, None)

    name = api.unique_name("invited")
    registered = await api.post(
        "/api/register", {"invite_code": codes[0], "username": name, "password": PASSWORD}
    )
    assert registered.status == 201
    listed = await api.get("/api/admin/invites?limit=1000", admin.access)
    by_code = {row["code"]: row for row in listed.body["rows"]}
    assert (by_code[codes[0]]["status"], by_code[codes[0]]["used_by"]) == ("used", name)
    assert by_code[codes[1]]["status"] == "usable"

    used = await api.post(f"/api/admin/invites/{codes[0]}/revoke", token=admin.access)
    assert status_and_code(used) == (409, "invite_used")
    revoked = await api.post(f"/api/admin/invites/{codes[1]}/revoke", token=admin.access)
    assert (revoked.status, revoked.body["result"]) == (200, "done")
    assert revoked.body["invite"]["status"] == "revoked"
    assert revoked.body["invite"]["revoked_at"] is not None
    again = await api.post(f"/api/admin/invites/{codes[1]}/revoke", token=admin.access)
    assert (again.status, again.body["result"]) == (200, "unchanged")
    refused = await api.post(
        "/api/register",
        {"invite_code": codes[1], "username": api.unique_name(), "password": PASSWORD},
    )
    assert status_and_code(refused) == (403, "invalid_invite")

    only_revoked = await api.get("/api/admin/invites?status=revoked", admin.access)
    assert codes[1] in {row["code"] for row in only_revoked.body["rows"]}
    assert {row["status"] for row in only_revoked.body["rows"]} == {"revoked"}
    who = f"admin:{admin.username}"
    assert [(w, a, r) for w, a, r, _ in await audit_of(api, codes[1])] == [
        (who, "revoke_invite", "done"),
        (who, "revoke_invite", "unchanged"),
    ]
    assert await audit_of(api, codes[0]) == [
        (who, "revoke_invite", "refused", {"reason": "invite_used"})
    ]
    (creation,) = [row for row in await audit_of(api, "2 invite codes") if row[0] == who]
    assert creation[1:3] == ("create_invites", "done")
    assert sorted(creation[3]["codes"]) == sorted(codes)
    assert creation[3]["note"] == "for the desk"
    logged = [e for e in api.daemon.events("admin.create_invites") if e["who"] == who]
    assert [(e["count"], e["expires_in_s"], e["result"]) for e in logged] == [(2, 3600, "done")]
    assert not any(code in str(logged) for code in codes)  # an unused code is never logged


async def test_invites_are_paged_newest_first(api: ApiUnderTest) -> None:
    admin = await new_admin(api)
    for _ in range(3):
        made = await api.post("/api/admin/invites", {"count": 2}, token=admin.access)
        assert made.status == 201
    everyone = [
        r["code"]
        for r in await api.sql("SELECT code FROM invite_codes ORDER BY created_at DESC, code DESC")
    ]
    seen: list[str] = []
    after: str | None = None
    while True:
        query = "limit=3" + (f"&after={after}" if after is not None else "")
        page = await api.get(f"/api/admin/invites?{query}", admin.access)
        assert page.status == 200, page.body
        seen += [row["code"] for row in page.body["rows"]]
        after = page.body["next_after"]
        if after is None:
            break
    assert seen == everyone
    unknown = await api.get("/api/admin/invites?after=no-such-code-0", admin.access)
    assert (unknown.status, unknown.error["code"], unknown.error["field"]) == (
        404,
        "not_found",
        "after",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": 1001}, "count"),
        ({"count": "2"}, "count"),
        ({"expires_in": 59}, "expires_in"),
        ({"expires_in": 3651 * 86_400}, "expires_in"),
        ({"note": ""}, "note"),
        ({"note": "x" * 201}, "note"),
        ({"note": "a\u0000b"}, "note"),
        ({"code": "mine-please"}, "code"),
    ],
)
async def test_invite_body_mistakes_are_400_naming_the_field(
    api: ApiUnderTest, body: dict[str, Any], field: str
) -> None:
    admin = await new_admin(api)
    reply = await api.post("/api/admin/invites", body, token=admin.access)
    assert (reply.status, reply.error["code"], reply.error["field"]) == (
        400,
        "invalid_body",
        field,
    )


@pytest.mark.parametrize(
    ("code", "status", "field"),
    [("no-such-code-000", 404, "code"), ("short", 400, "code"), ("bad%21code%21", 400, "code")],
)
async def test_revoking_an_unknown_or_malformed_code(
    api: ApiUnderTest, code: str, status: int, field: str
) -> None:
    admin = await new_admin(api)
    reply = await api.post(f"/api/admin/invites/{code}/revoke", token=admin.access)
    assert (reply.status, reply.error["field"]) == (status, field), reply.body


# -- the audit -----------------------------------------------------------------------------


async def test_the_audit_lists_every_action_latest_first_command_line_included(
    api: ApiUnderTest,
) -> None:
    admin = await new_admin(api)
    user = await api.new_user("audited")
    ban = await api.post(f"/api/admin/users/{user.user_id}/ban", token=admin.access)
    assert ban.status == 200
    code, out, err = await api.admin("unban-user", user.username)
    assert (code, out.strip(), err) == (0, f"unbanned {user.username}", "")
    code, out, _ = await api.admin("unban-user", user.username)
    assert (code, out.strip()) == (0, f"not banned: {user.username}")
    assert (await api.post("/api/admin/invites", {}, token=admin.access)).status == 201

    reply = await api.get("/api/admin/audit?limit=4", admin.access)
    assert reply.status == 200, reply.body
    cli = f"cli:{getpass.getuser()}"
    assert [(r["who"], r["action"], r["target"], r["result"]) for r in reply.body["rows"]] == [
        (f"admin:{admin.username}", "create_invites", "1 invite code", "done"),
        (cli, "unban", user.username, "unchanged"),
        (cli, "unban", user.username, "done"),
        (f"admin:{admin.username}", "ban", user.username, "done"),
    ]
    ids = [r["id"] for r in reply.body["rows"]]
    assert ids == sorted(ids, reverse=True)
    assert reply.body["next_after"] == ids[-1]
    older = await api.get(f"/api/admin/audit?limit=1&after={ids[-1]}", admin.access)
    assert older.status == 200
    assert [r["id"] for r in older.body["rows"]] == [
        (await api.sql("SELECT max(id) AS id FROM admin_audit WHERE id < $1", ids[-1]))[0]["id"]
    ]


async def test_the_command_line_ban_is_the_same_action(api: ApiUnderTest) -> None:
    user = await api.new_user("clibanned")
    code, out, _ = await api.admin("ban-user", user.username)
    assert (code, out.strip()) == (0, f"banned {user.username} (1 refresh tokens revoked)")
    code, out, _ = await api.admin("ban-user", user.username)
    assert (code, out.strip()) == (0, f"already banned: {user.username} (0 refresh tokens revoked)")
    assert status_and_code(await api.get("/api/me", user.access)) == (403, "banned")
    cli = f"cli:{getpass.getuser()}"
    assert [(w, a, r) for w, a, r, _ in await audit_of(api, user.username)] == [
        (cli, "ban", "done"),
        (cli, "ban", "unchanged"),
    ]
    code, out, _ = await api.admin("gen-invite", "--note", "from the shell", "--expires", "2h")
    assert code == 0
    admin = await new_admin(api)
    listed = await api.get("/api/admin/invites?status=usable&limit=1000", admin.access)
    (made,) = [row for row in listed.body["rows"] if row["code"] == out.strip()]
    assert (made["created_by"], made["note"]) == (None, "from the shell")


# -- races between admins ----------------------------------------------------------------------


async def test_two_admins_banning_each_other_at_once_leave_exactly_one(api: ApiUnderTest) -> None:
    for _ in range(3):
        first, second = await new_admin(api), await new_admin(api)
        replies = await asyncio.gather(
            api.post(f"/api/admin/users/{second.user_id}/ban", token=first.access),
            api.post(f"/api/admin/users/{first.user_id}/ban", token=second.access),
        )
        # The loser is refused either inside its action (no longer an admin: audited as
        # refused) or, when the winner's ban landed before its request was even read, at
        # the door as the banned user it now is (nothing to audit).
        statuses = sorted(map(status_and_code, replies), key=str)
        assert statuses in ([(200, None), (403, "forbidden")], [(200, None), (403, "banned")])
        rows = await api.sql(
            "SELECT id, banned FROM users WHERE id = ANY($1) ORDER BY id",
            [first.user_id, second.user_id],
        )
        assert sorted(r["banned"] for r in rows) == [False, True]
        winner = next(s for s, r in zip((first, second), replies, strict=True) if r.status == 200)
        audited = await api.sql(
            "SELECT who, result, detail->>'reason' AS reason FROM admin_audit "
            "WHERE target = ANY($1) ORDER BY id",
            [first.username, second.username],
        )
        refused_inside = [(False, "refused", "not_admin")] if (403, "forbidden") in statuses else []
        assert sorted((r["who"] == f"admin:{winner.username}", r["result"], r["reason"])
                      for r in audited) == [*refused_inside, (True, "done", None)]  # fmt: skip


async def test_two_admins_demoting_each_other_at_once_leave_an_admin(api: ApiUnderTest) -> None:
    for _ in range(3):
        first, second = await new_admin(api), await new_admin(api)
        replies = await asyncio.gather(
            api.post(f"/api/admin/users/{second.user_id}/role", {"role": "user"}, first.access),
            api.post(f"/api/admin/users/{first.user_id}/role", {"role": "user"}, second.access),
        )
        assert sorted(map(status_and_code, replies), key=str) == [(200, None), (403, "forbidden")]
        roles = await api.sql(
            "SELECT role FROM users WHERE id = ANY($1)", [first.user_id, second.user_id]
        )
        assert sorted(r["role"] for r in roles) == ["admin", "user"]


async def test_two_admins_banning_one_user_at_once_agree(api: ApiUnderTest) -> None:
    first, second = await new_admin(api), await new_admin(api)
    user = await api.new_user("doubly")
    replies = await asyncio.gather(
        *(api.post(f"/api/admin/users/{user.user_id}/ban", token=s.access) for s in (first, second))
    )
    assert [r.status for r in replies] == [200, 200]
    assert sorted(r.body["result"] for r in replies) == ["done", "unchanged"]
    assert sum(r.body["sessions_revoked"] for r in replies) == 1
    assert all(r.body["user"]["banned"] for r in replies)
    assert sorted(row[2] for row in await audit_of(api, user.username)) == ["done", "unchanged"]


async def test_two_admins_making_invites_at_once_get_distinct_codes(api: ApiUnderTest) -> None:
    first, second = await new_admin(api), await new_admin(api)
    replies = await asyncio.gather(
        *(api.post("/api/admin/invites", {"count": 5}, token=s.access) for s in (first, second))
    )
    assert [r.status for r in replies] == [201, 201]
    made = {
        s.username: {row["code"] for row in r.body["rows"]}
        for s, r in zip((first, second), replies, strict=True)
    }
    assert [len(codes) for codes in made.values()] == [5, 5]
    assert not made[first.username] & made[second.username]
    listed = await api.get("/api/admin/invites?status=usable&limit=1000", first.access)
    creators = {row["code"]: row["created_by"] for row in listed.body["rows"]}
    for name, codes in made.items():
        assert {creators[code] for code in codes} == {name}


async def test_a_revocation_and_a_registration_racing_for_one_code_agree(
    api: ApiUnderTest,
) -> None:
    admin = await new_admin(api)
    for _ in range(5):
        code = (await api.post("/api/admin/invites", {}, token=admin.access)).body["rows"][0][
            "code"
        ]
        name = api.unique_name("racer")
        register, revoke = await asyncio.gather(
            api.post(
                "/api/register", {"invite_code": code, "username": name, "password": PASSWORD}
            ),
            api.post(f"/api/admin/invites/{code}/revoke", token=admin.access),
        )
        (row,) = await api.sql("SELECT used_at, revoked_at FROM invite_codes WHERE code = $1", code)
        if register.status == 201:
            assert status_and_code(revoke) == (409, "invite_used")
            assert (row["used_at"] is not None, row["revoked_at"]) == (True, None)
        else:
            assert status_and_code(register) == (403, "invalid_invite")
            assert (revoke.status, revoke.body["result"]) == (200, "done")
            assert (row["used_at"], row["revoked_at"] is not None) == (None, True)
