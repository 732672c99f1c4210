"""Supervisor: restart with capped jittered backoff, reset after health, escalation, staged stop."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from prometheus_client import REGISTRY, generate_latest

from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.health import HealthBoard
from arbengine.runtime.supervisor import Component, RestartPolicy, Supervisor, TooManyRestarts


class FakeTime:
    """Monotonic time that moves only when the supervisor sleeps or a component 'works'."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def make(policy: RestartPolicy, fake: FakeTime) -> Supervisor:
    return Supervisor(policy, monotonic=fake.monotonic, sleep=fake.sleep, rng=random.Random(7))


async def test_failing_component_restarts_with_growing_capped_jittered_delays() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=1, max_s=5, multiplier=2, jitter=0.5, max_restarts=100)
    sup = make(policy, fake)
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls <= 6:
            raise ConnectionError(f"boom {calls}")

    sup.add(Component("flaky", flaky))
    await sup.run()

    assert calls == 7
    bases = [1, 2, 4, 5, 5, 5]
    assert len(fake.sleeps) == 6
    for delay, base in zip(fake.sleeps, bases, strict=True):
        assert base * 0.5 <= delay <= base
    assert len(set(fake.sleeps)) > 1  # jitter actually varies the delays
    status = sup.status()[0]
    assert status.restarts == 6
    assert status.last_error == "ConnectionError: boom 6"
    assert status.state == "finished"


async def test_backoff_resets_after_a_healthy_period() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=1, max_s=60, jitter=0.0, healthy_after_s=30, max_restarts=100)
    sup = make(policy, fake)
    calls = 0

    async def component() -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            fake.now += 31  # ran healthily for longer than healthy_after before failing
        if calls <= 4:
            raise RuntimeError("fail")

    sup.add(Component("c", component))
    await sup.run()
    assert fake.sleeps == [1, 2, 4, 1]


async def test_too_many_restarts_in_window_escalates_and_stops_siblings() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=1, max_s=1, jitter=0.0, max_restarts=3, window_s=100)
    sup = make(policy, fake)
    sibling_cancelled = asyncio.Event()

    async def always_fails() -> None:
        raise ValueError("broken config upstream")

    async def sibling() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise

    sup.add(Component("bad", always_fails))
    sup.add(Component("sibling", sibling))
    with pytest.raises(TooManyRestarts, match="'bad' failed 4 times within 100s"):
        await sup.run()
    assert sibling_cancelled.is_set()
    assert {s.name: s.state for s in sup.status()} == {"bad": "failed", "sibling": "stopped"}


async def test_failures_spread_beyond_the_window_do_not_escalate() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=60, max_s=60, jitter=0.0, max_restarts=2, window_s=100)
    sup = make(policy, fake)
    calls = 0

    async def sometimes() -> None:
        nonlocal calls
        calls += 1
        if calls <= 6:
            raise OSError("network")

    sup.add(Component("c", sometimes))
    await sup.run()  # 60 s apart: never more than 2 failures inside any 100 s window
    assert calls == 7


async def test_staged_stop_cancels_intake_then_drains_processing() -> None:
    sup = Supervisor(RestartPolicy())
    channel: Channel[int] = Channel("work", 100, OverflowPolicy.BLOCK)
    processed: list[int] = []
    order: list[str] = []
    produced = asyncio.Event()

    async def intake() -> None:
        try:
            for i in range(10):
                await channel.put(i)
            produced.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            order.append("intake cancelled")
            raise

    async def processor() -> None:
        async for item in channel:
            await asyncio.sleep(0)
            processed.append(item)
        order.append("processor drained")

    sup.add(Component("intake", intake, stage=0))
    sup.add(Component("processor", processor, stage=10, drain=channel.close))
    async with asyncio.TaskGroup() as group:
        running = group.create_task(sup.run())
        await produced.wait()
        late = await sup.stop(deadline_s=5)
        await running
    assert late == []
    assert processed == list(range(10))
    assert order == ["intake cancelled", "processor drained"]
    assert {s.name: s.state for s in sup.status()} == {"intake": "stopped", "processor": "stopped"}


async def test_stop_cancels_a_drain_that_overruns_the_deadline() -> None:
    sup = Supervisor(RestartPolicy())
    never_finishes = asyncio.Event()
    running_now = asyncio.Event()

    async def stubborn() -> None:
        running_now.set()
        await never_finishes.wait()

    sup.add(Component("stubborn", stubborn, drain=lambda: None))
    async with asyncio.TaskGroup() as group:
        running = group.create_task(sup.run())
        await running_now.wait()
        late = await sup.stop(deadline_s=0.05)
        await running
    assert late == ["stubborn"]


def test_delay_is_capped() -> None:
    policy = RestartPolicy(initial_s=0.5, max_s=30, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng) for n in (1, 2, 3, 10, 50)] == [0.5, 1.0, 2.0, 30.0, 30.0]


