"""The pipe between a push output and its child process: length-prefixed messages, one kind byte each.

Parent to child (stdin): CONFIG once (JSON), then VIDEO (capture_ns + BGR pixels), AUDIO (capture_ns,
rate, channels + float32 planar samples) and END (flush and close). Child to parent (stdout): one JSON
object a line, the connection's state and the frames written.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

CONFIG, VIDEO, AUDIO, END = b"C", b"V", b"A", b"E"
HEADER = struct.Struct("<cI")  # kind, payload length
VIDEO_HEAD = struct.Struct("<q")  # capture_ns
AUDIO_HEAD = struct.Struct("<qii")  # capture_ns, rate, channels
MAX_PAYLOAD = 64 * 1024 * 1024  # a 4K BGR frame is 25 MB: anything larger is a broken stream


def pack(kind: bytes, *parts: bytes | memoryview) -> list[bytes | memoryview]:
    """The buffers of one message, to be written in order (no copy of a frame's pixels)."""
    return [HEADER.pack(kind, sum(len(p) for p in parts)), *parts]


def read_message(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """(kind, payload) of the next message; None at the end of the stream."""
    head = _read_exact(stream, HEADER.size)
    if head is None:
        return None
    kind, length = HEADER.unpack(head)
    if length > MAX_PAYLOAD:
        raise ValueError(f"push message of {length} bytes: the stream is broken")
    payload = _read_exact(stream, length)
    return None if payload is None else (kind, payload)


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return None
        got += n
    return bytes(buf)
