"""The bounded queue: never waits, drops its oldest (others before kept kinds), counts."""

from __future__ import annotations

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from arbengine.notify.alerts import Alert, Category
from arbengine.notify.outbox import DROP_LOG_EVERY_S, Outbox


def alert(n: int, category: Category = "signals") -> Alert:
    return Alert(kind=str(n), category=category, at_ms=n, title=str(n))


def dropped_metric(sink: str) -> float:
    return REGISTRY.get_sample_value("arb_notify_dropped_total", {"sink": sink}) or 0.0


def test_full_queue_drops_the_oldest_and_counts() -> None:
    now = [0.0]
    box = Outbox("test-drop", 3, lambda: now[0])
    before = dropped_metric("test-drop")
    with capture_logs() as logs:
        for n in range(5):
            box.put(alert(n))
        now[0] = DROP_LOG_EVERY_S + 1
        box.put(alert(5))
    assert len(box) == 3
    assert [a.kind for a in box.take(10)] == ["3", "4", "5"]
    assert box.dropped_total == 3
    assert dropped_metric("test-drop") - before == 3
    # logged at the first drop, then not again until DROP_LOG_EVERY_S later (with the count)
    drops = [e for e in logs if e["event"] == "notify.dropped"]
    assert [(e["dropped"], e["dropped_total"]) for e in drops] == [(1, 1), (2, 3)]


def test_kept_kinds_survive_a_burst_and_order_is_kept() -> None:
    box = Outbox("test-kept", 3, lambda: 0.0)
    box.put(alert(0))
    box.put(alert(1, "breaker"))
    for n in range(2, 10):
        box.put(alert(n))
    assert [a.kind for a in box.take(10)] == ["1", "8", "9"]
    for n, category in enumerate(["breaker", "controls", "components", "breaker"]):
        box.put(alert(n, category))  # type: ignore[arg-type]
    assert [a.kind for a in box.take(2)] == ["1", "2"]  # nothing else to drop: oldest kept went
    assert [a.kind for a in box.take(2)] == ["3"]
