"""The daemon's own stream as the web server sends it, and the `preview` output that feeds it.

`write()` (on the output's own thread) hands the newest frame to one outgoing track; the server relays
that track to every viewer, so the stream is computed and converted once however many watch.
"""

from __future__ import annotations

import asyncio
import time

from livefuse.audio.chunk import AudioFormat
from livefuse.audio.feed import AudioFeed
from livefuse.frame import Frame
from livefuse.sinks.base import Sink
from livefuse.web.tracks import HeldBackAudioTrack, LatestFrameTrack


class Preview:
    """One video track, and one sound track when the daemon has sound, relayed to every viewer of the daemon's
    stream; `viewers` counts them (read from the output's thread to skip converting unwatched frames)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, audio: bool = False) -> None:
        self.video = LatestFrameTrack(loop)
        self.audio = HeldBackAudioTrack(loop) if audio else None  # Opus, held back by the video's delay
        self.viewers = 0
        self._loop = loop

    def stop(self) -> None:
        """End both tracks (from any thread): viewers see the stream end."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self.video.stop)
        if self.audio is not None:
            self._loop.call_soon_threadsafe(self.audio.stop)


class PreviewSink(Sink):
    """The `preview` output: the newest frame (and the sound) to the server's preview tracks while watched."""

    repeat_when_idle = True

    def __init__(self, preview: Preview, audio_format: AudioFormat | None = None) -> None:
        self.name = "preview"
        self.preview = preview
        self.audio_feed = AudioFeed(audio_format) if audio_format is not None else None

    def write(self, frame: Frame) -> None:
        watched = self.preview.viewers > 0
        if watched:
            self.preview.video.put(frame.image, frame.capture_ns)
        if self.audio_feed is not None:
            chunks = self.audio_feed.take_all()  # taken even unwatched: a viewer joins at the live sound
            audio = self.preview.audio
            if watched and audio is not None:
                audio.video_delay_ns = time.monotonic_ns() - frame.capture_ns
                for chunk in chunks:
                    audio.put_chunk(chunk)

    def watched(self) -> bool:
        """A browser views the stream."""
        return self.preview.viewers > 0

    def close(self) -> None:
        self.preview.stop()
