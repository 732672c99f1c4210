"""``arbengine admin …``: users and invite codes, straight in the database.

Works whether or not the daemon runs. With the embedded server this needs
care: if the daemon already runs it, we connect to its socket and leave it
alone (starting and then stopping "our" server would stop the daemon's
database); otherwise we start it for the command and stop it after.

A ban or a role change made here reaches a running daemon at once, through
the ``users`` trigger's NOTIFY (migration 0010).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import re
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from arbengine.api import queries
from arbengine.api.auth import Passwords
from arbengine.domain.durations import parse_duration_ms
from arbengine.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
MIN_PASSWORD = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: a --config given before the action (on `admin`) must not be reset here.
        sub.add_argument("--config", default=argparse.SUPPRESS, help="settings file")
        return sub

    create = action("create-admin", "create an administrator account")
    create.add_argument("username")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (otherwise it is asked for twice)",
    )

    gen = action("gen-invite", "create single-use invite codes and print them, one a line")
    gen.add_argument("--count", type=int, default=1, help="how many (default 1, at most 1000)")
    gen.add_argument("--expires", help="valid for this long, e.g. 7d or 12h (default: no expiry)")

    invites = action("list-invites", "list invite codes that can still be used")
    invites.add_argument("--all", action="store_true", help="also used and expired ones")
    invites.add_argument("--json", action="store_true", help="JSON output")

    for name, text in (
        ("ban-user", "ban a user at once: every request and refresh token is refused"),
        ("unban-user", "lift a ban"),
    ):
        action(name, text).add_argument("username")

    promote = action("set-admin", "give a user the admin role (or take it back)")
    promote.add_argument("username")
    promote.add_argument("--revoke", action="store_true", help="make the user a plain user")

    users = action("list-users", "list every user")
    users.add_argument("--json", action="store_true", help="JSON output")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvloop

    try:
        return int(uvloop.run(_dispatch(args, settings)))
    except _Failure as failure:
        print(f"arbengine: {failure}", file=sys.stderr)
        return failure.exit_code


class _Failure(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command = args.admin_command
    password: str | None = None
    if command == "create-admin":
        _check_username(args.username)
        password = _read_password(args.password_stdin)
    if command == "gen-invite" and not 1 <= args.count <= 1000:
        raise _Failure("--count must be between 1 and 1000", EXIT_USAGE)
    expires: dt.datetime | None = None
    if command == "gen-invite" and args.expires:
        try:
            span = parse_duration_ms(args.expires)
        except ValueError as exc:
            raise _Failure(f"--expires: {exc}", EXIT_USAGE) from None
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=span)

    async with _connect(settings) as conn:
        if command == "create-admin":
            assert password is not None
            hashed = Passwords().hash_sync(password)
            row = await queries.create_user(conn, args.username.lower(), hashed, "admin")
            if row is None:
                raise _Failure(
                    f"a user named {args.username.lower()!r} exists; "
                    "use `arbengine admin set-admin` to promote them"
                )
            print(f"created admin {row['username']} (id {row['id']})")
        elif command == "gen-invite":
            codes = [secrets.token_urlsafe(18) for _ in range(args.count)]
            await queries.create_invites(conn, codes, expires)
            print("\n".join(codes))
        elif command == "list-invites":
            rows = await queries.list_invites(conn, args.all)
            _show(rows, ["code", "created_at", "expires_at", "used_at", "used_by"], args.json)
        elif command in ("ban-user", "unban-user"):
            banned = command == "ban-user"
            revoked = await queries.set_banned(conn, args.username.lower(), banned)
            if revoked is None:
                raise _Failure(f"no user named {args.username.lower()!r}")
            if banned:
                print(f"banned {args.username.lower()} ({revoked} refresh tokens revoked)")
            else:
                print(f"unbanned {args.username.lower()}")
        elif command == "set-admin":
            role = "user" if args.revoke else "admin"
            if not await queries.set_role(conn, args.username.lower(), role):
                raise _Failure(f"no user named {args.username.lower()!r}")
            print(f"{args.username.lower()} is now {'a user' if args.revoke else 'an admin'}")
        elif command == "list-users":
            rows = await queries.list_users(conn)
            columns = ["id", "username", "role", "banned", "created_at", "last_login_at"]
            _show(rows, columns, args.json)
    return EXIT_OK


def _check_username(name: str) -> None:
    if not USERNAME.fullmatch(name):
        raise _Failure("a username is 3 to 32 letters, digits, '_', '.' or '-'", EXIT_USAGE)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise _Failure("the passwords differ", EXIT_USAGE)
    else:
        raise _Failure("no terminal to ask for a password: use --password-stdin", EXIT_USAGE)
    if not MIN_PASSWORD <= len(password) <= 256:
        raise _Failure(f"the password must be {MIN_PASSWORD} to 256 characters long", EXIT_USAGE)
    return password


def _show(rows: Sequence[asyncpg.Record], columns: list[str], as_json: bool) -> None:
    data = [{c: row[c] for c in columns} for row in rows]
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    cells = [[_cell(item[c]) for c in columns] for item in data]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@contextlib.asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the deployment's database, migrations applied."""
    running = None if settings.database.url else _running_embedded(settings.database.data_dir)
    if settings.database.url or running:
        from arbengine.store.migrations import apply_migrations

        url = settings.database.url or running
        try:
            conn = await asyncpg.connect(url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise _Failure(f"cannot connect to the database: {exc}") from None
        try:
            await apply_migrations(conn)
            yield conn
        finally:
            await conn.close()
        return
    from arbengine.store.database import open_database

    async with open_database(settings.database) as db, db.pool.acquire() as conn:
        yield conn


def _running_embedded(data_dir: str) -> str | None:
    """The socket URL of an embedded server already running in ``data_dir``, if any."""
    from pgserver.utils import PostmasterInfo

    path = Path(data_dir).expanduser().resolve()
    try:
        info = PostmasterInfo.read_from_pgdata(path)
    except (OSError, ValueError, AssertionError):
        return None
    if info is None or not info.is_running():
        return None
    return info.get_uri()
