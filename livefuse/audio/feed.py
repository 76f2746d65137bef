"""The queue between audio capture and one output: bounded, but it never drops a chunk.

Video may drop frames when an output is slow; sound may not (a gap is heard). So each audio
output has its own queue of chunks that the capture side appends to without waiting and the
output's own thread drains. The bound only catches an output that has stopped draining
altogether: past it the output is marked failed (`overflowed`) rather than anything lost silently.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol, runtime_checkable

from livefuse.audio.chunk import AudioChunk, AudioFormat

MAX_BACKLOG_NS = 30 * 1_000_000_000


class AudioFeed:
    """Thread-safe FIFO of chunks: `put` from the capture thread, `take_all` from the output's thread."""

    def __init__(self, fmt: AudioFormat, max_backlog_ns: int = MAX_BACKLOG_NS) -> None:
        self.format = fmt
        self.max_backlog_ns = max_backlog_ns
        self.overflowed = False
        self.chunks_in = 0
        self.samples_in = 0
        self._chunks: deque[AudioChunk] = deque()
        self._backlog_ns = 0
        self._lock = threading.Lock()

    def put(self, chunk: AudioChunk) -> bool:
        """Append a chunk; False (and `overflowed`) when the output has fallen `max_backlog_ns` behind."""
        with self._lock:
            if self._backlog_ns + chunk.duration_ns > self.max_backlog_ns:
                self.overflowed = True
                return False
            self._chunks.append(chunk)
            self._backlog_ns += chunk.duration_ns
            self.chunks_in += 1
            self.samples_in += chunk.samples.shape[1]
            return True

    def take_all(self) -> list[AudioChunk]:
        with self._lock:
            chunks = list(self._chunks)
            self._chunks.clear()
            self._backlog_ns = 0
            return chunks


@runtime_checkable
class AudioSink(Protocol):
    """An output that carries sound declares the feed it reads chunks from (None: opened without audio)."""

    audio_feed: AudioFeed | None