async def test_giving_up_drains_the_others_before_raising() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=1, max_s=1, jitter=0.0, max_restarts=2, window_s=100)
    sup = make(policy, fake)
    channel: Channel[int] = Channel("escalation", 100, OverflowPolicy.BLOCK)
    for i in range(5):
        channel.put_nowait(i)
    written: list[int] = []

    async def broken() -> None:
        raise RuntimeError("cannot go on")

    async def writer() -> None:
        async for item in channel:
            written.append(item)

    sup.add(Component("broken", broken, stage=0))
    sup.add(Component("writer", writer, stage=20, drain=channel.close))
    with pytest.raises(TooManyRestarts):
        await sup.run()
    assert written == [0, 1, 2, 3, 4]
    assert {s.name: s.state for s in sup.status()} == {"broken": "failed", "writer": "stopped"}


class Outage(Exception):
    """Stands for the engine's retryable errors (the supervisor is told which those are)."""


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, Outage)


async def test_retryable_failures_never_count_toward_giving_up() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=1, max_s=4, jitter=0.0, max_restarts=2, window_s=1000)
    sup = Supervisor(policy, monotonic=fake.monotonic, sleep=fake.sleep, retryable=is_outage)
    calls = 0

    async def during_an_outage() -> None:
        nonlocal calls
        calls += 1
        if calls <= 20:  # ten times the restart budget, all within one window
            raise Outage("exchange unreachable")

    sup.add(Component("market-stream", during_an_outage))
    await sup.run()
    assert calls == 21
    assert max(fake.sleeps) == 4  # still capped: backing off, not giving up
    status = sup.status()[0]
    assert status.state == "finished"
    assert status.last_error == "Outage: exchange unreachable"
    assert status.last_error_retryable is True


async def test_a_fault_between_retryable_failures_still_counts() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=1, max_s=1, jitter=0.0, max_restarts=2, window_s=1000)
    sup = Supervisor(policy, monotonic=fake.monotonic, sleep=fake.sleep, retryable=is_outage)
    calls = 0

    async def mixed() -> None:
        nonlocal calls
        calls += 1
        raise Outage("away") if calls % 2 else KeyError("bug")

    sup.add(Component("mixed", mixed))
    with pytest.raises(TooManyRestarts, match="'mixed' failed 3 times"):
        await sup.run()
    assert calls == 6  # three outages (not counted) between the three faults


async def test_errors_in_a_task_group_are_classified_and_named_one_by_one() -> None:
    fake = FakeTime()
    policy = RestartPolicy(initial_s=1, max_s=1, jitter=0.0, max_restarts=1, window_s=1000)
    sup = Supervisor(policy, monotonic=fake.monotonic, sleep=fake.sleep, retryable=is_outage)
    calls = 0

    async def grouped() -> None:
        nonlocal calls
        calls += 1

        async def fail(exc: Exception) -> None:
            raise exc

        async with asyncio.TaskGroup() as group:
            group.create_task(fail(Outage("network down")))
            if calls > 3:  # then a fault beside the outage: not all retryable any more
                group.create_task(fail(ValueError("HTTP 404 on\n/fapi/v1/aggTrades")))

    sup.add(Component("market-stream", grouped))
    with pytest.raises(TooManyRestarts) as gave_up:
        await sup.run()
    assert calls == 5  # three outages, then two faults: one over the budget of one
    message = str(gave_up.value)
    assert "\n" not in message
    assert "ExceptionGroup" not in message
    assert message == (
        "component 'market-stream' failed 2 times within 1000s; last error: "
        "Outage: network down; ValueError: HTTP 404 on /fapi/v1/aggTrades"
    )


async def test_a_restarting_component_is_reported_until_it_has_run_healthily() -> None:
    board = HealthBoard()
    policy = RestartPolicy(initial_s=0.001, max_s=0.001, healthy_after_s=0.05)
    sup = Supervisor(policy, retryable=is_outage, health=board)
    calls = 0
    reported: list[str] = []
    healthy_for_a_while = asyncio.Event()
    recovered = asyncio.get_running_loop().create_future()

    async def component() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise Outage("database unavailable")
        entry = board.get("c")
        assert entry is not None  # restarted, not yet proven healthy
        reported.append(entry.reason)
        status = sup.status()[0]
        assert (status.state, status.reason) == ("running", entry.reason)
        # Observe the report being taken back once the component has run for healthy_after.
        asyncio.get_running_loop().call_later(0.2, healthy_for_a_while.set)
        await healthy_for_a_while.wait()
        recovered.set_result(board.get("c"))

    sup.add(Component("c", component))
    await sup.run()
    assert reported == ["retrying after Outage: database unavailable"]
    assert recovered.result() is None
    assert sup.status()[0].reason is None
    assert not board


