"""A short run of the notifier's half of ``bench risk``: it measures both phases and every
alert published reaches the loopback receiver through both sinks (no figures judged)."""

from __future__ import annotations

from arbengine.benchmarks.notify_bench import measure_notify, notify_rows


async def test_notify_bench_smoke() -> None:
    figures = await measure_notify(
        symbols=2, ticks=4, tick_interval_s=0.05, events_per_s=200, history_h=1
    )
    assert figures.published > 0
    assert figures.delivered == 2 * figures.published  # Discord and the JSON webhook
    assert figures.dropped == figures.given_up == 0
    assert figures.tick_p50_ms_without > 0
    assert figures.tick_p50_ms_with > 0
    assert figures.publish_p99_us > 0
    names = [r.metric for r in notify_rows(figures)]
    assert "notify.tick_with.p99" in names
    assert "notify.tick_without.p99" in names
