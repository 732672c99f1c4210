"""Command line: ``arbengine run | migrate | import | backtest | archive | admin | config |
bench | sim | live``.

Mistakes a user can make (a bad setting, an unknown benchmark) end with one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from arbengine import __version__, admin_cli, archive_cli
from arbengine.domain.errors import ConfigError, FatalError
from arbengine.logs import configure_logging
from arbengine.settings import Settings, load_settings, shipped, strategies_dir

EXIT_USAGE = 2

# name -> (module exposing add_arguments(parser) and run(args) -> BenchReport, summary).
# A module is imported only when its benchmark runs: the others cost nothing at start.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "channels": ("arbengine.benchmarks.channels_bench", "bounded channel throughput"),
    "sim": (
        "arbengine.benchmarks.sim_bench",
        "simulated exchange: aggTrade messages/s to one client",
    ),
    "ingest": (
        "arbengine.benchmarks.ingest_bench",
        "sim at full speed -> collectors -> PostgreSQL",
    ),
    "backtest": (
        "arbengine.benchmarks.backtest_bench",
        "trades/s through the backtester, reading included (tape archive and PostgreSQL)",
    ),
    "engine": (
        "arbengine.benchmarks.engine_bench",
        "signal engine tick cost and memory per symbol",
    ),
    "soak": (
        "arbengine.benchmarks.soak_bench",
        "daemon memory through 60 market hours on an accelerated sim",
    ),
    "api": ("arbengine.benchmarks.api_bench", "API requests/s and latency on cached endpoints"),
    "scale": (
        "arbengine.benchmarks.scale_bench",
        "the daemon following 100 or 300 symbols in real time: rates, ingest, engine, memory",
    ),
    "live": (
        "arbengine.benchmarks.live_bench",
        "live executor on the loopback sim: signal -> entry, fill -> stop-loss, TP1 -> breakeven",
    ),
    "risk": (
        "arbengine.benchmarks.risk_bench",
        "risk gate decision time per entry intent with 100 open positions",
    ),
}


def _fail(message: str) -> int:
    print(f"arbengine: {message}", file=sys.stderr)
    return EXIT_USAGE


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _event_loop_run(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(
        settings.log.level, pretty=True if args.pretty or settings.log.pretty else None
    )
    from arbengine.app import run_daemon

    sim = None
    if args.sim:
        from arbengine.sim.server import SimConfig
        from arbengine.sim.sim_args import parse_speed, parse_trade_history

        try:
            speed, manual = parse_speed(args.sim_speed)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            return _fail(f"--sim-speed: {exc}")
        try:
            trade_history_ms = parse_trade_history(args.sim_trade_history)
        except ValueError as exc:
            return _fail(str(exc).replace("--trade-history", "--sim-trade-history", 1))
        sim = SimConfig(
            port=args.sim_port,
            seed=args.sim_seed,
            speed=speed,
            manual=manual,
            symbols=tuple(settings.collect.symbols),
            trade_rate=args.sim_trade_rate,
            trade_history_ms=trade_history_ms,
        )
    reread = functools.partial(_settings, args)  # SIGHUP: the same file and environment
    return int(_event_loop_run(run_daemon(settings, sim=sim, reread=reread)))


def cmd_admin(args: argparse.Namespace) -> int:
    return admin_cli.run(args, _settings(args))


def cmd_archive(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging("warning", pretty=args.pretty or None)
    return archive_cli.run(args, settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log.level, pretty=args.pretty or None)
    from arbengine.logs import get_logger
    from arbengine.store.database import open_database

    async def migrate() -> list[str]:
        async with open_database(settings.database, owner=False) as db:
            return db.migrations_applied

    applied = _event_loop_run(migrate())
    get_logger("migrate").info("migrations.applied", applied=applied, pending=0)
    return 0


def cmd_import_aggtrades(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log.level, pretty=args.pretty or None)
    from tqdm import tqdm

    from arbengine.store.database import open_database
    from arbengine.store.import_aggtrades import (
        import_file,
        settle_imported_trades,
        symbol_from_name,
    )

    paths = [Path(p) for p in args.files]
    for path in paths:
        if not path.is_file():
            return _fail(f"{path}: no such file")
        if args.symbol is None and symbol_from_name(path) is None:
            return _fail(
                f"{path}: cannot tell the symbol from the file name; pass --symbol (e.g. BTCUSDT)"
            )

    async def run_import() -> list[Any]:
        done = []
        async with open_database(settings.database, owner=False) as db:
            for path in paths:
                with tqdm(
                    desc=path.name, unit=" rows", disable=not sys.stderr.isatty(), leave=False
                ) as bar:
                    async with db.pool.acquire() as conn:
                        result = await import_file(conn, path, args.symbol, progress=bar.update)
                done.append(result)
                print(
                    f"{path}: {result.symbol} {result.rows} rows "
                    f"(ids {result.first_id}..{result.last_id}), {result.inserted} new"
                )
            if any(result.inserted for result in done):
                print("vacuuming agg_trades so backtests read the new rows at full speed")
                async with db.pool.acquire() as conn:
                    await settle_imported_trades(conn)
        return done

    _event_loop_run(run_import())
    return 0


def cmd_strategies_check(args: argparse.Namespace) -> int:
    """Files as strategy files alone (they may be meant for a backtest); without files, the
    daemon's directory exactly as the daemon loads it at start, its symbols included."""
    from arbengine.signals import Collected, check_files, load_strategy_set, uncollected_symbols

    if args.files:
        paths = args.files
        problems = check_files(paths)
    else:
        settings = _settings(args)
        directory = strategies_dir(settings.engine)
        paths = [str(directory)]
        problems = check_files(paths)
        if not problems:
            collected = Collected.of(
                settings.collect.symbols, shipped=directory == shipped("strategies")
            )
            problems = uncollected_symbols(load_strategy_set(directory), collected)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return EXIT_USAGE
    for path in paths:
        if Path(path).is_dir():
            for strategy in load_strategy_set(Path(path)):
                print(f"{strategy.source or path}: {strategy.name} ok (hash {strategy.hash[:12]})")
        else:
            print(f"{path}: ok")
    return 0


