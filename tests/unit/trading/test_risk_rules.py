"""The risk guard's sync core: every gate rule at its boundary, the monitor's transitions,
the breaker's latch, auto-resume (cooldown, next UTC day, the admin's pause)."""

from __future__ import annotations

import dataclasses

import pytest

from arbengine.domain.risk_rows import RiskState
from arbengine.settings import RiskSettings, load_settings
from arbengine.trading.risk_rules import (
    ALLOWED,
    DAY_MS,
    EntryIntent,
    Refused,
    RiskLimits,
    RiskView,
    check_entry,
    day_start_ms,
    evaluate,
    held_too_long,
    refused,
)

NOW = 1_780_000_000_000 + 12 * 3_600_000  # midday UTC
LIMITS = RiskLimits(
    max_positions=2,
    max_positions_per_symbol=1,
    daily_loss_r=3.0,
    daily_loss_usd=100.0,
    unrealised_loss_usd=50.0,
    balance_floor_usd=1000.0,
    reduce_at=0.8,
    max_tape_age_ms=60_000,
    max_premium_index_age_ms=30_000,
    max_indicator_age_ms=900_000,
    max_user_stream_age_ms=30_000,
    cooldown_ms=600_000,
)
INTENT = EntryIntent("BTCUSDT", "v52", NOW, frozenset({"tape", "premium_index", "open_interest"}))
FRESH = RiskView(
    balance_usd=5000.0,
    inputs_at={
        ("BTCUSDT", "tape"): NOW - 1000,
        ("BTCUSDT", "premium_index"): NOW - 1000,
        ("BTCUSDT", "open_interest"): NOW - 1000,
    },
    user_stream_behind_since=None,
)
ACTIVE = RiskState(since_ms=NOW - 1000, breaks_day_ms=day_start_ms(NOW))


def gate(view: RiskView, state: RiskState = ACTIVE, now: int = NOW) -> Refused | None:
    decision = check_entry(INTENT, view, state, LIMITS, now)
    return None if decision == ALLOWED else decision  # type: ignore[return-value]


def with_(**changes: object) -> RiskView:
    return dataclasses.replace(FRESH, **changes)  # type: ignore[arg-type]


def test_a_fresh_flat_account_may_enter() -> None:
    assert gate(FRESH) is None


@pytest.mark.parametrize(
    ("view", "rule"),
    [
        (with_(positions={"ETHUSDT": 1, "SOLUSDT": 1}), "max_positions"),
        (with_(positions={"BTCUSDT": 1}), "max_positions_per_symbol"),
        (with_(daily_realised_r=-3.0), "daily_loss_r"),
        (with_(daily_realised_usd=-100.0), "daily_loss_usd"),
        (with_(unrealised_usd=-50.0), "unrealised_loss_usd"),
        (with_(balance_usd=1000.0), "balance_floor"),
        (with_(user_stream_behind_since=NOW - 30_001), "stale_user_stream"),
        (with_(user_stream_behind_since=0), "stale_user_stream"),
        (with_(holes={"BTCUSDT": 1}), "tape_hole"),
    ],
)
def test_each_account_rule_refuses_at_its_limit(view: RiskView, rule: str) -> None:
    refusal = gate(view)
    assert refusal is not None
    assert refusal.rule == rule


def test_a_loss_short_of_the_reducing_share_is_allowed_and_at_it_refused() -> None:
    assert gate(with_(daily_realised_r=-2.39)) is None
    refusal = gate(with_(daily_realised_r=-2.4))
    assert refusal is not None
    assert refusal.rule == "daily_loss_r"
    assert refusal.values == {"lost": 2.4, "limit": 3.0, "reduce_at": 0.8}


def test_balance_just_above_the_floor_is_allowed() -> None:
    assert gate(with_(balance_usd=1000.01)) is None


def test_a_profit_never_trips_a_loss_limit() -> None:
    assert gate(with_(daily_realised_r=10.0, daily_realised_usd=500.0, unrealised_usd=80)) is None


@pytest.mark.parametrize(
    ("name", "limit", "rule"),
    [
        ("tape", 60_000, "stale_tape"),
        ("premium_index", 30_000, "stale_premium_index"),
        ("open_interest", 900_000, "stale_indicator"),
    ],
)
def test_each_input_is_refused_just_past_its_age_limit(name: str, limit: int, rule: str) -> None:
    inputs = dict(FRESH.inputs_at)
    inputs[("BTCUSDT", name)] = NOW - limit
    assert gate(with_(inputs_at=inputs)) is None
    inputs[("BTCUSDT", name)] = NOW - limit - 1
    refusal = gate(with_(inputs_at=inputs))
    assert refusal is not None
    assert refusal.rule == rule
    assert refusal.values == {
        "symbol": "BTCUSDT",
        "input": name,
        "age_ms": limit + 1,
        "limit_ms": limit,
    }


