"""The pre-built text frame: header forms by length, UTF-8 payload, built once per string."""

from __future__ import annotations

import struct

from livebi.transports.ws_direct import text_frame


def parse(frame: bytes) -> tuple[int, bytes]:
    b0, b1 = frame[0], frame[1]
    assert b1 & 0x80 == 0, "server frames are not masked"
    n, head = b1 & 0x7F, 2
    if n == 126:
        n, head = struct.unpack("!H", frame[2:4])[0], 4
    elif n == 127:
        n, head = struct.unpack("!Q", frame[2:10])[0], 10
    assert len(frame) == head + n
    return b0, frame[head:]


def test_lengths_and_payload() -> None:
    for size in (0, 1, 125, 126, 127, 65_535, 65_536, 200_000):
        text = "é" * (size // 2) + "x" * (size % 2)
        b0, payload = parse(text_frame(text))
        assert b0 == 0x81  # FIN + text
        assert payload.decode() == text


def test_same_string_same_bytes_and_new_string_new_frame() -> None:
    a = "".join(["pub", "lication"])
    first = text_frame(a)
    assert text_frame(a) is first
    b = "".join(["pub", "licatioN"])
    assert parse(text_frame(b))[1] == b"publicatioN"
    equal_but_other = "".join(["pub", "lication"])
    assert parse(text_frame(equal_but_other))[1] == b"publication"