def cmd_strategies_schema(args: argparse.Namespace) -> int:
    from arbengine.signals import strategy_schema

    sys.stdout.write(orjson.dumps(strategy_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _parse_when(text: str, *, end_of_day: bool) -> int:
    """Epoch ms from ``2026-01-31`` (a whole UTC day), an ISO time (UTC unless it says), or ms."""
    from datetime import UTC, datetime, timedelta

    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a date (2026-01-31), an ISO time (2026-01-31T12:00) or epoch ms"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1)
    return int(moment.timestamp() * 1000)


def _count(text: str) -> int:
    """An argument that counts something: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def cmd_backtest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log.level, pretty=args.pretty or None)
    import orjson as _orjson
    from tqdm import tqdm

    from arbengine.pipeline.backtest import EvaluationsCsv, run_backtest, write_outputs
    from arbengine.signals import StrategySet, check_files, load_strategy_set, parse_strategy
    from arbengine.store.database import open_database
    from arbengine.store.tape_archive import TapeArchive
    from arbengine.trading.report import summary_table

    try:
        from_ms = _parse_when(args.date_from, end_of_day=False)
        to_ms = _parse_when(args.date_to, end_of_day=True)
    except ConfigError as exc:
        return _fail(f"--from/--to: {exc}")
    if to_ms <= from_ms:
        return _fail("--to must be after --from")
    archive = TapeArchive(settings.archive.dir) if settings.archive.dir else None
    if args.strategy:
        problems = check_files(args.strategy)
        if problems:
            for line in problems:
                print(line, file=sys.stderr)
            return EXIT_USAGE
        strategies = StrategySet.of(
            parse_strategy(_orjson.loads(Path(f).read_bytes()), source=f) for f in args.strategy
        )
    else:
        strategies = load_strategy_set(strategies_dir(settings.engine))
    symbols = [s.strip().upper() for s in args.symbols.split(",")] if args.symbols else None
    names = "+".join(strategies.names) or "none"
    days = max(1, -(-(to_ms - from_ms) // 86_400_000))
    out_dir = Path(args.out) if args.out else Path(f"backtest-{names}")
    evaluations = None
    if args.evaluations:
        out_dir.mkdir(parents=True, exist_ok=True)
        evaluations = EvaluationsCsv(out_dir / "evaluations.csv")

    async def backtest() -> Any:
        async with open_database(settings.database, owner=False) as db:
            async with db.pool.acquire() as conn:
                with tqdm(total=days + 2, unit="day", disable=not sys.stderr.isatty(),
                          desc=f"backtest {names}") as bar:  # fmt: skip
                    result = await run_backtest(
                        conn, strategies, from_ms, to_ms, symbols=symbols,
                        on_progress=lambda _trades, _end: bar.update(1),
                        database_url=db.url, evaluations=evaluations, archive=archive,
                        workers=args.workers,
                    )  # fmt: skip
            return result

    try:
        result = _event_loop_run(backtest())
    finally:
        if evaluations is not None:
            evaluations.close()
    files = write_outputs(result, out_dir, title=f"Backtest {names}")
    if evaluations is not None:
        files.append(evaluations.path)
    print(summary_table(result.rows) if result.rows else "no trades in this period")
    print(
        f"\n{result.trades:,} trades replayed in {result.seconds:.1f} s "
        f"({result.trades / max(result.seconds, 1e-9):,.0f} trades/s), "
        f"{result.evaluations:,} evaluations, {len(result.signals)} signals"
        + (f", {result.workers} processes" if result.workers > 1 else "")
    )
    if archive is not None and result.replay.archived_trades:
        print(
            f"{result.replay.archived_trades:,} of the trades read from the tape archive "
            f"({archive.location})"
        )
    for path in files:
        print(f"wrote {path}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    sys.stdout.write(orjson.dumps(settings.redacted(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


EXIT_FAILED = 1
PARITY_DAYS = 30
"""``live status`` compares the live trades of this many days with their paper twins."""


def _live_keys_missing(settings: Settings) -> str | None:
    missing = [k for k in ("api_key", "api_secret") if not getattr(settings.exchange, k)]
    if not missing:
        return None
    names = " and ".join(f"exchange.{k}" for k in missing)
    variables = ", ".join(f"ARB_EXCHANGE_{k.upper()}[_FILE]" for k in missing)
    return f"{names} not set ({variables})"


def _live_command(args: argparse.Namespace, body: Any, *, needs_keys: bool) -> int:
    """Open the database and a signed client of the live environment, run ``body(records,
    reconciler or None)``; an exchange or database that cannot be reached is one line and
    exit status 1."""
    settings = _settings(args)
    configure_logging("warning", pretty=args.pretty or None)
    missing = _live_keys_missing(settings)
    if needs_keys and missing:
        return _fail(f"live {args.live_command}: {missing}")
    import aiohttp

    from arbengine.domain.errors import RetryableError
    from arbengine.exchange.exchange_errors import ExchangeError
    from arbengine.exchange.rest import BinanceRest
    from arbengine.settings import live_endpoints
    from arbengine.store.database import open_database
    from arbengine.store.live_records import LiveRecords
    from arbengine.trading.live_reconciler import LiveReconciler, ReconcileSettings
    from arbengine.trading.live_rules import to_decimal

    live, exchange = settings.live, settings.exchange

    async def run() -> int:
        async with open_database(settings.database, owner=False) as db:
            records = LiveRecords(db)
            if missing:
                return int(await body(records, None, missing))
            async with aiohttp.ClientSession() as session:
                rest = BinanceRest(
                    session,
                    live_endpoints(settings).rest_url,
                    api_key=exchange.api_key,
                    api_secret=exchange.api_secret,
                    recv_window_ms=exchange.recv_window,
                    weight_safety=exchange.weight_safety,
                    timeout_s=exchange.request_timeout.seconds,
                )
                await rest.sync_time()
                reconciler = LiveReconciler(
                    rest,
                    records,
                    ReconcileSettings(live.orphan_policy, to_decimal(live.risk_per_trade_usd)),
                )
                return int(await body(records, reconciler, None))

    try:
        return int(_event_loop_run(run()))
    except ExchangeError as exc:
        print(f"arbengine: live {args.live_command}: exchange: {exc}", file=sys.stderr)
    except RetryableError as exc:
        print(f"arbengine: live {args.live_command}: {exc}", file=sys.stderr)
    return EXIT_FAILED


def cmd_live_status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from arbengine.domain.live_parity import parity_lines
    from arbengine.trading.live_reconcile import has_stop

    async def body(records: Any, reconciler: Any, missing: str | None) -> int:
        trades = await records.open_trades()
        print(f"open trades ({len(trades)}):")
        for t in trades:
            side = "long" if t.direction == 1 else "short"
            print(
                f"  #{t.id} {t.strategy} {t.symbol} {side} {t.status} qty {t.quantity:g} "
                f"entry {t.entry_price} stop {t.stop_price:g}"
            )
        if reconciler is None:
            print(f"exchange: not asked: {missing}")
        else:
            view = await reconciler.exchange_view()
            held = [p for p in view.positions if p.amount != 0]
            print(f"exchange positions ({len(held)}):")
            for p in held:
                guard = "protected" if has_stop(view.orders, p.symbol, p.amount) else "UNPROTECTED"
                print(f"  {p.symbol} {p.amount} entry {p.entry_price} mark {p.mark_price} {guard}")
            print(f"exchange open orders ({len(view.orders)}):")
            for o in view.orders:
                how = ["closePosition"] if o.close_position else ["reduceOnly"] * o.reduce_only
                print("  " + " ".join([o.symbol, o.side, o.type, *how, o.client_id]))
        now = datetime.now(UTC)
        events = await records.events_between(now - timedelta(days=7), now)
        last = events[-args.events :] if args.events > 0 else []
        print(f"last events ({len(last)} of {len(events)} in 7 days):")
        for e in last:
            detail = orjson.dumps(e.detail).decode()
            print(f"  {e.at:%Y-%m-%dT%H:%M:%SZ} {e.level} {e.kind} {e.symbol or '-'} {detail}")
        end_ms = int(now.timestamp() * 1000)
        pairs = await records.trades_with_twins(end_ms - PARITY_DAYS * 86_400_000, end_ms + 1)
        print(f"against paper ({PARITY_DAYS} days):")
        for line in parity_lines(pairs):
            print(f"  {line}")
        return 0

    return _live_command(args, body, needs_keys=False)


def cmd_live_reconcile(args: argparse.Namespace) -> int:
    if not args.dry_run:
        return _fail(
            "live reconcile: only --dry-run is offered; the daemon reconciles by itself "
            "(every live.reconcile_interval)"
        )
    from arbengine.trading.live_reconcile import decision_detail

    async def body(records: Any, reconciler: Any, missing: str | None) -> int:
        decisions = await reconciler.reconcile_once(dry_run=True)
        if not decisions:
            print("nothing to do: the exchange and the records agree")
        for d in decisions:
            detail = " ".join(f"{k}={v}" for k, v in decision_detail(d).items())
            print(f"{d.kind} {d.symbol} {detail}")
        return 0

    return _live_command(args, body, needs_keys=True)


def cmd_live_control(args: argparse.Namespace) -> int:
    """An emergency command for the running daemon, through the database (``live_commands``
    and LISTEN/NOTIFY): printed acknowledgement, exit 0; none within 5 s: exit 1."""
    import getpass

    import msgspec

    from arbengine.domain.control_rows import ControlRequest
    from arbengine.domain.errors import RetryableError
    from arbengine.store.control_commands import NotAcknowledged, ask_daemon
    from arbengine.store.database import open_database

    settings = _settings(args)
    configure_logging("warning", pretty=args.pretty or None)
    command = args.live_command.replace("-", "_")
    symbol = getattr(args, "symbol", None)
    if symbol is not None and not re.fullmatch(r"[A-Z0-9]{2,30}", symbol):
        return _fail(f"live flatten: symbol {symbol!r} is not a symbol (e.g. BTCUSDT)")
    request = ControlRequest(command=command, who=f"cli:{getpass.getuser()}", symbol=symbol)

    async def run() -> Any:
        async with open_database(settings.database, owner=False) as db:
            return await ask_daemon(db.url, request, final_timeout_s=getattr(args, "wait", 0.0))

    try:
        row = _event_loop_run(run())
    except (NotAcknowledged, RetryableError) as exc:
        print(f"arbengine: live {args.live_command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        sys.stdout.write(orjson.dumps(msgspec.to_builtins(row)).decode() + "\n")
    else:
        state = f" ({row.state.line()})" if row.state is not None else ""
        result = row.result or "taken by the daemon, not yet acknowledged"
        print(f"{row.command} {row.status}: {result}{state}")
    return 0 if row.status in ("done", "requested") else EXIT_FAILED


def cmd_bench(args: argparse.Namespace) -> int:
    module_name, summary = BENCHMARKS[args.bench_name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"arbengine bench {args.bench_name}",
                                     description=summary)  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    module.add_arguments(parser)
    args = parser.parse_args(args.bench_args)
    report = module.run(args)
    print(report.to_table())
    if args.json:
        Path(args.json).write_bytes(report.to_json())
    failed = [row.metric for row in report.rows if row.passed is False]
    return 1 if failed else 0


def _run_sim(args: argparse.Namespace) -> int:
    from arbengine.sim import sim_command as sim_cli

    configure_logging("info", pretty=True if args.pretty else None)
    return sim_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arbengine",
        description="Trading engine for Binance USD-M perpetual futures.",
    )
    parser.add_argument("--version", action="version", version=f"arbengine {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", help="settings file (default config/arbengine.toml, or $ARB_CONFIG)"
    )
    common.add_argument("--pretty", action="store_true", help="human-readable logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, parents=[common])

    run = command("run", "run the daemon")
    run.add_argument(
        "--sim",
        action="store_true",
        help="run the simulated exchange inside the daemon and point every client at it",
    )
    run.add_argument("--sim-speed", default="1", help="simulated speed: 1, 10, max (with --sim)")
    run.add_argument("--sim-seed", type=int, default=1, help="market seed (with --sim)")
    run.add_argument("--sim-port", type=int, default=0, help="port of the sim (0: any free one)")
    run.add_argument(
        "--sim-trade-rate", type=float, default=20.0, help="trades/s per symbol (with --sim)"
    )
    run.add_argument(
        "--sim-trade-history", default="1h",
        help="trades the sim keeps for REST (with --sim; it starts with the daemon, so the "
        "daemon's repairs reach back minutes at most)",
    )  # fmt: skip
    run.set_defaults(handler=cmd_run)

    migrate = command("migrate", "apply pending database migrations and exit")
    migrate.set_defaults(handler=cmd_migrate)

    config = command("config", "inspect settings")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_commands.add_parser(
        "show", help="print the effective settings, secrets redacted", parents=[common]
    )
    show.set_defaults(handler=cmd_config_show)

    strategies = command("strategies", "validate strategy files, print their schema")
    strategy_commands = strategies.add_subparsers(dest="strategies_command", required=True,
                                                  metavar="ACTION")  # fmt: skip
    check = strategy_commands.add_parser(
        "check", help="validate files (or directories); one line per problem", parents=[common]
    )
    check.add_argument(
        "files", nargs="*", metavar="FILE", help="default: the daemon's ([engine] strategies_dir)"
    )
    check.set_defaults(handler=cmd_strategies_check)
    schema = strategy_commands.add_parser(
        "schema", help="print the JSON schema of a strategy file", parents=[common]
    )
    schema.set_defaults(handler=cmd_strategies_schema)

    backtest = command("backtest", "replay stored trades through the live pipeline")
    backtest.add_argument(
        "--strategy", action="append", metavar="FILE",
        help="strategy file (repeatable; default: every file in [engine] strategies_dir)",
    )  # fmt: skip
    backtest.add_argument(
        "--from",
        dest="date_from",
        required=True,
        metavar="WHEN",
        help="first tick: 2026-01-01, 2026-01-01T08:00 (UTC) or epoch ms",
    )
    backtest.add_argument(
        "--to",
        dest="date_to",
        required=True,
        metavar="WHEN",
        help="end (exclusive; a bare date means the end of that day)",
    )
    backtest.add_argument("--symbols", help="comma-separated subset of the strategies' symbols")
    backtest.add_argument("--out", metavar="DIR", help="output directory (default backtest-NAME)")
    backtest.add_argument(
        "--evaluations", action="store_true",
        help="also write every evaluation (features, factors, gates) to evaluations.csv",
    )  # fmt: skip
    backtest.add_argument(
        "--workers", type=_count, metavar="N",
        help="processes to split the symbols between (default: the cores it may use, when "
        "over 2 M trades are stored in the range)",
    )  # fmt: skip
    backtest.set_defaults(handler=cmd_backtest)

    archive = command("archive", "the tape archive: what is sealed, seal now, verify the files")
    archive_cli.add_arguments(archive)
    archive.set_defaults(handler=cmd_archive)

    importer = command("import", "load downloaded market data")
    import_kinds = importer.add_subparsers(dest="import_kind", required=True, metavar="KIND")
    aggtrades = import_kinds.add_parser(
        "aggtrades", help="Binance public aggTrades CSV files (plain or zipped)", parents=[common]
    )
    aggtrades.add_argument("files", nargs="+", metavar="FILE")
    aggtrades.add_argument("--symbol", help="symbol, when the file name does not tell it")
    aggtrades.set_defaults(handler=cmd_import_aggtrades)

    bench = command("bench", "run a benchmark and print its figures")
    bench_commands = bench.add_subparsers(dest="bench_name", required=True, metavar="NAME")
    for name, (_module, summary) in BENCHMARKS.items():
        # Its options (and -h) are its module's, parsed by cmd_bench from what is left over.
        sub = bench_commands.add_parser(name, help=summary, add_help=False)
        sub.set_defaults(handler=cmd_bench)

    admin = command("admin", "manage users and invite codes")
    admin_cli.add_arguments(admin)
    admin.set_defaults(handler=cmd_admin)

    live = command(
        "live", "live trading: its state, what reconciliation would do, emergency controls"
    )
    live_commands = live.add_subparsers(dest="live_command", required=True, metavar="ACTION")
    status = live_commands.add_parser(
        "status",
        help="open trades, exchange positions and orders, their protection, last events",
        parents=[common],
    )
    status.add_argument("--events", type=int, default=20, help="how many last events (20)")
    status.set_defaults(handler=cmd_live_status)
    reconcile = live_commands.add_parser(
        "reconcile", help="what reconciliation would do now (with --dry-run)", parents=[common]
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="print the decisions, act on none (required)"
    )
    reconcile.set_defaults(handler=cmd_live_reconcile)
    controls = {
        "pause": "pause new entries in the running daemon (open trades stay protected)",
        "resume": "allow new entries again",
        "flatten": "close every position (or SYMBOL's) at market, verified at zero",
        "cancel-all": "cancel every open order that protects no position, and pause",
    }
    for name, summary in controls.items():
        sub = live_commands.add_parser(name, help=summary, parents=[common])
        sub.add_argument("--json", action="store_true", help="print the acknowledgement as JSON")
        if name == "flatten":
            sub.add_argument("symbol", nargs="?", help="only this symbol's positions")
            sub.add_argument(
                "--wait", type=float, default=0.0, metavar="SECONDS",
                help="wait up to this long for the verification (done, flat) rather than "
                "the acknowledgement (requested)",
            )  # fmt: skip
        sub.set_defaults(handler=cmd_live_control)

    from arbengine.sim import sim_args  # the exchange the tests and benchmarks run

    sim = command("sim", "run the simulated Binance USD-M exchange")
    sim_args.add_arguments(sim)
    sim.set_defaults(handler=_run_sim)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, left_over = parser.parse_known_args(argv)
    if args.handler is cmd_bench:
        args.bench_args = left_over
    elif left_over:
        parser.error(f"unrecognized arguments: {' '.join(left_over)}")
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        return _fail(f"config error: {exc}")
    except FatalError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
