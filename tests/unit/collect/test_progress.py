"""Start-up backfill progress per series: done/total symbols, a line now and then, and the end."""

from __future__ import annotations

from structlog.testing import capture_logs

from arbengine.collect.progress import BackfillProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_progress_counts_symbols_per_series_and_says_when_it_is_done() -> None:
    clock = Clock()
    progress = BackfillProgress(log_every_s=10.0, wall=clock, monotonic=clock)
    with capture_logs() as logs:
        progress.begin("ls_global", ["A", "B", "C"])
        progress.begin("ls_global", ["A"])  # only the first begin counts
        progress.request("ls_global")
        progress.request("ls_global")
        progress.done("ls_global", "A")  # within 10 s of the last line: no line
        clock.now += 11
        progress.done("ls_global", "B")
        progress.done("ls_global", "B")  # again: nothing changes
        progress.done("ls_global", "Z")  # not expected: ignored
        assert progress.view() == [
            {"series": "ls_global", "done": 2, "total": 3, "requests": 2,
             "started_at": 1_700_000_000.0, "finished_at": None},
        ]  # fmt: skip
        clock.now += 1
        progress.done("ls_global", "C")
        progress.request("ls_global")  # after the end: not history any more
    lines = [(e["done"], e["total"], e["finished"]) for e in logs]
    assert [e["event"] for e in logs] == ["backfill.progress"] * 3
    assert lines == [(0, 3, False), (2, 3, False), (3, 3, True)]
    assert logs[-1]["elapsed_s"] == 12.0
    [view] = progress.view()
    assert (view["done"], view["requests"], view["finished_at"]) == (3, 2, 1_700_000_012.0)
    assert progress.is_done("ls_global", "C")


def test_a_stopped_symbol_is_no_longer_waited_for() -> None:
    progress = BackfillProgress()
    progress.begin("funding_rate", ["A", "B"])
    progress.begin("agg_trades", ["A", "B"])
    progress.done("funding_rate", "A")
    progress.drop("B")
    assert {v["series"]: (v["done"], v["total"]) for v in progress.view()} == {
        "funding_rate": (1, 1),
        "agg_trades": (0, 1),
    }
    assert progress.view()[0]["finished_at"] is not None
