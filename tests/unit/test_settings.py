"""Settings: defaults, the documented file, ARB_* overrides, and one-line errors."""

from __future__ import annotations

import copy
import pickle
import tomllib
from pathlib import Path

import pytest

from arbengine.domain.errors import ConfigError
from arbengine.settings import (
    TESTNET_PRIVATE_WS_URL,
    TESTNET_REST_URL,
    EngineSettings,
    LiveEndpoints,
    Settings,
    live_endpoints,
    load_settings,
    shipped,
    strategies_dir,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "arbengine.toml"


def test_documented_file_states_every_default() -> None:
    documented = tomllib.loads(CONFIG.read_text())
    defaults = Settings().redacted()
    assert documented == defaults


def test_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[http]\nport = 9000\nhost = "0.0.0.0"\n')
    settings = load_settings(path, {"ARB_HTTP_PORT": "9100", "ARB_RUNTIME_MAX_RESTARTS": "7"})
    assert settings.http.port == 9100
    assert settings.http.host == "0.0.0.0"
    assert settings.runtime.max_restarts == 7


def test_database_url_variable_and_list_values() -> None:
    settings = load_settings(
        None,
        {
            "ARB_DATABASE_URL": "postgresql://u:pw@db/arb",
            "ARB_HTTP_CORS_ORIGINS": "https://a.example, https://b.example",
            "ARB_LOG_PRETTY": "true",
        },
    )
    assert settings.database.url == "postgresql://u:pw@db/arb"
    assert settings.http.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.log.pretty is True


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://u:pw@db/arb\n")
    settings = load_settings(None, {"ARB_DATABASE_URL_FILE": str(secret)})
    assert settings.database.url == "postgresql://u:pw@db/arb"


def test_secret_file_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^ARB_DATABASE_URL_FILE: cannot read secret file"):
        load_settings(None, {"ARB_DATABASE_URL_FILE": str(tmp_path / "absent")})


def test_secrets_redacted_in_repr_and_display() -> None:
    settings = load_settings(None, {"ARB_DATABASE_URL": "postgresql://u:hunter2@db/arb"})
    assert "hunter2" not in repr(settings)
    assert settings.redacted()["database"]["url"] == "***"
    assert "hunter2" not in str(settings.redacted())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARB_HTTP_PORT": "abc"}, "ARB_HTTP_PORT (http.port): expected int (got 'abc')"),
        ({"ARB_HTTP_PORT": "-1"}, "ARB_HTTP_PORT (http.port): expected an integer ≥ 0 (got '-1')"),
        ({"ARB_HTTP_PORT": "70000"}, "ARB_HTTP_PORT (http.port): expected an integer ≤ 65535"),
        ({"ARB_HTTP_PROT": "1"}, "ARB_HTTP_PROT: unknown setting http.prot"),
        ({"ARB_NOPE_X": "1"}, "ARB_NOPE_X: unknown setting section 'nope'"),
        (
            {"ARB_RUNTIME_SHUTDOWN_DEADLINE": "20"},
            "ARB_RUNTIME_SHUTDOWN_DEADLINE (runtime.shutdown_deadline): expected a duration",
        ),
        ({"ARB_LOG_LEVEL": "loud"}, "ARB_LOG_LEVEL (log.level): expected one of debug"),
        (
            {"ARB_EXCHANGE_WEIGHT_SAFETY": "1.5"},
            "ARB_EXCHANGE_WEIGHT_SAFETY (exchange.weight_safety): "
            "expected a number ≤ 1 (got '1.5')",
        ),
        (
            {"ARB_EXCHANGE_WEIGHT_SAFETY": "0"},
            "ARB_EXCHANGE_WEIGHT_SAFETY (exchange.weight_safety): expected a number > 0 (got '0')",
        ),
        (
            {"ARB_EXCHANGE_WEIGHT_SAFETY": "most"},
            "ARB_EXCHANGE_WEIGHT_SAFETY (exchange.weight_safety): expected float (got 'most')",
        ),
        (
            {"ARB_COLLECT_RATIO_PERIOD": "3m"},
            "ARB_COLLECT_RATIO_PERIOD (collect.ratio_period): "
            "expected one of 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d (got '3m')",
        ),
        ({"ARB_LOG_PRETTY": "maybe"}, "ARB_LOG_PRETTY (log.pretty): expected bool (got 'maybe')"),
        (
            {"ARB_DATABASE_POOL_MIN_SIZE": "20"},
            "settings [database]: pool_min_size must not exceed pool_max_size",
        ),
        (
            {"ARB_ARCHIVE_SEAL_INTERVAL": "500ms"},
            "settings [archive]: seal_interval must be at least 1s",
        ),
        (
            {"ARB_ARCHIVE_DIR": "3d://bucket"},
            "settings [archive]: dir: not a directory or a URL like s3://bucket/prefix",
        ),
    ],
)
def test_bad_environment_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, env)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[http]\nport = 'x'\n", "[http] port: expected int (got 'x')"),
        ("[http]\nprot = 1\n", "[http] prot: unknown key"),
        ("[htp]\nport = 1\n", "unknown section [htp]"),
        ("[runtime]\nrestart_max = '5x'\n", "[runtime] restart_max: expected a duration"),
        ("[http\n", "not valid TOML"),
        ("[http]\ncors_origins = [1]\n", "[http] cors_origins: expected a list of str (got [1])"),
        ("[collect]\nmax_backfill = 24\n", "[collect] max_backfill: expected a duration like"),
        (
            "[runtime]\nmax_restarts = 0\n",
            "[runtime] max_restarts: expected an integer ≥ 1 (got 0)",
        ),
    ],
)
def test_bad_file_values_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, {})
    assert str(err.value).startswith(f"{path}: {message}")


