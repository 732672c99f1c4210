"""``arbengine admin …``: users and invite codes, straight in the database.

Works whether or not the daemon runs: the database is opened as every one-off
command opens it (``open_database`` as a non-owner), so with the embedded
server a running daemon's server is used and left alone, and otherwise one is
started for the command and stopped after.

Each action checks its arguments before anything connects (a mistake is exit
status 2 and one line) and gives back the work to do on the database; a
failure there (no such user, a name taken, no database) is exit status 1.

The actions are the API's admin actions (the store's ``AdminRecords``), done as
``cli:<os user>``: each one is recorded in ``admin_audit``. A ban or a role change
made here reaches a running daemon at once, through the ``users`` trigger's NOTIFY
(migration 0010).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from arbengine.domain.admin_rows import (
    MAX_INVITES,
    NOTE_MAX,
    Actor,
    UserChange,
    parse_invite_ttl,
)
from arbengine.domain.errors import ConfigError, FatalError, RetryableError
from arbengine.settings import Settings

if TYPE_CHECKING:
    from arbengine.store.admin_records import AdminRecords

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
MIN_PASSWORD = 10

Work = Callable[["AdminRecords"], Awaitable[None]]
"""What an action does on the database, once its arguments are checked."""
Action = Callable[[argparse.Namespace], Work]


class AdminFailure(Exception):
    """The one line an action ends with, and its exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _actor() -> Actor:
    return Actor(who=f"cli:{getpass.getuser()}")


# -- actions ---------------------------------------------------------------------------------


def create_admin(args: argparse.Namespace) -> Work:
    username = _username(args.username)
    password = _read_password(args.password_stdin)

    async def work(records: AdminRecords) -> None:
        from arbengine.api.tokens import Passwords

        user = await records.create_admin(username, Passwords().hash_sync(password), _actor())
        if user is None:
            raise AdminFailure(
                f"a user named {username!r} exists; use `arbengine admin set-admin` to promote them"
            )
        print(f"created admin {user.username} (id {user.id})")

    return work


def gen_invite(args: argparse.Namespace) -> Work:
    if not 1 <= args.count <= MAX_INVITES:
        raise AdminFailure(f"--count must be between 1 and {MAX_INVITES}", EXIT_USAGE)
    ttl_ms: int | None = None
    if args.expires:
        try:
            ttl_ms = parse_invite_ttl(args.expires)
        except ValueError as exc:
            raise AdminFailure(f"--expires: {exc}", EXIT_USAGE) from None
    note: str | None = args.note
    if note is not None and not 1 <= len(note) <= NOTE_MAX:
        raise AdminFailure(f"--note must be 1 to {NOTE_MAX} characters", EXIT_USAGE)
    count = args.count

    async def work(records: AdminRecords) -> None:
        made = await records.create_invites(count, ttl_ms, note, _actor())
        assert not isinstance(made, str)  # the command line is never refused
        print("\n".join(invite.code for invite in made))

    return work


def list_invites(args: argparse.Namespace) -> Work:
    async def work(records: AdminRecords) -> None:
        rows = await records.invites(None if args.all else "usable")
        columns = ["code", "created_at", "expires_at", "used_at", "used_by", "status", "note"]
        _show([msgspec.structs.asdict(r) for r in rows], columns, args.json)

    return work


def _set_banned(banned: bool) -> Action:
    def action(args: argparse.Namespace) -> Work:
        username = args.username.lower()

        async def work(records: AdminRecords) -> None:
            if banned:
                change = await records.ban(username, _actor())
                _found(change, username)
                done = "banned" if change.result == "done" else "already banned:"
                print(f"{done} {username} ({change.sessions_revoked} refresh tokens revoked)")
            else:
                change = await records.unban(username, _actor())
                _found(change, username)
                print(f"{'unbanned' if change.result == 'done' else 'not banned:'} {username}")

        return work

    return action


def set_admin(args: argparse.Namespace) -> Work:
    username = args.username.lower()
    revoke = bool(args.revoke)

    async def work(records: AdminRecords) -> None:
        change = await records.set_role(username, "user" if revoke else "admin", _actor())
        _found(change, username)
        now = "a user" if revoke else "an admin"
        print(f"{username} {'was already' if change.result == 'unchanged' else 'is now'} {now}")

    return work


