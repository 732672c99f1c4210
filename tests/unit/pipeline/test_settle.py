"""Held trades come out once settled, cut inside a batch, in arrival order per symbol, and
only for the symbols that may go."""

from __future__ import annotations

from arbengine.domain.market import TradeBatch
from arbengine.pipeline.settle import TradeHold


def batch(symbol: str, first_id: int, *times: int) -> TradeBatch:
    ids = list(range(first_id, first_id + len(times)))
    n = len(times)
    return TradeBatch.of(symbol, ids, list(times), [1.0] * n, [1.0] * n, ids, ids, [False] * n)


def ids(released: list[TradeBatch]) -> list[tuple[str, int]]:
    return [(trades.symbol, int(a)) for trades in released for a in trades.agg_id]


def test_trades_are_released_once_settle_old_and_a_batch_is_cut_where_they_get_younger() -> None:
    hold = TradeHold(settle_ms=1_500)
    hold.add(batch("AAA", 1, 1_000, 2_000, 3_000))
    hold.add(batch("BBB", 10, 2_500))
    hold.add(batch("AAA", 4, 3_600))
    assert hold.count == 5

    assert hold.release(2_499) == []
    assert ids(hold.release(3_500)) == [("AAA", 1), ("AAA", 2)]
    assert ids(hold.release(4_000)) == [("BBB", 10)]
    assert ids(hold.release(5_100)) == [("AAA", 3), ("AAA", 4)]
    assert hold.count == 0


def test_everything_is_released_at_the_end() -> None:
    hold = TradeHold(settle_ms=1_500)
    hold.add(batch("AAA", 1, 1_000, 9_000))
    hold.add(batch("AAA", 3, 9_500))
    hold.add(batch("AAA", 4))  # an empty batch is not held
    assert ids(hold.release(None)) == [("AAA", 1), ("AAA", 2), ("AAA", 3)]
    assert hold.count == 0


def test_a_symbol_left_out_keeps_its_trades_however_old_until_it_may_go() -> None:
    hold = TradeHold(settle_ms=1_500)
    hold.add(batch("AAA", 1, 1_000))
    hold.add(TradeBatch.of("BBB", [10, 11], [500, 9_000], [1.0, 1.0], [1.0, 1.0], [], [],
                           [False, False]))  # fmt: skip
    hold.add(batch("BBB", 12, 9_100))

    assert ids(hold.release(60_000, {"AAA"})) == [("AAA", 1)]
    assert hold.count == 3
    assert hold.held("BBB") == 3
    assert ids(hold.release(None, {"AAA"})) == []  # the end: still only the symbols given
    assert ids(hold.release(10_550, {"AAA", "BBB"})) == [("BBB", 10), ("BBB", 11)]
    assert ids(hold.release(None)) == [("BBB", 12)]
    assert hold.count == 0
