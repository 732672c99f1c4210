"""WebSocket frames built by hand (RFC 6455, server side: never masked, never compressed).

The market streams write pre-built frames straight to the transport: one
``bytes`` holding hundreds of frames per event-loop iteration instead of one
awaited ``send_str`` per message. That is what lets one process push well over
100k aggTrade messages a second to a client.
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def header(length: int, opcode: int = OP_TEXT) -> bytes:
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 65_536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


_TEXT_HEADERS = [header(n) for n in range(4096)]


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    if opcode == OP_TEXT and len(payload) < 4096:
        return _TEXT_HEADERS[len(payload)] + payload
    return header(len(payload), opcode) + payload


def text_frames(payloads: list[bytes], prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """Concatenated text frames of ``prefix + payload + suffix`` for each payload."""
    heads = _TEXT_HEADERS
    extra = len(prefix) + len(suffix)
    parts: list[bytes] = []
    add = parts.append
    if extra:
        for p in payloads:
            n = len(p) + extra
            add(heads[n] if n < 4096 else header(n))
            add(prefix)
            add(p)
            add(suffix)
    else:
        for p in payloads:
            n = len(p)
            add(heads[n] if n < 4096 else header(n))
            add(p)
    return b"".join(parts)


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    return frame(struct.pack("!H", code) + reason.encode()[:120], OP_CLOSE)


def ping_frame(data: bytes = b"") -> bytes:
    return frame(data[:125], OP_PING)


def pong_frame(data: bytes = b"") -> bytes:
    return frame(data[:125], OP_PONG)


def parse(buffer: bytes) -> list[tuple[int, bytes]]:
    """Decode unmasked, unfragmented frames (tests use it to check what was built)."""
    out = []
    i = 0
    while i < len(buffer):
        b0, b1 = buffer[i], buffer[i + 1]
        n = b1 & 0x7F
        i += 2
        if n == 126:
            (n,) = struct.unpack_from("!H", buffer, i)
            i += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", buffer, i)
            i += 8
        out.append((b0 & 0x0F, buffer[i : i + n]))
        i += n
    return out
