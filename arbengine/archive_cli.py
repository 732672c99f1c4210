"""``arbengine archive status | seal | verify``: the tape archive, on demand.

``status`` reads the manifest (and lists the files, to name any gone missing);
``seal`` seals every day that is ready now, exactly as the daemon's pass does;
``verify`` reads every sealed day's file, checks it against its manifest row
and compares it trade for trade with the table. A day that fails is unsealed
(backtests read it from PostgreSQL) and sealed again by the next seal.

Arguments and the ``[archive] dir`` setting are checked before anything
connects: a mistake is exit status 2 and one line. The database is opened as
every one-off command opens it; when it cannot be, or the archive's storage
cannot be written, or ``verify`` finds a bad day, the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from arbengine.domain.errors import ConfigError, FatalError, RetryableError
from arbengine.settings import Settings

if TYPE_CHECKING:
    import asyncpg

    from arbengine.store.archive_sealer import SealOutcome
    from arbengine.store.tape_archive import TapeArchive

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
SYMBOL = re.compile(r"[A-Z0-9]{2,30}")

Work = Callable[["asyncpg.Connection", "TapeArchive"], Awaitable[int]]


class ArchiveFailure(Exception):
    """The one line a command ends with, and its exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="archive_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, handler: Callable[[argparse.Namespace], Work]) -> Any:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: a --config given before the action (on `archive`) must not be reset here.
        sub.add_argument("--config", default=argparse.SUPPRESS, help="settings file")
        sub.add_argument("--symbols", help="comma-separated symbols (default: every symbol)")
        sub.set_defaults(archive_action=handler)
        return sub

    status = action("status", "what is sealed, what waits to be sealed, per symbol", status_of)
    status.add_argument("--json", action="store_true", help="JSON output")
    action("seal", "seal every day that is ready now (as the daemon does)", seal)
    verify_ = action(
        "verify", "check every sealed day's file against its manifest and the table", verify
    )
    verify_.add_argument("--from", dest="date_from", metavar="DAY", help="first day (2026-01-01)")
    verify_.add_argument("--to", dest="date_to", metavar="DAY", help="last day, included")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Check the arguments and the archive's setting, then do the work on the database."""
    import uvloop

    from arbengine.store.tape_archive import TapeArchive

    try:
        try:
            archive = TapeArchive(settings.archive.dir)
        except ConfigError as exc:
            raise ArchiveFailure(
                f"{exc} (set [archive] dir or ARB_ARCHIVE_DIR)", EXIT_USAGE
            ) from None
        work = args.archive_action(args)
        return int(uvloop.run(_on_database(settings, archive, work)))
    except ArchiveFailure as failure:
        print(f"arbengine: archive {args.archive_command}: {failure}", file=sys.stderr)
        return failure.exit_code


async def _on_database(settings: Settings, archive: TapeArchive, work: Work) -> int:
    from arbengine.store.database import open_database

    async with contextlib.AsyncExitStack() as stack:
        try:
            db = await stack.enter_async_context(open_database(settings.database, owner=False))
        except (FatalError, ConfigError) as exc:
            raise ArchiveFailure(str(exc)) from None  # says what failed, never the URL
        try:
            async with db.acquire() as conn:
                return await work(conn, archive)
        except RetryableError as exc:  # the database or the archive's storage went away
            raise ArchiveFailure(str(exc)) from None
    raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises or returns


# -- actions ---------------------------------------------------------------------------------


def _symbols(args: argparse.Namespace) -> list[str] | None:
    if not args.symbols:
        return None
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    for symbol in symbols:
        if not SYMBOL.fullmatch(symbol):
            raise ArchiveFailure(
                f"--symbols: {symbol!r} is not a symbol (e.g. BTCUSDT)", EXIT_USAGE
            )
    return symbols or None


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ArchiveFailure(f"{option}: {text!r} is not a day (2026-01-31)", EXIT_USAGE) from None