def test_an_input_never_received_is_stale() -> None:
    inputs = dict(FRESH.inputs_at)
    del inputs[("BTCUSDT", "premium_index")]
    refusal = gate(with_(inputs_at=inputs))
    assert refusal is not None
    assert refusal.rule == "stale_premium_index"
    assert refusal.values["age_ms"] is None


def test_a_series_published_every_few_hours_is_not_timed() -> None:
    intent = EntryIntent("BTCUSDT", "v52", NOW, frozenset({"tape", "funding_rate"}))
    assert check_entry(intent, FRESH, ACTIVE, LIMITS, NOW) == ALLOWED


def test_a_stream_in_step_is_never_stale_however_long_since_the_last_round() -> None:
    intent = EntryIntent("BTCUSDT", "v52", NOW, frozenset())
    assert check_entry(intent, FRESH, ACTIVE, LIMITS, NOW + 3_600_000) == ALLOWED


def test_another_symbols_stale_data_or_hole_does_not_refuse() -> None:
    inputs = {**FRESH.inputs_at, ("ETHUSDT", "tape"): NOW - 10 * 60_000}
    assert gate(with_(inputs_at=inputs, holes={"ETHUSDT": 2})) is None


@pytest.mark.parametrize("state", ["REDUCING", "HALTED"])
def test_a_state_other_than_active_refuses_every_entry(state: str) -> None:
    held = RiskState(state=state, rule="balance_floor", reason="balance low")  # type: ignore[arg-type]
    refusal = gate(FRESH, held)
    assert refusal is not None
    assert refusal.rule == state.lower()
    assert refusal.values["rule"] == "balance_floor"


# -- the monitor ---------------------------------------------------------------------------


def test_nothing_changes_while_all_is_well() -> None:
    assert evaluate(FRESH, ACTIVE, LIMITS, NOW) is None


def test_a_share_of_a_loss_limit_reduces_and_its_end_reactivates() -> None:
    t = evaluate(with_(unrealised_usd=-40.0), ACTIVE, LIMITS, NOW)
    assert t is not None
    assert (t.after.state, t.after.rule, t.breaks) == ("REDUCING", "unrealised_loss_usd", False)
    assert t.after.resume_after_ms is None
    back = evaluate(FRESH, t.after, LIMITS, NOW + 5000)
    assert back is not None
    assert back.after.state == "ACTIVE"
    assert not back.auto_resumed


def test_a_stale_user_stream_reduces() -> None:
    t = evaluate(with_(user_stream_behind_since=NOW - 31_000), ACTIVE, LIMITS, NOW)
    assert t is not None
    assert (t.after.state, t.after.rule) == ("REDUCING", "stale_user_stream")


@pytest.mark.parametrize(
    ("view", "rule"),
    [
        (with_(daily_realised_usd=-100.0), "daily_loss_usd"),
        (with_(unrealised_usd=-50.0), "unrealised_loss_usd"),
        (with_(balance_usd=999.0), "balance_floor"),
    ],
)
def test_a_limit_reached_breaks_the_circuit(view: RiskView, rule: str) -> None:
    t = evaluate(view, ACTIVE, LIMITS, NOW)
    assert t is not None
    assert t.breaks
    assert (t.after.state, t.after.rule, t.after.since_ms) == ("HALTED", rule, NOW)
    assert t.after.breaks_today == 1
    assert t.after.reason


def test_a_breaker_outranks_a_reduction() -> None:
    view = with_(user_stream_behind_since=0, balance_usd=10.0)
    t = evaluate(view, ACTIVE, LIMITS, NOW)
    assert t is not None
    assert (t.after.state, t.after.rule) == ("HALTED", "balance_floor")


def live(now: int, **changes: object) -> RiskView:
    """FRESH as a round at ``now`` sees it (the user stream in step then)."""
    return with_(**changes)


def halted(view: RiskView) -> RiskState:
    t = evaluate(view, ACTIVE, LIMITS, NOW)
    assert t is not None
    return t.after