def test_durations_are_converted_once_at_load_and_shown_as_written(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[engine]\ngrace = "2500ms"\n')
    settings = load_settings(path, {"ARB_COLLECT_REPAIR_GRACE": "90s"})
    assert (settings.engine.grace.ms, settings.engine.grace.seconds) == (2_500, 2.5)
    assert (settings.collect.repair_grace.ms, settings.collect.repair_grace.seconds) == (90_000, 90)
    assert Settings().collect.max_backfill.seconds == 24 * 3600
    shown = settings.redacted()
    assert (shown["engine"]["grace"], shown["collect"]["repair_grace"]) == ("2500ms", "90s")
    assert shown["collect"]["max_backfill"] == "24h"  # not respelled as "1d"


def test_settings_can_be_copied_and_pickled() -> None:
    settings = load_settings(None, {"ARB_COLLECT_REPAIR_GRACE": "750ms"})
    assert copy.deepcopy(settings) == settings
    again = pickle.loads(pickle.dumps(settings))
    assert (again, again.collect.repair_grace.seconds) == (settings, 0.75)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="settings file not found"):
        load_settings(None, {"ARB_CONFIG": str(tmp_path / "missing.toml")})


def test_the_package_ships_the_top_level_settings_file_and_strategies() -> None:
    assert shipped("arbengine.toml").read_bytes() == CONFIG.read_bytes()
    strategies = {p.name: p.read_bytes() for p in shipped("strategies").glob("*.json")}
    assert strategies == {p.name: p.read_bytes() for p in (REPO / "strategies").glob("*.json")}
    assert {"v51.json", "v52.json"} <= strategies.keys()


def test_without_a_settings_file_the_shipped_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, {}) == Settings()


def test_the_default_strategies_dir_is_the_local_one_else_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert strategies_dir(EngineSettings()) == shipped("strategies")
    (tmp_path / "strategies").mkdir()
    assert strategies_dir(EngineSettings()) == Path("strategies")
    # A named directory is used as named (loading it fails if it does not exist).
    named = EngineSettings(strategies_dir=str(tmp_path / "nowhere"))
    assert strategies_dir(named) == tmp_path / "nowhere"


# -- [live] ---------------------------------------------------------------------------------

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
KEYS = {"ARB_EXCHANGE_API_KEY": API_KEY, "ARB_EXCHANGE_API_SECRET": API_SECRET}


def test_live_trading_is_off_and_on_the_testnet_by_default() -> None:
    live = load_settings(None, {}).live
    assert (live.enabled, live.environment, live.strategies) == (False, "testnet", [])
    assert (live.orphan_policy, live.reconcile_interval.seconds) == ("protect", 30)
    assert live_endpoints(Settings()) == LiveEndpoints(TESTNET_REST_URL, TESTNET_PRIVATE_WS_URL)


def test_live_settings_from_the_environment() -> None:
    settings = load_settings(
        None,
        {
            **KEYS,
            "ARB_LIVE_ENABLED": "true",
            "ARB_LIVE_STRATEGIES": "v52, v51",
            "ARB_LIVE_RISK_PER_TRADE_USD": "25.5",
            "ARB_LIVE_MAX_POSITIONS": "3",
            "ARB_LIVE_LEVERAGE": "125",
            "ARB_LIVE_ORPHAN_POLICY": "flatten",
            "ARB_LIVE_RECONCILE_INTERVAL": "1m",
        },
    )
    live = settings.live
    assert (live.enabled, live.strategies, live.risk_per_trade_usd) == (True, ["v52", "v51"], 25.5)
    assert (live.max_positions, live.leverage, live.orphan_policy) == (3, 125, "flatten")
    assert live.reconcile_interval.ms == 60_000


