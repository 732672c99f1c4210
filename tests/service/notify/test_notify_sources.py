"""Sources wired to the notifier: a component given up is alerted before the supervisor
stops the others, and the notifier (stopped last) delivers it before the run ends."""

from __future__ import annotations

import asyncio
import random

import pytest

from arbengine.notify.alerts import given_up_alert
from arbengine.notify.notifier import Notifier, json_webhook
from arbengine.runtime.supervisor import Component, RestartPolicy, Supervisor, TooManyRestarts
from tests.service.notify.conftest import Receiver


async def test_a_component_given_up_is_alerted_and_delivered_before_the_stop_ends(
    receiver: Receiver,
) -> None:
    notifier = Notifier([json_webhook(receiver.url)], batch_window_s=30.0)
    told: list[tuple[str, str]] = []

    def gave_up(component: str, error: str) -> None:
        told.append((component, error))
        notifier.publish(given_up_alert(component, error, 0))

    async def no_wait(_seconds: float) -> None:
        await asyncio.sleep(0)

    policy = RestartPolicy(initial_s=1, max_s=1, jitter=0.0, max_restarts=2, window_s=100)
    supervisor = Supervisor(policy, sleep=no_wait, rng=random.Random(7), on_give_up=gave_up,
                            escalation_deadline_s=5.0)  # fmt: skip

    async def broken() -> None:
        await asyncio.sleep(0.05)  # the notifier is running by then
        raise RuntimeError("cannot go on")

    supervisor.add(Component("broken", broken))
    supervisor.add(Component("notify", notifier.run, stage=90, drain=notifier.request_stop))
    with pytest.raises(TooManyRestarts):
        await asyncio.wait_for(supervisor.run(), 10)
    assert told == [("broken", "RuntimeError: cannot go on")]
    # delivered at the notifier's stop, without waiting out its 30 s batch window
    [call] = receiver.calls
    [alert] = call.body["alerts"]
    assert (alert["kind"], alert["title"]) == ("component.given_up", "Component given up: broken")
    assert alert["detail"]["error"] == "RuntimeError: cannot go on"