def test_a_breaker_resumes_after_the_cooldown_once_cleared() -> None:
    state = halted(with_(balance_usd=900.0))
    assert state.resume_after_ms == NOW + LIMITS.cooldown_ms
    # Cleared but within the cooldown: still halted.
    assert (
        evaluate(live(NOW + LIMITS.cooldown_ms - 1), state, LIMITS, NOW + LIMITS.cooldown_ms - 1)
        is None
    )
    # Past the cooldown but the condition holds: still halted.
    assert evaluate(with_(balance_usd=900.0), state, LIMITS, NOW + LIMITS.cooldown_ms) is None
    t = evaluate(live(NOW + LIMITS.cooldown_ms), state, LIMITS, NOW + LIMITS.cooldown_ms)
    assert t is not None
    assert t.auto_resumed
    assert t.after.state == "ACTIVE"
    assert t.after.breaks_today == 1


def test_a_breaker_never_resumes_during_the_admins_pause() -> None:
    state = halted(with_(balance_usd=900.0))
    later = NOW + 2 * LIMITS.cooldown_ms
    assert evaluate(live(later, paused=True), state, LIMITS, later) is None
    t = evaluate(live(later), state, LIMITS, later)
    assert t is not None
    assert t.after.state == "ACTIVE"


def test_a_breaker_resumes_into_reducing_when_a_reason_to_reduce_remains() -> None:
    state = halted(with_(balance_usd=900.0))
    t = evaluate(with_(user_stream_behind_since=0), state, LIMITS, NOW + LIMITS.cooldown_ms)
    assert t is not None
    assert t.auto_resumed
    assert (t.after.state, t.after.rule) == ("REDUCING", "stale_user_stream")


def test_the_daily_loss_breaker_lasts_until_the_next_utc_day() -> None:
    lost = with_(daily_realised_r=-3.5)
    state = halted(lost)
    midnight = day_start_ms(NOW) + DAY_MS
    assert state.resume_after_ms == midnight
    # The loss no longer counts (a trade's result corrected, say) but the day is the same.
    assert evaluate(live(midnight - 1), state, LIMITS, midnight - 1) is None
    t = evaluate(live(midnight), state, LIMITS, midnight)  # the new day's realised result is 0
    assert t is not None
    assert t.auto_resumed
    assert t.after.state == "ACTIVE"
    assert t.after.breaks_today == 0  # counted for the day before
    assert t.after.breaks_day_ms == midnight


def test_a_late_day_break_still_waits_the_whole_cooldown() -> None:
    late = day_start_ms(NOW) + DAY_MS - 60_000
    t = evaluate(with_(daily_realised_r=-3.0), ACTIVE, LIMITS, late)
    assert t is not None
    assert t.after.resume_after_ms == late + LIMITS.cooldown_ms


def test_breaks_are_counted_per_utc_day() -> None:
    state = halted(with_(balance_usd=900.0))
    resumed = evaluate(live(NOW + LIMITS.cooldown_ms), state, LIMITS, NOW + LIMITS.cooldown_ms)
    assert resumed is not None
    again = evaluate(with_(balance_usd=900.0), resumed.after, LIMITS, NOW + LIMITS.cooldown_ms + 1)
    assert again is not None
    assert again.after.breaks_today == 2
    next_day = evaluate(
        with_(balance_usd=900.0), resumed.after, LIMITS, day_start_ms(NOW) + DAY_MS + 1
    )
    assert next_day is not None
    assert next_day.after.breaks_today == 1


def test_refusals_are_counted_by_rule() -> None:
    state = refused(refused(refused(ACTIVE, "tape_hole"), "tape_hole"), "max_positions")
    assert state.refusals == {"tape_hole": 2, "max_positions": 1}


def test_hold_timeout_at_its_boundary() -> None:
    limits = RiskLimits(hold_timeout_ms=70 * 60_000)
    assert not held_too_long(NOW - 70 * 60_000 + 1, limits, NOW)
    assert held_too_long(NOW - 70 * 60_000, limits, NOW)
    assert not held_too_long(None, limits, NOW)


def test_limits_from_the_shipped_settings() -> None:
    risk = load_settings(env={}).risk
    limits = RiskLimits.of(risk)
    assert limits.hold_timeout_ms == 70 * 60_000
    assert limits.flatten_on_halt
    assert risk == RiskSettings()  # the file documents the defaults


def test_settings_refuse_a_per_symbol_limit_above_the_overall_one() -> None:
    with pytest.raises(Exception, match="max_positions_per_symbol"):
        load_settings(env={"ARB_RISK_MAX_POSITIONS": "1", "ARB_RISK_MAX_POSITIONS_PER_SYMBOL": "2"})
