"""Replay: a recording of combined-stream lines becomes the market, tape and all."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from arbengine.sim.market_model import (
    HOUR_MS,
    SyntheticMarket,
    agg_trade_payloads,
    liquidation_payload,
    mark_payload,
)
from arbengine.sim.recording_replay import ReplayError, ReplayMarket
from arbengine.sim.symbols import spec_for

FUNDING = 1_700_006_400_000  # an 8-hour boundary


def record(path: Path, start: int, seconds: int) -> SyntheticMarket:
    """What a combined-stream client would have written while connected to a synthetic sim."""
    specs = [spec_for("BTCUSDT"), spec_for("ETHUSDT")]
    market = SyntheticMarket(specs, start, 3, {s.symbol: 10.0 for s in specs}, history_days=0)
    market.force_regime("BTCUSDT", "volatile")
    lines = []
    for t in range(start + 1000, start + seconds * 1000 + 1, 1000):
        release = market.advance(t)
        for sr in release.symbols:
            book = market.books[sr.symbol]
            low = sr.symbol.lower()
            payloads, _ = agg_trade_payloads(book.spec, book.tape.cols(sr.lo, sr.hi))
            for p in payloads:
                lines.append(b'{"stream":"%s@aggTrade","data":%s}' % (low.encode(), p))
            for mark in sr.marks:
                data = orjson.dumps(mark_payload(mark))
                lines.append(b'{"stream":"%s@markPrice@1s","data":%s}' % (low.encode(), data))
            for liq in sr.liquidations:
                data = orjson.dumps(liquidation_payload(book.spec, liq))
                lines.append(b'{"stream":"%s@forceOrder","data":%s}' % (low.encode(), data))
    lines.insert(3, b"not json at all")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return market


def test_replayed_tape_equals_the_recorded_stream(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    original = record(path, FUNDING - 60_000, 120)
    replay = ReplayMarket(path, seed=1, history_days=1)
    assert sorted(replay.symbols) == ["BTCUSDT", "ETHUSDT"]
    release = replay.advance(FUNDING + 61_000)
    assert replay.finished
    assert release.passthrough is not None
    streams = {s for s, _, _ in release.passthrough}
    assert streams == {
        "btcusdt@aggTrade",
        "ethusdt@aggTrade",
        "btcusdt@markPrice@1s",
        "ethusdt@markPrice@1s",
        "btcusdt@forceOrder",
    }
    for symbol in ("BTCUSDT", "ETHUSDT"):
        a = original.books[symbol].tape.released_cols()
        b = replay.books[symbol].tape.released_cols()
        for key in ("a", "t", "price", "qty", "first", "last", "buyer_maker"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), key
        replayed = mark_payload(replay.books[symbol].latest_mark())
        assert replayed == mark_payload(original.books[symbol].latest_mark())
    # The settlement at the 8-hour boundary is recovered from the moving next-funding time.
    assert [f.t for f in replay.books["BTCUSDT"].funding if f.t > FUNDING - HOUR_MS] == [FUNDING]
    assert replay.books["BTCUSDT"].liq_released == original.books["BTCUSDT"].liq_released


def test_replay_releases_by_event_time(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, FUNDING - 60_000, 20)
    replay = ReplayMarket(path, history_days=0)
    first = replay.advance(replay.start_ms + 5_000)
    assert first.passthrough
    times = [orjson.loads(p).get("E") for _, p, _ in first.passthrough]
    assert max(times) <= replay.start_ms + 5_000
    ids: dict[str, list[int]] = {}
    for stream, _, agg_id in first.passthrough:
        if agg_id >= 0:
            ids.setdefault(stream, []).append(agg_id)
    assert set(ids) == {"btcusdt@aggTrade", "ethusdt@aggTrade"}
    for stream, released in ids.items():  # each symbol's trades in id order, none skipped
        assert released == list(range(released[0], released[0] + len(released))), stream
    assert not replay.finished


def test_gzipped_recordings_are_read(tmp_path: Path) -> None:
    plain = tmp_path / "rec.jsonl"
    record(plain, FUNDING - 60_000, 5)
    packed = tmp_path / "rec.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = ReplayMarket(plain, history_days=0), ReplayMarket(packed, history_days=0)
    a.advance(FUNDING)
    b.advance(FUNDING)
    assert a.books["BTCUSDT"].tape.released == b.books["BTCUSDT"].tape.released > 0


def test_an_empty_or_missing_recording_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="does not exist"):
        ReplayMarket(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"not": "a stream message"}\n')
    with pytest.raises(ReplayError, match="no combined-stream"):
        ReplayMarket(empty)
