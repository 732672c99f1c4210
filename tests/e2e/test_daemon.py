"""The daemon as a real process: start-up, signals, health, logs, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest

from tests.conftest import REPO
from tests.support.daemon import DaemonProcess
from tests.support.postgres import PgTestServer
from tests.support.waiting import eventually


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json(content_type=None)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbengine", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd=REPO,
        timeout=60,
    )


def test_bad_setting_exits_2_with_one_line_naming_the_key() -> None:
    result = run_cli("run", env={"ARB_HTTP_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "arbengine: config error: ARB_HTTP_PORT (http.port): expected int (got 'eighty')"
    ]


def test_unknown_key_in_the_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "arb.toml"
    config.write_text("[runtime]\nshutdown_dedline = '5s'\n")
    result = run_cli("run", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"arbengine: config error: {config}: [runtime] shutdown_dedline: unknown key"
    )


def test_config_show_redacts_secrets() -> None:
    result = run_cli("config", "show", env={"ARB_DATABASE_URL": "postgresql://u:hunter2@h/db"})
    assert result.returncode == 0
    shown = orjson.loads(result.stdout)
    assert shown["database"]["url"] == "***"
    assert "hunter2" not in result.stdout
    assert shown["http"]["port"] == 8080


async def test_daemon_serves_health_server_metrics_and_json_404(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    daemon: DaemonProcess = await spawn_daemon(daemon_env)
    base = await daemon.started()

    status, body = await get_json(f"{base}/api/health")
    assert (status, body) == (
        200,
        {"status": "ok", "process": "ok", "database": "ok", "reasons": []},
    )

    # /api/server needs a Bearer token; what it reports is tested in tests/e2e/api/test_routes.py.
    status, body = await get_json(f"{base}/api/server")
    assert status == 401
    assert body["error"]["code"] == "unauthorized"

    status, body = await get_json(f"{base}/no/such/path")
    assert status == 404
    assert body["error"]["code"] == "not_found"

    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert 'arb_component_state{component="partitions",state="running"} 1.0' in text


async def test_the_daemon_runs_from_a_directory_without_settings_or_strategies(
    spawn_daemon, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        k: v for k, v in daemon_env.items() if k not in ("ARB_CONFIG", "ARB_ENGINE_STRATEGIES_DIR")
    }
    daemon: DaemonProcess = await spawn_daemon(env)  # its working directory is tmp_path
    assert not (tmp_path / "strategies").exists()
    assert not (tmp_path / "config").exists()
    base = await daemon.started()
    assert daemon.events("engine.strategies_dir")[0]["shipped"] is True
    warm = await daemon.wait_for("engine.warm_start")
    assert sorted(warm["strategies"]) == ["v51", "v52"]
    assert (await get_json(f"{base}/api/health"))[0] == 200
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0


def test_a_named_strategies_dir_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "my-strategies"
    result = run_cli("run", env={"ARB_ENGINE_STRATEGIES_DIR": str(missing)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"arbengine: config error: 1 problem in strategies: {missing}: not a directory"
    ]


async def test_sighup_is_logged_and_the_daemon_keeps_running(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    daemon: DaemonProcess = await spawn_daemon(daemon_env)
    base = await daemon.started()
    daemon.send(signal.SIGHUP)
    await daemon.wait_for("daemon.reloaded")
    assert daemon.events("daemon.signal")[-1]["signal"] == "SIGHUP"
    status, _ = await get_json(f"{base}/api/health")
    assert status == 200
    assert daemon.process is not None
    assert daemon.process.returncode is None


async def test_a_sighup_during_start_up_is_applied_once_the_engine_runs(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    daemon: DaemonProcess = await spawn_daemon(daemon_env)
    assert daemon.process is not None
    maps = Path(f"/proc/{daemon.process.pid}/maps")

    async def importing_the_database_driver() -> bool:
        return "asyncpg/protocol" in maps.read_text()

    # Well inside its first second: the process is still importing its modules.
    await eventually(importing_the_database_driver, interval=0.002, what="asyncpg loaded")
    daemon.send(signal.SIGHUP)

    base = await daemon.started()
    order = [line["event"] for line in daemon.lines]
    assert order.index("daemon.signal") < order.index("daemon.started")
    assert daemon.events("daemon.signal")[0]["signal"] == "SIGHUP"
    # The reload waits for the engine and finds the set it loaded at start-up.
    await daemon.wait_for("daemon.reloaded")
    assert daemon.events("strategies.unchanged")
    assert not daemon.events("strategies.reloaded")
    assert (await get_json(f"{base}/api/health"))[0] == 200
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0


async def test_sigterm_exits_0_within_deadline_and_stops_embedded_postgres(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    env = {**daemon_env, "ARB_RUNTIME_SHUTDOWN_DEADLINE": "10s"}
    daemon: DaemonProcess = await spawn_daemon(env)
    await daemon.started()
    ready = daemon.events("database.ready")[0]
    assert ready["embedded"] is True
    server_pid = ready["server_pid"]
    assert psutil.pid_exists(server_pid)
    assert daemon.process is not None
    children = [p.pid for p in psutil.Process(daemon.process.pid).children(recursive=True)]

    began = time.monotonic()
    daemon.send(signal.SIGTERM)
    code = await daemon.wait_exit(timeout=15)
    elapsed = time.monotonic() - began

    assert code == 0
    assert elapsed < 10
    assert daemon.events("daemon.stopped")[-1]["exit_code"] == 0

    with contextlib.suppress(psutil.NoSuchProcess):
        await asyncio.to_thread(psutil.Process(server_pid).wait, 10)
    assert not psutil.pid_exists(server_pid)
    leftovers = [
        p
        for p in psutil.process_iter(["pid", "cmdline"])
        if env["ARB_DATABASE_DATA_DIR"] in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
    assert all(
        not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        for pid in children
    )


async def test_a_port_in_use_is_one_line_and_exit_2_with_the_database_stopped(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon: DaemonProcess = await spawn_daemon({**daemon_env, "ARB_HTTP_PORT": str(port)})
        assert await daemon.wait_exit(timeout=60) == 2
    assert daemon.raw[-1] == f"arbengine: cannot listen on 127.0.0.1:{port}: address already in use"
    for text in daemon.raw[:-1]:
        orjson.loads(text)  # the log before it, no traceback
    server_pid = daemon.events("database.ready")[0]["server_pid"]
    with contextlib.suppress(psutil.NoSuchProcess):
        await asyncio.to_thread(psutil.Process(server_pid).wait, 10)
    assert not psutil.pid_exists(server_pid)
    assert not (Path(daemon_env["ARB_DATABASE_DATA_DIR"]) / "postmaster.pid").exists()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"ARB_DATABASE_DATA_DIR": "{file}/pg"},
            "[database] data_dir {file}/pg: cannot use it: file exists",
        ),
        (
            {"ARB_AUTH_SECRET_FILE": "{file}/jwt.secret"},
            "config error: [auth] secret_file {file}/jwt.secret: cannot keep the token "
            "signing key there: not a directory",
        ),
        (
            {"ARB_HTTP_HOST": "10.255.255.1"},
            "cannot listen on 10.255.255.1:{port}: cannot assign requested address",
        ),
    ],
    ids=["data-dir-under-a-file", "secret-file-under-a-file", "foreign-address"],
)
def test_start_up_failures_are_one_line_and_exit_2(
    daemon_env: dict[str, str], tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a directory\n")
    port = daemon_env["ARB_HTTP_PORT"]
    env = {**daemon_env, **{k: v.format(file=file) for k, v in variables.items()}}
    result = run_cli("run", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == ["arbengine: " + message.format(file=file, port=port)]
    assert "Traceback" not in result.stdout


async def test_every_log_line_is_json_with_the_standard_keys(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    daemon: DaemonProcess = await spawn_daemon(daemon_env)
    base = await daemon.started()
    await get_json(f"{base}/api/health")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0
    assert daemon.raw, "the daemon logged nothing"
    for text in daemon.raw:
        line = orjson.loads(text)
        assert {"timestamp", "level", "event", "component"} <= line.keys(), text
        assert line["timestamp"].endswith("Z")


async def test_health_turns_503_when_the_database_stops_and_recovers(
    spawn_daemon, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "external-pg"
    server = PgTestServer(data_dir)
    try:
        env = {**daemon_env, "ARB_DATABASE_URL": server.url}
        daemon: DaemonProcess = await spawn_daemon(env)
        base = await daemon.started()
        assert daemon.events("database.ready")[0]["embedded"] is False
        assert (await get_json(f"{base}/api/health"))[0] == 200

        await asyncio.to_thread(server.stop)

        async def health_is(code: int) -> dict:
            while True:
                status, body = await get_json(f"{base}/api/health")
                if status == code:
                    return body
                await asyncio.sleep(0.1)

        body = await asyncio.wait_for(health_is(503), 20)
        assert body["status"] == "unavailable"
        assert body["process"] == "ok"
        assert body["database"].startswith("error:")

        server = await asyncio.to_thread(PgTestServer, data_dir)
        body = await asyncio.wait_for(health_is(200), 30)
        assert body["database"] == "ok"
    finally:
        server.stop()


async def test_a_second_daemon_on_the_same_data_dir_is_refused(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    first: DaemonProcess = await spawn_daemon(daemon_env)
    base = await first.started()
    second: DaemonProcess = await spawn_daemon({**daemon_env, "ARB_HTTP_PORT": "0"})
    assert await second.wait_exit(timeout=30) == 2
    assert second.raw[-1] == (
        "arbengine: another arbengine daemon is using the database in "
        f"{Path(daemon_env['ARB_DATABASE_DATA_DIR']).resolve()}"
    )
    assert (await get_json(f"{base}/api/health"))[0] == 200


async def test_migrate_beside_a_running_daemon_leaves_its_database_running(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    daemon: DaemonProcess = await spawn_daemon(daemon_env)
    base = await daemon.started()
    migrate: DaemonProcess = await spawn_daemon(daemon_env, ["migrate"])
    assert await migrate.wait_exit(timeout=60) == 0
    applied = migrate.events("migrations.applied")[0]
    assert applied["applied"] == []
    assert (await get_json(f"{base}/api/health"))[0] == 200


def late_database(tmp_path: Path) -> tuple[Path, str]:
    """A data directory with no server yet, and the URL its server will have."""
    data_dir = tmp_path / "late-pg"
    return data_dir, f"postgresql://postgres:@/postgres?host={data_dir}"


async def test_start_waits_for_postgres_and_goes_on_when_it_comes(
    spawn_daemon, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir, url = late_database(tmp_path)
    env = {
        **daemon_env,
        "ARB_DATABASE_URL": url,
        "ARB_RUNTIME_RESTART_INITIAL": "100ms",
        "ARB_RUNTIME_RESTART_MAX": "300ms",
    }
    daemon: DaemonProcess = await spawn_daemon(env)
    line = await daemon.wait_for(
        lambda line: line.get("event") == "database.unavailable" and line["attempt"] >= 3
    )
    assert line["level"] == "warning"
    assert line["error"].startswith("cannot connect to PostgreSQL (ARB_DATABASE_URL): ")
    assert line["retry_in_s"] <= 0.3
    server = await asyncio.to_thread(PgTestServer, data_dir)
    try:
        assert server.url == url
        base = await daemon.started()
        assert (await get_json(f"{base}/api/health"))[0] == 200
    finally:
        await daemon.stop()  # before its database goes
        server.stop()


async def test_sigterm_while_waiting_for_postgres_exits_0(
    spawn_daemon, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    _, url = late_database(tmp_path)
    daemon: DaemonProcess = await spawn_daemon({**daemon_env, "ARB_DATABASE_URL": url})
    await daemon.wait_for("database.unavailable")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=15) == 0
    assert daemon.events("daemon.stopped_waiting_for_database")
    assert not daemon.events("daemon.started")


def test_a_database_that_refuses_us_is_a_config_error(pg_server: PgTestServer) -> None:
    env = {
        "ARB_DATABASE_URL": pg_server.url_for("no_such_database"),
        "ARB_COLLECT_ENABLED": "false",
        "ARB_HTTP_PORT": "0",
        "ARB_LOG_PRETTY": "false",
    }
    result = run_cli("run", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "arbengine: config error: PostgreSQL refused the connection (ARB_DATABASE_URL): "
        'InvalidCatalogNameError: database "no_such_database" does not exist'
    ]
