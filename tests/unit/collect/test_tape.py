"""The trade tape: contiguous output, duplicates dropped, gaps held and reported, holes skipped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from arbengine.collect.tape_sequencer import TapeSequencer


def add(tape: TapeSequencer, *ids: int) -> None:
    for i in ids:
        tape.add(i, 1_000 + i, 100.0 + i, 1.0, i * 10, i * 10 + 1, i % 2 == 0)


def taken_ids(tape: TapeSequencer) -> list[int]:
    batch = tape.take()
    return [] if batch is None else batch.agg_id.tolist()


def test_first_trade_fixes_the_start_and_runs_are_emitted_in_order() -> None:
    tape = TapeSequencer("BTCUSDT")
    add(tape, 5, 6, 7)
    batch = tape.take()
    assert batch is not None
    assert batch.agg_id.tolist() == [5, 6, 7]
    assert batch.ts.tolist() == [1005, 1006, 1007]
    assert batch.price.tolist() == [105.0, 106.0, 107.0]
    assert batch.is_buyer_maker.tolist() == [False, True, False]
    assert tape.take() is None


def test_trades_held_behind_a_gap_come_out_whole_in_id_order() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=0)
    add(tape, 1, 4, 3)
    assert tape.held_count == 2
    add(tape, 2)
    batch = tape.take(received_ms=77)
    assert batch is not None
    assert list(batch.rows()) == [
        ("BTCUSDT", i, 1_000 + i, 100.0 + i, 1.0, i * 10, i * 10 + 1, i % 2 == 0)
        for i in (1, 2, 3, 4)
    ]
    assert batch.received_ms == 77
    add(tape, 6, 5)  # a second gap after the first was released
    assert taken_ids(tape) == [5, 6]


def test_duplicates_are_dropped_once_emitted_or_held() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=9)
    add(tape, 10, 10, 9, 12, 12)
    assert taken_ids(tape) == [10]
    assert tape.counters.duplicates == 3


def test_a_gap_holds_later_trades_until_it_is_filled() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=0)
    add(tape, 1, 2, 5, 6)
    assert taken_ids(tape) == [1, 2]
    assert tape.gap() == (3, 4)
    assert tape.held_count == 2
    add(tape, 4)
    assert tape.gap() == (3, 3)
    add(tape, 3)
    assert tape.gap() is None
    assert taken_ids(tape) == [3, 4, 5, 6]


def test_resuming_after_a_stored_id_detects_the_gap_to_the_stream() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=100)
    add(tape, 150)
    assert tape.gap() == (101, 149)
    assert tape.take() is None


def test_skip_to_records_a_hole_and_releases_held_trades() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=10)
    add(tape, 20, 21)
    assert tape.skip_to(15) == (11, 14)
    assert tape.gap() == (15, 19)
    add(tape, 15, 16, 17, 18, 19)
    assert taken_ids(tape) == [15, 16, 17, 18, 19, 20, 21]
    assert tape.skip_to(10) is None


@given(st.permutations(list(range(1, 60))), st.integers(0, 3))
def test_any_arrival_order_with_repeats_gives_each_id_once_in_order(
    order: list[int], repeat_every: int
) -> None:
    tape = TapeSequencer("X", last_id=0)
    out: list[int] = []
    for n, i in enumerate(order):
        add(tape, i)
        if repeat_every and n % (repeat_every + 1) == 0:
            add(tape, i)
        out += taken_ids(tape)
    assert out == list(range(1, 60))
    assert tape.gap() is None


def test_ids_going_backwards_are_told_apart_from_duplicates() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=1000, last_ts=50_000)
    tape.add(1001, 50_010, 1.0, 1.0, 1, 1, False)
    tape.add(1001, 50_010, 1.0, 1.0, 1, 1, False)  # the same trade again: a duplicate
    tape.add(990, 49_000, 1.0, 1.0, 1, 1, False)  # an old one: a duplicate
    assert (tape.counters.duplicates, tape.counters.backwards) == (2, 0)
    assert tape.backwards_seen is None

    # The exchange reset its ids: low ids, later times. Impossible for trades we already have.
    for n, agg_id in enumerate((7, 8, 9)):
        tape.add(agg_id, 60_000 + n, 1.0, 1.0, 1, 1, False)
    assert (tape.counters.duplicates, tape.counters.backwards) == (2, 3)
    assert tape.backwards_seen is not None
    assert (tape.backwards_seen.agg_id, tape.backwards_seen.ts) == (7, 60_000)
    assert (tape.backwards_seen.last_id, tape.backwards_seen.last_ts) == (1001, 50_010)
    assert taken_ids(tape) == [1001]  # nothing of it reaches the stored tape
    assert tape.last_id == 1001

    tape.add(1002, 60_100, 1.0, 1.0, 1, 1, False)  # the tape's own ids go on: the episode ends
    assert tape.backwards_seen is None
    assert taken_ids(tape) == [1002]


def test_without_a_known_time_a_low_id_is_a_duplicate() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=100)  # resumed from an id whose time is unknown
    tape.add(50, 10**12, 1.0, 1.0, 1, 1, False)
    assert (tape.counters.duplicates, tape.counters.backwards) == (1, 0)


def test_while_a_gap_is_open_the_tape_is_complete_up_to_its_last_emitted_trade() -> None:
    tape = TapeSequencer("BTCUSDT")
    tape.add(10, 1_000, 1.0, 1.0, 10, 10, False)
    assert tape.complete_until() is None  # nothing held: no bound
    tape.add(14, 1_400, 1.0, 1.0, 14, 14, False)
    tape.add(13, 1_300, 1.0, 1.0, 13, 13, False)
    assert tape.complete_until() == 1_000  # 11 and 12 are missing, and no older than 10
    tape.add(11, 1_100, 1.0, 1.0, 11, 11, False)
    assert tape.complete_until() == 1_100
    tape.add(12, 1_200, 1.0, 1.0, 12, 12, False)
    assert tape.complete_until() is None


def test_a_tape_that_never_emitted_is_complete_up_to_nothing_while_it_holds_trades() -> None:
    tape = TapeSequencer("BTCUSDT", last_id=9)  # the catch-up starts after id 9, time unknown
    tape.add(12, 1_200, 1.0, 1.0, 12, 12, False)
    assert tape.complete_until() == 0