def list_users(args: argparse.Namespace) -> Work:
    async def work(records: AdminRecords) -> None:
        rows = await records.users()
        columns = ["id", "username", "role", "banned", "created_at", "last_login_at"]
        _show([msgspec.structs.asdict(r) for r in rows], columns, args.json)

    return work


def _found(change: UserChange, username: str) -> None:
    if change.user is None:
        raise AdminFailure(f"no user named {username!r}")


# -- command line ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions as sub-commands, each naming its handler (``admin_action``)."""
    actions = parser.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, handler: Action) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: a --config given before the action (on `admin`) must not be reset here.
        sub.add_argument("--config", default=argparse.SUPPRESS, help="settings file")
        sub.set_defaults(admin_action=handler)
        return sub

    create = action("create-admin", "create an administrator account", create_admin)
    create.add_argument("username")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (otherwise it is asked for twice)",
    )

    gen = action(
        "gen-invite", "create single-use invite codes and print them, one a line", gen_invite
    )
    gen.add_argument(
        "--count", type=int, default=1, help=f"how many (default 1, at most {MAX_INVITES})"
    )
    gen.add_argument("--expires", help="valid for this long, e.g. 7d or 12h (default: no expiry)")
    gen.add_argument("--note", help=f"whom the codes are for (at most {NOTE_MAX} characters)")

    invites = action("list-invites", "list invite codes that can still be used", list_invites)
    invites.add_argument(
        "--all", action="store_true", help="also used, revoked and expired ones, newest first"
    )
    invites.add_argument("--json", action="store_true", help="JSON output")

    for name, text, banned in (
        ("ban-user", "ban a user at once: every request and refresh token is refused", True),
        ("unban-user", "lift a ban", False),
    ):
        action(name, text, _set_banned(banned)).add_argument("username")

    promote = action("set-admin", "give a user the admin role (or take it back)", set_admin)
    promote.add_argument("username")
    promote.add_argument("--revoke", action="store_true", help="make the user a plain user")

    users = action("list-users", "list every user", list_users)
    users.add_argument("--json", action="store_true", help="JSON output")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Check the action's arguments, then do its work on the deployment's database."""
    import uvloop

    try:
        work = args.admin_action(args)
        uvloop.run(_on_database(settings, work))
    except AdminFailure as failure:
        print(f"arbengine: {failure}", file=sys.stderr)
        return failure.exit_code
    return EXIT_OK


async def _on_database(settings: Settings, work: Work) -> None:
    """``work`` on the database (migrations applied), opened as any one-off command opens
    it: never stopping a server a running daemon uses."""
    from arbengine.store.admin_records import AdminRecords
    from arbengine.store.database import open_database

    async with contextlib.AsyncExitStack() as stack:
        try:
            db = await stack.enter_async_context(open_database(settings.database, owner=False))
        except (FatalError, ConfigError) as exc:
            raise AdminFailure(str(exc)) from None  # says what failed, never the URL
        try:
            await work(AdminRecords(db))
        except RetryableError as exc:  # the database went away under the command
            raise AdminFailure(str(exc)) from None


# -- input and output ------------------------------------------------------------------------


def _username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise AdminFailure("a username is 3 to 32 letters, digits, '_', '.' or '-'", EXIT_USAGE)
    return name.lower()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise AdminFailure("the passwords differ", EXIT_USAGE)
    else:
        raise AdminFailure("no terminal to ask for a password: use --password-stdin", EXIT_USAGE)
    if not MIN_PASSWORD <= len(password) <= 256:
        raise AdminFailure(
            f"the password must be {MIN_PASSWORD} to 256 characters long", EXIT_USAGE
        )
    return password


def _show(rows: Sequence[Any], columns: list[str], as_json: bool) -> None:
    import orjson

    data = [{c: row[c] for c in columns} for row in rows]
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    cells = [[_cell(item[c]) for c in columns] for item in data]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
