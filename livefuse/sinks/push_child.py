"""The child process of a push output: encodes what the daemon sends and pushes it, reconnecting on failure.

FFmpeg holds the GIL while it connects and writes (`avio_open`, `avformat_write_header`), so a server
that accepts and never answers would freeze every thread of the process doing it: that process is this
one, never the daemon. Run as `python -m livefuse.sinks.push_child`; the parent (push.py) feeds stdin.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.errors import OutputError
from livefuse.frame import Frame
from livefuse.sinks.encoder import EncoderSink, open_stream_sink
from livefuse.sinks.push_wire import AUDIO, AUDIO_HEAD, CONFIG, END, VIDEO, VIDEO_HEAD, read_message

RETRY_S = (1.0, 2.0, 4.0, 8.0)  # waits between failed connects, the last one repeated
MAX_AUDIO_CHUNKS = 2000  # ~20 s at 10 ms chunks: older sound is dropped while disconnected


class Inbox:
    """What the reader thread received: at most two frames waiting (the pipe pushes back on the parent
    beyond that), sound in order, and whether the parent asked to end."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.frames: collections.deque[Frame] = collections.deque()
        self.audio: collections.deque[AudioChunk] = collections.deque(maxlen=MAX_AUDIO_CHUNKS)
        self.ended = False
        self.connected = False
        self.cond = threading.Condition()

    def read(self, stream: Any) -> None:
        """Reader thread: fill the inbox from stdin until END or the end of the stream."""
        try:
            self._read(stream)
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def _read(self, stream: Any) -> None:
        while (message := read_message(stream)) is not None:
            kind, payload = message
            with self.cond:
                if kind == VIDEO:
                    while len(self.frames) >= 2 and self.connected and not self.ended:
                        self.cond.wait()  # the encoder is behind: the pipe pushes back on the parent
                    if len(self.frames) >= 2:  # not connected: only the newest frames matter
                        self.frames.popleft()
                    self.frames.append(_frame(payload, self.size))
                elif kind == AUDIO:
                    self.audio.append(_chunk(payload))
                elif kind == END:
                    return
                self.cond.notify_all()

    def next_frame(self, timeout: float) -> Frame | None:
        with self.cond:
            if not self.frames and not self.ended:
                self.cond.wait(timeout)
            frame = self.frames.popleft() if self.frames else None
            self.cond.notify_all()
            return frame

    def wait_end(self, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.ended, timeout)

    def take_audio(self) -> list[AudioChunk]:
        with self.cond:
            chunks = list(self.audio)
            self.audio.clear()
            return chunks


def _frame(payload: bytes, size: tuple[int, int]) -> Frame:
    (capture_ns,) = VIDEO_HEAD.unpack_from(payload)
    width, height = size
    image = np.frombuffer(payload, np.uint8, offset=VIDEO_HEAD.size).reshape(height, width, 3)
    return Frame(seq=0, image=image, capture_ns=capture_ns)  # the encoder reads the capture time only


def _chunk(payload: bytes) -> AudioChunk:
    capture_ns, rate, channels = AUDIO_HEAD.unpack_from(payload)
    samples = np.frombuffer(payload, np.float32, offset=AUDIO_HEAD.size).reshape(channels, -1)
    return AudioChunk(samples=samples, rate=rate, capture_ns=capture_ns)


def report(**state: object) -> None:
    sys.stdout.write(json.dumps(state) + "\n")
    sys.stdout.flush()


def push(inbox: Inbox, url: str, size: tuple[int, int], fps: float, audio: AudioFormat | None) -> None:
    """Connect, write until END, reconnect after a failure; the state goes to the parent as it changes."""
    failures = 0
    while not inbox.ended:
        report(state="connecting")
        try:
            sink = open_stream_sink(url, size, fps, audio)
        except OutputError as exc:
            report(state="retrying", error=str(exc))
            inbox.wait_end(RETRY_S[min(failures, len(RETRY_S) - 1)])
            failures += 1
            continue
        inbox.take_audio()  # sound from before this connection belongs to no picture it will send
        report(state="connected")
        failures = 0
        inbox.connected = True
        ended = write_until_end(inbox, sink, fps)
        inbox.connected = False
        if not ended:
            continue
        sink.close()
        return


def write_until_end(inbox: Inbox, sink: EncoderSink, fps: float) -> bool:
    """Write frames as they come; True at END, False after a write error (the sink closed, to reconnect)."""
    written, last_report = 0, time.monotonic()
    while True:
        frame = inbox.next_frame(timeout=2.0 / fps)
        if frame is None and inbox.ended:
            return True
        try:
            if sink.audio_feed is not None:
                for chunk in inbox.take_audio():
                    sink.audio_feed.put(chunk)
            if frame is not None:
                sink.write(frame)
                written += 1
        except Exception as exc:  # noqa: BLE001 - any failure of the push: report it and reconnect
            report(state="retrying", error=f"write failed: {exc}")
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - the connection is gone already
                pass
            return False
        if time.monotonic() - last_report >= 0.5:
            report(written=written)
            last_report = time.monotonic()


def _die_with_parent() -> None:
    """Linux: end with the daemon even if it is killed (PR_SET_PDEATHSIG), not linger on a hung server."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> None:
    _die_with_parent()
    stdin = sys.stdin.buffer
    first = read_message(stdin)
    if first is None or first[0] != CONFIG:
        raise SystemExit("push child: expected its configuration first")
    config = json.loads(first[1])
    size = (int(config["width"]), int(config["height"]))
    audio = AudioFormat(**config["audio"]) if config.get("audio") else None
    inbox = Inbox(size)
    threading.Thread(target=inbox.read, args=(stdin,), name="push-reader", daemon=True).start()
    push(inbox, config["url"], size, float(config["fps"]), audio)
    report(state="closed")
    os._exit(0)  # the reader may still block on stdin


if __name__ == "__main__":
    main()