async def test_a_component_waiting_to_restart_shows_why_in_its_status_and_metrics() -> None:
    seen: list[tuple[str, str | None, bytes]] = []

    async def sleep(seconds: float) -> None:  # the supervisor sleeps while in backoff
        status = sup.status()[0]
        seen.append((status.state, status.reason, generate_latest(REGISTRY)))

    sup = Supervisor(RestartPolicy(), sleep=sleep, retryable=is_outage)
    calls = 0

    async def component() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ExceptionGroup("in a task group", [Outage("PostgreSQL unavailable")])

    sup.add(Component("continuity-test", component))
    await sup.run()
    [(state, reason, metrics)] = seen
    assert (state, reason) == ("backoff", "retrying after Outage: PostgreSQL unavailable")
    assert sup.status()[0].as_dict()["last_error_retryable"] is True
    assert (
        b'arb_component_backoff{component="continuity-test",error="Outage",retryable="true"} 1.0'
        in metrics
    )


async def test_a_component_in_backoff_at_stop_is_ended_at_once_and_never_restarted() -> None:
    sup = Supervisor(RestartPolicy(initial_s=0.05, max_s=0.05, jitter=0.0, max_restarts=100))
    runs = 0
    failed = asyncio.Event()
    draining = asyncio.Event()
    release = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        failed.set()
        raise RuntimeError("boom")

    async def slow_intake() -> None:
        await draining.wait()
        await release.wait()  # its drain takes a while: longer than flaky's backoff

    sup.add(Component("slow-intake", slow_intake, stage=0, drain=draining.set))
    sup.add(Component("flaky", flaky, stage=20, drain=lambda: None))
    async with asyncio.TaskGroup() as group:
        running = group.create_task(sup.run())
        await failed.wait()
        assert {s.name: s.state for s in sup.status()}["flaky"] == "backoff"
        stopping = group.create_task(sup.stop(deadline_s=5))
        await asyncio.sleep(0.3)  # six backoffs' worth while the intake drains
        release.set()
        late = await stopping
        await running
    assert late == []
    assert runs == 1
    assert {s.name: s.state for s in sup.status()}["flaky"] == "stopped"


async def test_stop_leaves_behind_a_component_that_swallows_cancellation() -> None:
    sup = Supervisor(RestartPolicy())
    running_now = asyncio.Event()
    let_go = asyncio.Event()  # so that the test can end it after all
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        running_now.set()
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if let_go.is_set():
                    raise

    async def writer() -> None:
        await asyncio.Event().wait()

    sup.add(Component("stubborn", stubborn, stage=0, drain=lambda: None))
    sup.add(Component("writer", writer, stage=20, drain=lambda: None))
    running = asyncio.create_task(sup.run())
    await running_now.wait()
    loop = asyncio.get_running_loop()
    began = loop.time()
    late = await asyncio.wait_for(sup.stop(deadline_s=0.2, grace_s=0.2), 5)
    elapsed = loop.time() - began
    # Cancelled at the deadline, every stage at once, and not waited for beyond the grace.
    assert late == ["stubborn", "writer"]
    assert sup.unresponsive() == ["stubborn"]
    assert swallowed >= 1
    assert 0.2 <= elapsed < 0.4 + 0.3
    assert not running.done()
    let_go.set()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def test_giving_up_is_announced_even_when_a_sibling_ignores_its_cancellation() -> None:
    # run() cannot raise while a task of its group still runs: the owner learns of the
    # give-up from ``given_up`` instead, and which sibling was left behind.
    policy = RestartPolicy(initial_s=0.01, max_s=0.01, jitter=0.0, max_restarts=1, window_s=100)
    sup = Supervisor(policy, escalation_deadline_s=0.2)
    let_go = asyncio.Event()

    async def always_fails() -> None:
        raise ValueError("broken config upstream")

    async def stubborn() -> None:
        while not let_go.is_set():  # ends only when the test lets it go
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    sup.add(Component("bad", always_fails))
    sup.add(Component("stubborn", stubborn, drain=lambda: None))
    running = asyncio.create_task(sup.run())
    await asyncio.wait_for(sup.given_up.wait(), 5)
    assert sup.gave_up is not None
    assert sup.gave_up.component == "bad"
    assert sup.unresponsive() == ["stubborn"]
    assert not running.done()
    let_go.set()
    with pytest.raises(TooManyRestarts):
        await asyncio.wait_for(running, 5)


async def test_a_stuck_stage_leaves_the_writers_after_it_their_share_of_the_deadline() -> None:
    sup = Supervisor(RestartPolicy())
    stuck_running = asyncio.Event()
    flush = asyncio.Event()
    flushed: list[str] = []

    async def stuck_intake() -> None:
        stuck_running.set()
        await asyncio.Event().wait()  # ignores its drain

    async def writer() -> None:
        await flush.wait()
        await asyncio.sleep(0.1)  # its last flush takes a moment
        flushed.append("rows")

    async def sim() -> None:
        await asyncio.Event().wait()

    sup.add(Component("intake", stuck_intake, stage=0, drain=lambda: None))
    sup.add(Component("writer", writer, stage=20, drain=flush.set))
    sup.add(Component("sim", sim, stage=30))  # nothing to drain: takes no share
    async with asyncio.TaskGroup() as group:
        running = group.create_task(sup.run())
        await stuck_running.wait()
        late = await sup.stop(deadline_s=0.6)
        await running
    assert late == ["intake"]
    assert flushed == ["rows"]
