"""Fault state: the control schema, and stream mangling (withhold, duplicate, reorder)."""

from __future__ import annotations

import msgspec
import pytest

from arbengine.sim.faults import FaultState, decode_request


def payloads(ids: list[int]) -> list[bytes]:
    return [str(a).encode() for a in ids]


def test_withheld_ids_never_reach_the_stream_and_the_range_is_forgotten_once_passed() -> None:
    state = FaultState()
    state.apply(
        decode_request(b'{"withhold": {"symbol": "btcusdt", "from_id": 3, "to_id": 5}}'), 0.0
    )
    out = state.mangle("BTCUSDT", payloads([1, 2, 3, 4]), [1, 2, 3, 4])
    assert out == [b"1", b"2"]
    assert state.withheld == {"BTCUSDT": [(3, 5)]}
    out = state.mangle("BTCUSDT", payloads([5, 6, 7]), [5, 6, 7])
    assert out == [b"6", b"7"]
    assert state.withheld == {}
    assert state.mangle("ETHUSDT", payloads([3]), [3]) == [b"3"]


def test_duplicate_and_reorder_count_down() -> None:
    state = FaultState()
    state.apply(decode_request(b'{"duplicate": {"count": 2}}'), 0.0)
    assert state.mangle("BTCUSDT", payloads([1]), [1]) == [b"1", b"1"]
    assert state.mangle("BTCUSDT", payloads([2, 3]), [2, 3]) == [b"2", b"2", b"3"]
    assert state.duplicate == 0
    state.apply(decode_request(b'{"reorder": {"count": 4, "symbol": "BTCUSDT"}}'), 0.0)
    assert state.mangle("ETHUSDT", payloads([1, 2]), [1, 2]) == [b"1", b"2"]
    assert state.mangle("BTCUSDT", payloads([1, 2, 3, 4, 5]), [1, 2, 3, 4, 5]) == payloads(
        [2, 1, 4, 3, 5]
    )
    assert state.reorder == 0


def test_hang_and_clear() -> None:
    state = FaultState()
    state.apply(decode_request(b'{"hang": {"seconds": 2, "scope": "rest"}}'), 100.0)
    assert state.hanging("rest", 101.0) == pytest.approx(1.0)
    assert state.hanging("ws", 101.0) == 0.0
    assert state.hanging("rest", 103.0) == 0.0
    state.apply(decode_request(b'{"latency": {"rest_ms": 50}, "rest_429": {"count": 2}}'), 0.0)
    state.apply(decode_request(b'{"clear": true}'), 0.0)
    assert (state.rest_latency_ms, state.rest_429, state.hang_until) == (0, 0, 0.0)


def test_schema_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_request(b'{"explode": true}')
    with pytest.raises(msgspec.ValidationError):
        decode_request(b'{"malformed": {"count": 1, "kind": "poison"}}')
    state = FaultState()
    with pytest.raises(ValueError, match="5xx or 408"):
        state.apply(decode_request(b'{"order_5xx": {"status": 200}}'), 0.0)
    with pytest.raises(ValueError, match="4xx"):
        state.apply(decode_request(b'{"http_5xx": {"status": 429}}'), 0.0)
    many = decode_request(
        b'{"withhold": [{"symbol": "A", "from_id": 1, "to_id": 2},'
        b' {"symbol": "A", "from_id": 5, "to_id": 6}]}'
    )
    state.apply(many, 0.0)
    assert state.withheld == {"A": [(1, 2), (5, 6)]}
