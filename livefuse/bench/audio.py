"""What sound costs, for `livefuse bench --audio`: a microphone-like input and an output that encodes it.

The input releases 48 kHz stereo chunks in real time on its own thread, as a capture device does; the
output resamples and AAC-encodes them on its own output thread, as a recording does, into a muxer that
writes to the null device. The video's latency is still measured at the null video output.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import av
import numpy as np

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.encode import AudioTrack
from livefuse.audio.feed import AudioFeed
from livefuse.audio.inputs import Deliver
from livefuse.frame import Frame
from livefuse.sinks.base import Sink

RATE = 44100  # not the outputs' 48 kHz: the resampler runs, as it does for most files and microphones
CHUNK = 1024


class SyntheticMicrophone:
    """A tone with a little noise, released a chunk at a time in real time."""

    description = "synthetic microphone (bench)"
    format = AudioFormat(RATE, 2)

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, deliver: Deliver) -> None:
        self._thread = threading.Thread(target=self._run, args=(deliver,), name="livefuse-bench-mic", daemon=True)
        self._thread.start()

    def _run(self, deliver: Deliver) -> None:
        rng = np.random.default_rng(0)
        start = time.monotonic_ns()
        n = 0
        while not self._stop.is_set():
            due = start + (n + 1) * CHUNK * 1_000_000_000 // RATE
            delay = due - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            t = (np.arange(CHUNK) + n * CHUNK) / RATE
            tone = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(CHUNK)).astype(np.float32)
            deliver(AudioChunk(np.stack([tone, tone]), RATE, due - CHUNK * 1_000_000_000 // RATE))
            n += 1

    def video_capture_ns(self, now_ns: int) -> int:
        return now_ns

    def on_video(self, capture_ns: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)


class AudioEncodeSink(Sink):
    """Encodes the sound it is fed (resampled to 48 kHz, AAC) each time a frame comes; discards the result."""

    repeat_when_idle = False

    def __init__(self, fmt: AudioFormat) -> None:
        self.name = "audio-encode"
        self.audio_feed: AudioFeed | None = AudioFeed(fmt)
        self._container: Any = av.open(os.devnull, "w", format="adts")
        self._track = AudioTrack(self._container, "aac", fmt, rate=48000, bitrate=160_000)
        self._container.start_encoding()
        self._origin: int | None = None

    def write(self, frame: Frame) -> None:
        assert self.audio_feed is not None
        for chunk in self.audio_feed.take_all():
            self._origin = self._origin if self._origin is not None else chunk.capture_ns
            self._track.write(chunk, self._origin)

    def close(self) -> None:
        self.write(Frame(seq=-1, capture_ns=0, image=np.zeros((1, 1, 3), np.uint8)))
        self._track.close()
        self._container.close()
