"""A strategy may name only symbols the daemon collects: refused at start and at reload."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from arbengine.sim.server import SimServer
from tests.conftest import REPO
from tests.e2e.collect.conftest import collect_env
from tests.e2e.engine.conftest import PROBE, EngineRun, write_strategy
from tests.support.daemon import DaemonProcess

NOT_CONFIGURED = (
    "is not collected: add it to [collect] symbols (ARB_COLLECT_SYMBOLS) "
    "or remove it from this strategy"
)
# Nothing may reach for the real exchange, even a daemon that stops before it would.
NOWHERE = {
    "ARB_EXCHANGE_REST_URL": "http://127.0.0.1:9",
    "ARB_EXCHANGE_WS_URL": "ws://127.0.0.1:9",
    "ARB_EXCHANGE_COINBASE_URL": "http://127.0.0.1:9",
}


def run_cli(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbengine", *args],
        capture_output=True, text=True, cwd=cwd, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ARB_DATABASE_DATA_DIR": str(cwd / "pg"), **NOWHERE, **env},
    )  # fmt: skip


@pytest.mark.parametrize("collect", ["true", "false"])
def test_a_symbol_that_is_not_collected_stops_the_start_with_one_line(
    tmp_path: Path, collect: str
) -> None:
    # With collection off the daemon serves what is stored: its strategies are still held to
    # [collect] symbols, so switching collection on or off never changes what loads.
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    write_strategy(strategies, {**PROBE, "symbols": ["BTCUSDT", "DOGEUSDT"]})
    env = {
        "ARB_ENGINE_STRATEGIES_DIR": str(strategies),
        "ARB_COLLECT_SYMBOLS": "BTCUSDT,ETHUSDT",
        "ARB_COLLECT_ENABLED": collect,
    }
    result = run_cli(tmp_path, "run", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    problem = f"{strategies / 'probe.json'}: $.symbols[1]: DOGEUSDT {NOT_CONFIGURED}"
    assert result.stderr.splitlines() == [
        f"arbengine: config error: 1 problem in strategies: {problem}"
    ]
    assert "database.ready" not in result.stdout  # refused before anything started

    check = run_cli(tmp_path, "strategies", "check", env=env)
    assert check.returncode == 2
    assert check.stderr.splitlines() == [problem]


def test_the_shipped_strategies_say_to_change_a_copy(tmp_path: Path) -> None:
    # No ./strategies here: the shipped ones (on the four majors) are used.
    env = {"ARB_COLLECT_SYMBOLS": "BTCUSDT,ETHUSDT,SOLUSDT", "ARB_COLLECT_ENABLED": "false"}
    result = run_cli(tmp_path, "run", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("arbengine: config error: 2 problems in strategies: ")
    assert "v51.json: $.symbols[3]: XRPUSDT is not collected: add it to [collect] symbols " in line
    assert "or copy the shipped strategies into ./strategies and remove it there" in line
    assert "remove it from this strategy" not in line


async def test_a_reload_naming_a_symbol_not_collected_keeps_the_old_set(
    spawn_daemon, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    for path in (REPO / "strategies").glob("*.json"):
        (strategies / path.name).write_text(path.read_text())
    daemon: DaemonProcess = await spawn_daemon(
        {**daemon_env, "ARB_ENGINE_STRATEGIES_DIR": str(strategies)}
    )
    await daemon.started()
    await daemon.wait_for("engine.warm_start")

    v52 = json.loads((strategies / "v52.json").read_text())
    v52["symbols"] = [*v52["symbols"], "DOGEUSDT"]
    (strategies / "v52.json").write_text(json.dumps(v52))
    daemon.send(signal.SIGHUP)
    failed = await daemon.wait_for("strategies.reload_failed")
    assert failed["problems"] == [
        f"{strategies / 'v52.json'}: $.symbols[4]: DOGEUSDT {NOT_CONFIGURED}"
    ]
    assert failed["kept"] == "previous set"

    v52["symbols"] = v52["symbols"][:-1]
    v52["entry"]["threshold"] = 75
    (strategies / "v52.json").write_text(json.dumps(v52))
    daemon.send(signal.SIGHUP)
    reloaded = await daemon.wait_for("strategies.reloaded")
    assert sorted(reloaded["strategies"]) == ["v51", "v52"]
    assert daemon.process is not None
    assert daemon.process.returncode is None


async def test_a_symbol_the_exchange_stops_is_named_and_refused_at_the_next_reload(
    engine_run: EngineRun,
) -> None:
    run = engine_run
    run.sim.delist("ETHUSDT")
    stopped = await run.daemon.wait_for("strategies.symbol_not_collected", 30)
    assert stopped["symbol"] == "ETHUSDT"
    assert stopped["strategies"] == ["probe"]
    assert stopped["level"] == "warning"
    assert "the exchange stopped it" in stopped["reason"]

    # The same set, loaded again, names a symbol that is no longer collected.
    run.daemon.send(signal.SIGHUP)
    failed = await run.daemon.wait_for("strategies.reload_failed")
    [problem] = failed["problems"]
    assert problem.startswith(
        f"{run.strategies / 'probe.json'}: $.symbols[1]: ETHUSDT is not collected: "
        "the exchange stopped it (the exchange answered "
    )
    assert problem.endswith("; remove it from this strategy")

    write_strategy(run.strategies, {**PROBE, "symbols": ["BTCUSDT"]})
    run.daemon.send(signal.SIGHUP)
    reloaded = await run.daemon.wait_for("strategies.reloaded")
    assert list(reloaded["strategies"]) == ["probe"]
    assert run.daemon.process is not None
    assert run.daemon.process.returncode is None


async def test_a_symbol_the_exchange_does_not_list_at_start_is_named_and_refused_at_reload(
    engine_sim: SimServer,
    database_url: str,
    daemon_env: dict[str, str],
    spawn_daemon,
    tmp_path: Path,
) -> None:
    # A start checks [collect] symbols only (what the exchange lists is not known yet).
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    write_strategy(strategies, {**PROBE, "symbols": ["BTCUSDT", "NOPEUSDT"]})
    env = {
        **collect_env(engine_sim, daemon_env, database_url),
        "ARB_COLLECT_SYMBOLS": "BTCUSDT,NOPEUSDT",
        "ARB_ENGINE_STRATEGIES_DIR": str(strategies),
    }
    daemon: DaemonProcess = await spawn_daemon(env)
    await daemon.started()
    skipped = await daemon.wait_for("strategies.symbol_not_collected", 30)
    assert skipped["symbol"] == "NOPEUSDT"
    assert skipped["strategies"] == ["probe"]
    assert skipped["reason"].startswith("is not collected: the exchange stopped it (")
    assert skipped["hint"] == "remove it from these strategies and reload (SIGHUP)"

    await daemon.wait_for("engine.warm_start")
    daemon.send(signal.SIGHUP)
    failed = await daemon.wait_for("strategies.reload_failed")
    [problem] = failed["problems"]
    assert problem.startswith(
        f"{strategies / 'probe.json'}: $.symbols[1]: NOPEUSDT is not collected: "
        "the exchange stopped it ("
    )
    assert daemon.process is not None
    assert daemon.process.returncode is None
