"""Hand-built websocket frames decode as RFC 6455 says."""

from __future__ import annotations

from arbengine.sim import frames


def test_length_encodings() -> None:
    assert frames.header(5) == b"\x81\x05"
    assert frames.header(126) == b"\x81\x7e\x00\x7e"
    assert frames.header(70_000) == b"\x81\x7f" + (70_000).to_bytes(8, "big")


def test_batches_decode_to_the_messages() -> None:
    payloads = [b"a" * n for n in (1, 125, 126, 4095, 4096, 70_000)]
    decoded = frames.parse(frames.text_frames(payloads))
    assert decoded == [(frames.OP_TEXT, p) for p in payloads]
    wrapped = frames.parse(frames.text_frames([b"{}", b"[1]"], b'{"stream":"s","data":', b"}"))
    assert [p for _, p in wrapped] == [b'{"stream":"s","data":{}}', b'{"stream":"s","data":[1]}']


def test_control_frames() -> None:
    ((op, payload),) = frames.parse(frames.close_frame(1001, "bye"))
    assert op == frames.OP_CLOSE
    assert payload == b"\x03\xe9bye"
    assert frames.parse(frames.ping_frame(b"x")) == [(frames.OP_PING, b"x")]
    assert frames.parse(frames.pong_frame(b"y")) == [(frames.OP_PONG, b"y")]