def test_production_endpoints_are_the_exchange_ones_unless_overridden(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[live]\nenvironment = "production"\n')
    settings = load_settings(path, {})
    assert live_endpoints(settings) == LiveEndpoints(
        "https://fapi.binance.com", "wss://fstream.binance.com/private"
    )
    settings = load_settings(
        path, {"ARB_LIVE_REST_URL": "https://proxy.example", "ARB_EXCHANGE_REST_URL": "http://x"}
    )
    assert live_endpoints(settings) == LiveEndpoints(
        "https://proxy.example", "wss://fstream.binance.com/private"
    )
    testnet = load_settings(None, {"ARB_LIVE_PRIVATE_WS_URL": "ws://127.0.0.1:9/private"})
    assert live_endpoints(testnet) == LiveEndpoints(TESTNET_REST_URL, "ws://127.0.0.1:9/private")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ARB_LIVE_ENABLED": "true", "ARB_LIVE_STRATEGIES": "v52"},
            "settings: live.enabled on the testnet requires exchange.api_key and "
            "exchange.api_secret (set ARB_EXCHANGE_API_KEY[_FILE], ARB_EXCHANGE_API_SECRET[_FILE])",
        ),
        (
            {
                "ARB_LIVE_ENABLED": "true",
                "ARB_LIVE_STRATEGIES": "v52",
                "ARB_LIVE_ENVIRONMENT": "production",
                "ARB_EXCHANGE_API_KEY": API_KEY,
            },
            "settings: live.enabled on production requires exchange.api_secret "
            "(set ARB_EXCHANGE_API_SECRET[_FILE])",
        ),
        (
            {**KEYS, "ARB_LIVE_ENABLED": "true"},
            "settings: live.enabled requires at least one strategy in live.strategies",
        ),
        (
            {**KEYS, "ARB_LIVE_REST_URL": "https://fapi.binance.com"},
            "settings [live]: rest_url: fapi.binance.com is production Binance but environment "
            'is "testnet"; set environment = "production" to trade real money',
        ),
        (
            {**KEYS, "ARB_LIVE_PRIVATE_WS_URL": "wss://fstream.binance.com/private"},
            "settings [live]: private_ws_url: fstream.binance.com is production Binance",
        ),
        (
            {**KEYS, "ARB_LIVE_REST_URL": "fapi.example"},
            "settings [live]: rest_url: 'fapi.example' is not a http or https URL",
        ),
        (
            {**KEYS, "ARB_LIVE_PRIVATE_WS_URL": "https://x.example"},
            "settings [live]: private_ws_url: 'https://x.example' is not a ws or wss URL",
        ),
        (
            {**KEYS, "ARB_LIVE_ENVIRONMENT": "mainnet"},
            "ARB_LIVE_ENVIRONMENT (live.environment): expected one of testnet, production "
            "(got 'mainnet')",
        ),
        (
            {**KEYS, "ARB_LIVE_LEVERAGE": "0"},
            "ARB_LIVE_LEVERAGE (live.leverage): expected an integer ≥ 1",
        ),
        (
            {**KEYS, "ARB_LIVE_LEVERAGE": "126"},
            "ARB_LIVE_LEVERAGE (live.leverage): expected an integer ≤ 125 (got '126')",
        ),
        (
            {**KEYS, "ARB_LIVE_RISK_PER_TRADE_USD": "0"},
            "ARB_LIVE_RISK_PER_TRADE_USD (live.risk_per_trade_usd): expected a number > 0",
        ),
        (
            {**KEYS, "ARB_LIVE_MAX_POSITIONS": "0"},
            "ARB_LIVE_MAX_POSITIONS (live.max_positions): expected an integer ≥ 1 (got '0')",
        ),
        (
            {**KEYS, "ARB_LIVE_ORPHAN_POLICY": "ignore"},
            "ARB_LIVE_ORPHAN_POLICY (live.orphan_policy): expected one of protect, flatten, alert",
        ),
        (
            {**KEYS, "ARB_LIVE_RECONCILE_INTERVAL": "500ms"},
            "settings [live]: reconcile_interval must be at least 1s",
        ),
        (
            {**KEYS, "ARB_LIVE_STRATEGIES": "v52,v51,v52"},
            "settings [live]: strategies: a name is listed twice (['v52', 'v51', 'v52'])",
        ),
    ],
)
def test_bad_live_settings_name_the_key_and_never_show_a_secret(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, env)
    text = str(err.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert API_KEY not in text
    assert API_SECRET not in text


def test_a_wrongly_typed_key_is_named_without_its_value(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(f'[exchange]\napi_key = ["{API_KEY}"]\napi_secret = 12345678\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, {})
    assert str(err.value) == f"{path}: [exchange] api_key: expected str (got ***)"
    assert API_KEY not in str(err.value)


def test_live_keys_from_files_are_redacted_everywhere(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(API_KEY + "\n")
    (tmp_path / "secret").write_text(API_SECRET + "\n")
    settings = load_settings(
        None,
        {
            "ARB_EXCHANGE_API_KEY_FILE": str(tmp_path / "key"),
            "ARB_EXCHANGE_API_SECRET_FILE": str(tmp_path / "secret"),
            "ARB_LIVE_ENABLED": "true",
            "ARB_LIVE_ENVIRONMENT": "production",
            "ARB_LIVE_STRATEGIES": "v52",
        },
    )
    assert (settings.exchange.api_key, settings.exchange.api_secret) == (API_KEY, API_SECRET)
    assert settings.live.environment == "production"
    shown = [repr(settings), str(settings), repr(settings.exchange), str(settings.redacted())]
    for text in shown:
        assert API_KEY not in text
        assert API_SECRET not in text
    assert settings.redacted()["exchange"]["api_key"] == "***"
    assert settings.redacted()["exchange"]["api_secret"] == "***"