def status_of(args: argparse.Namespace) -> Work:
    symbols = _symbols(args)

    async def work(conn: asyncpg.Connection, archive: TapeArchive) -> int:
        from arbengine.store import archive_sql

        summaries = await archive_sql.summary(conn, symbols)
        ready = await archive_sql.ready_days(conn, symbols)
        sealed = await archive_sql.sealed_in(conn, symbols, None, None)
        files = archive.files()
        missing = [f for f in sealed if files.get(f.path) != f.bytes]
        rows = [
            {
                "symbol": s.symbol,
                "days_counted": s.counted,
                "days_complete": s.complete,
                "days_sealed": s.sealed,
                "days_to_seal": sum(r.symbol == s.symbol for r in ready),
                "days_changed": s.changed,
                "trades_sealed": s.sealed_rows,
                "bytes_sealed": s.sealed_bytes,
                "first_sealed": s.first_sealed.isoformat() if s.first_sealed else None,
                "last_sealed": s.last_sealed.isoformat() if s.last_sealed else None,
            }
            for s in summaries
        ]
        problems = [
            f"{f.symbol} {f.day}: {f.path} is missing or not the size sealed "
            "(`arbengine archive verify` unseals it)"
            for f in missing
        ]
        if args.json:
            import orjson

            body = {"archive": archive.location, "symbols": rows, "problems": problems}
            sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
            return EXIT_OK
        print(f"tape archive: {archive.location}")
        if not rows:
            print("no day counted yet (the continuity check counts each day of the tape)")
        _table(rows)
        for line in problems:
            print(line)
        return EXIT_OK

    return work


def _table(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = {"symbol": "symbol", "days_counted": "counted", "days_complete": "complete",
               "days_sealed": "sealed", "days_to_seal": "to seal", "days_changed": "changed",
               "trades_sealed": "trades", "bytes_sealed": "MB", "first_sealed": "first",
               "last_sealed": "last"}  # fmt: skip

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "-"
        if key == "bytes_sealed":
            return f"{value / 1e6:,.1f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    cells = [[cell(k, row[k]) for k in columns] for row in rows]
    widths = [
        max(len(title), *(len(c[i]) for c in cells)) for i, title in enumerate(columns.values())
    ]
    for line in [list(columns.values()), *cells]:
        print("  ".join(v.rjust(w) if i else v.ljust(w)
                        for i, (v, w) in enumerate(zip(line, widths, strict=True))))  # fmt: skip


def _outcome_line(outcome: SealOutcome) -> str:
    where = f"{outcome.symbol} {outcome.day}"
    if outcome.recounted:
        return f"{where}: its count was out of date; counted again, sealed by the next seal"
    done = "resealed" if outcome.resealed else "sealed"
    return (
        f"{done} {where}: {outcome.rows:,} trades, {outcome.bytes / 1e6:,.1f} MB "
        f"({outcome.seconds:.1f} s)"
    )


def seal(args: argparse.Namespace) -> Work:
    symbols = _symbols(args)

    async def work(conn: asyncpg.Connection, archive: TapeArchive) -> int:
        from arbengine.store.archive_sealer import seal_ready_days

        outcomes = await seal_ready_days(
            conn, archive, symbols, on_outcome=lambda o: print(_outcome_line(o), flush=True)
        )
        sealed = [o for o in outcomes if not o.recounted]
        if not outcomes:
            print("nothing to seal: no complete day waits (see `arbengine archive status`)")
        else:
            trades = sum(o.rows for o in sealed)
            print(f"{len(sealed)} days sealed ({trades:,} trades) in {archive.location}")
        return EXIT_OK

    return work


def verify(args: argparse.Namespace) -> Work:
    symbols = _symbols(args)
    first, last = _day(args.date_from, "--from"), _day(args.date_to, "--to")
    if first and last and last < first:
        raise ArchiveFailure("--to must not be before --from", EXIT_USAGE)

    async def work(conn: asyncpg.Connection, archive: TapeArchive) -> int:
        from arbengine.store import archive_sql
        from arbengine.store.tape_archive import (
            DAY_MS,
            ArchiveFileRejected,
            day_start_ms,
            difference,
        )
        from arbengine.store.trade_reader import read_trades_of

        sealed = await archive_sql.sealed_in(conn, symbols, first, last)
        failed = 0
        trades = 0
        for item in sealed:
            start = day_start_ms(item.day)
            table = (await read_trades_of(conn, [item.symbol], start, start + DAY_MS)).get(
                item.symbol
            )
            try:
                found = archive.read(item)
            except ArchiveFileRejected as exc:
                problem: str | None = str(exc)
            else:
                trades += len(found)
                problem = (
                    "the table holds no trades of that day any more"
                    if table is None
                    else difference(table, found)
                )
                if problem is not None and table is not None:
                    problem = f"{item.path} differs from the table: {problem}"
            if problem is None:
                continue
            failed += 1
            await archive_sql.mark_changed(conn, item.symbol, item.day)
            print(
                f"{item.symbol} {item.day}: {problem}; unsealed: read from PostgreSQL "
                "until it is sealed again"
            )
        if failed:
            print(f"{failed} of {len(sealed)} sealed days failed")
            return EXIT_FAILED
        print(
            f"verified {len(sealed)} sealed days ({trades:,} trades): "
            "every file matches its manifest and the table"
        )
        return EXIT_OK

    return work
