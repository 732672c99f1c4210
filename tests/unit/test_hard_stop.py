"""The hard bound: armed at the first stop request, it ends the process if nothing else did."""

from __future__ import annotations

import threading

from arbengine.runtime.hard_stop import HardStop


class Exits:
    """The one seam: where the process would end (``os._exit``)."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def test_an_armed_hard_stop_runs_the_last_resort_and_exits_with_its_code() -> None:
    exits = Exits()
    order: list[str] = []
    stop = HardStop(4, running=lambda: ["engine"], exit=exits)
    stop.add_last_resort(lambda: order.append("database stopped"))
    stop.arm(0.05)
    assert exits.called.wait(5)
    assert exits.codes == [4]
    assert order == ["database stopped"]


def test_a_failing_last_resort_does_not_prevent_the_exit() -> None:
    exits = Exits()

    def broken() -> None:
        raise OSError("no such process")

    stop = HardStop(3, exit=exits)
    stop.add_last_resort(broken)
    stop.force("a second signal (SIGTERM)")
    assert exits.codes == [3]
