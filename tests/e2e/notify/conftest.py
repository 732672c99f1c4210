"""The engine daemon's fixtures (``tests/e2e/engine``), with the webhooks set by the tests."""

from tests.e2e.engine.conftest import (  # noqa: F401 (fixtures)
    engine_before_start,
    engine_run,
    engine_sim,
    engine_sim_overrides,
    engine_strategies,
)
from tests.e2e.live.conftest import live_env, live_sim  # noqa: F401 (fixtures)
