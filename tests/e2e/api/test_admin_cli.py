"""``arbengine admin …`` as a separate process against a running daemon's database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson
import psutil
import pytest
from pgserver.utils import PostmasterInfo

from arbengine.store.embedded import stop_embedded_server
from tests.e2e.api.harness import PASSWORD, ApiUnderTest
from tests.support.daemon import DaemonProcess

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_create_admin_then_log_in_as_admin(api: ApiUnderTest) -> None:
    code, out, err = await api.admin(
        "create-admin", "Root_Admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert (code, err) == (0, "")
    assert out.startswith("created admin root_admin (id ")
    login = await api.post("/api/login", {"username": "root_admin", "password": PASSWORD})
    assert login.status == 200
    assert login.body["user"]["role"] == "admin"

    code, _, err = await api.admin("create-admin", "root_admin", "--password-stdin", stdin=PASSWORD)
    assert code == 1
    assert "exists" in err
    assert "set-admin" in err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create-admin", "ok_name", "--password-stdin"], "short\n", "10 to 256 characters"),
        (["create-admin", "bad name!", "--password-stdin"], PASSWORD, "a username is"),
        (["create-admin", "ok_name"], "", "use --password-stdin"),
        (["gen-invite", "--count", "0"], None, "--count"),
        (["gen-invite", "--expires", "soon"], None, "--expires"),
        (["gen-invite", "--expires", "30s"], None, "an invite expires in 1m to 3650d"),
        (["gen-invite", "--expires", "99999999999d"], None, "an invite expires in 1m to 3650d"),
        (["gen-invite", "--note", "x" * 201], None, "--note must be 1 to 200 characters"),
    ],
)
async def test_usage_mistakes_exit_2_with_one_line(
    api: ApiUnderTest, args: list[str], stdin: str | None, message: str
) -> None:
    code, out, err = await api.admin(*args, stdin=stdin)
    assert code == 2
    assert out == ""
    assert err.startswith("arbengine: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


async def test_invites_are_listed_until_used_and_each_works_once(api: ApiUnderTest) -> None:
    code, out, _ = await api.admin("gen-invite", "--count", "3", "--expires", "7d")
    assert code == 0
    codes = out.split()
    assert len(codes) == 3
    assert len(set(codes)) == 3

    _, listed, _ = await api.admin("list-invites", "--json")
    unused = {i["code"]: i for i in orjson.loads(listed)}
    assert set(codes) <= set(unused)
    assert all(unused[c]["expires_at"] is not None for c in codes)

    name = api.unique_name("invited")
    reply = await api.post(
        "/api/register", {"invite_code": codes[0], "username": name, "password": PASSWORD}
    )
    assert reply.status == 201
    _, listed, _ = await api.admin("list-invites", "--json")
    assert codes[0] not in {i["code"] for i in orjson.loads(listed)}
    _, everything, _ = await api.admin("list-invites", "--all", "--json")
    used = next(i for i in orjson.loads(everything) if i["code"] == codes[0])
    assert (used["used_by"], used["status"]) == (name, "used")
    _, table, _ = await api.admin("list-invites")
    assert table.splitlines()[0].split() == [
        "code",
        "created_at",
        "expires_at",
        "used_at",
        "used_by",
        "status",
        "note",
    ]


async def test_set_admin_applies_at_once_and_can_be_revoked(api: ApiUnderTest) -> None:
    session = await api.new_user("promoted")
    code, out, _ = await api.admin("set-admin", session.username)
    assert (code, out.strip()) == (0, f"{session.username} is now an admin")
    assert (await api.get("/api/me", session.access)).body["role"] == "admin"
    code, out, _ = await api.admin("set-admin", session.username, "--revoke")
    assert (code, out.strip()) == (0, f"{session.username} is now a user")
    assert (await api.get("/api/me", session.access)).body["role"] == "user"


async def test_list_users_shows_roles_and_bans(api: ApiUnderTest) -> None:
    session = await api.new_user("listed")
    await api.admin("ban-user", session.username)
    code, out, _ = await api.admin("list-users", "--json")
    assert code == 0
    users = {u["username"]: u for u in orjson.loads(out)}
    assert users[session.username]["banned"] is True
    assert users[session.username]["role"] == "user"
    assert set(users[session.username]) == {
        "id",
        "username",
        "role",
        "banned",
        "created_at",
        "last_login_at",
    }
    _, table, _ = await api.admin("list-users")
    row = next(line for line in table.splitlines() if session.username in line)
    assert row.split()[2:4] == ["user", "yes"]


@pytest.mark.parametrize("action", ["ban-user", "unban-user", "set-admin"])
async def test_an_unknown_user_exits_1(api: ApiUnderTest, action: str) -> None:
    code, out, err = await api.admin(action, "nobody_at_all")
    assert (code, out) == (1, "")
    assert err.strip() == "arbengine: no user named 'nobody_at_all'"


async def test_with_the_embedded_server_the_command_never_stops_the_daemons_database(
    tmp_path: Path, daemon_env: dict[str, str]
) -> None:
    """Without a daemon the command starts the embedded server and stops it; with one, it
    connects to the running server and leaves it running."""
    env = {**os.environ, **daemon_env}
    data_dir = Path(daemon_env["ARB_DATABASE_DATA_DIR"])

    async def admin(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "arbengine",
            "admin",
            *args,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 90)
        assert process.returncode == 0, err.decode()
        return process.returncode, out.decode()

    _, out = await admin("gen-invite")
    code = out.strip()
    info = PostmasterInfo.read_from_pgdata(data_dir.resolve())
    assert info is None or not info.is_running()

    daemon = DaemonProcess(tmp_path, daemon_env)
    await daemon.start()
    try:
        base = await daemon.started(timeout=90)
        server_pid = daemon.events("database.ready")[0]["server_pid"]
        _, listed = await admin("list-invites", "--json")
        assert [i["code"] for i in orjson.loads(listed)] == [code]
        assert psutil.pid_exists(server_pid)

        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{base}/api/register",
                json={"invite_code": code, "username": "embedded_user", "password": PASSWORD},
            ) as response,
        ):
            assert response.status == 201
    finally:
        await daemon.stop()  # graceful: the daemon stops its embedded server
        if (data_dir / "postmaster.pid").exists():
            stop_embedded_server(data_dir)
