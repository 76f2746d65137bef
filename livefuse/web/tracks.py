"""Frames between the pipeline's threads and aiortc's loop, always the newest, never a backlog.

- `LatestFrameTrack`: an outgoing video track. Any thread `put`s processed
  images; `recv()` returns the newest one not yet sent, stamped with its capture
  time on the 90 kHz clock, and waits when there is none.
- `TrackSource`: a pipeline `Source` reading an incoming (browser camera) track.
- `TrackSink`: a pipeline output that feeds a `LatestFrameTrack` (and the sound beside it).
- `HeldBackAudioTrack`: an outgoing audio track that sends each chunk once the video of the same
  capture instant has gone out: held back by the video's measured delay, so the browser, which
  lines the two up by when they were sent, plays them in sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.convert import to_frame
from livefuse.audio.feed import AudioFeed
from livefuse.frame import Frame
from livefuse.sinks.base import Sink
from livefuse.sources.base import Source
from livefuse.yuv import yuv420p_frame

TIME_BASE = Fraction(1, Frame.time_base)
OPUS_RATE = 48000
MAX_HOLD_NS = 2_000_000_000  # a video delay past this is a stall, not a delay to match


class HeldBackAudioTrack(MediaStreamTrack):
    """Sends audio frames in order, each when `video_delay_ns` has passed since its capture.

    `put` (any thread) takes frames already converted; the loop only waits and stamps. Frames are
    never dropped: a viewer that reads slowly gets them late, never fewer.
    """

    kind = "audio"
    _loop: asyncio.AbstractEventLoop  # always set here (the event emitter base class declares it optional)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._queue: asyncio.Queue[tuple[av.AudioFrame | None, int]] = asyncio.Queue()
        self._next_pts: int | None = None
        self.video_delay_ns = 0  # set by the video side each time a frame goes out
        self.sent = 0
        self._resampler: av.AudioResampler | None = None

    def put(self, frame: av.AudioFrame, capture_ns: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while an output thread was finishing
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (frame, capture_ns))

    def put_chunk(self, chunk: AudioChunk) -> None:
        """Offer a chunk (from one output thread): resampled here, once, to what the Opus encoder takes."""
        if self._resampler is None:
            # 20 ms frames: aiortc sends one Opus packet per frame it is given (more would share a timestamp)
            self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE, frame_size=960)
        for frame in self._resampler.resample(to_frame(chunk.samples, chunk.rate)):
            self.put(frame, chunk.capture_ns)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame, capture_ns = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        due_ns = capture_ns + min(self.video_delay_ns, MAX_HOLD_NS)
        wait_ns = due_ns - time.monotonic_ns()
        if wait_ns > 0:
            await asyncio.sleep(wait_ns / 1e9)
        rate = frame.sample_rate
        if self._next_pts is None:
            self._next_pts = capture_ns * rate // 1_000_000_000
        frame.pts, frame.time_base = self._next_pts, Fraction(1, rate)  # back to back: one continuous signal
        self._next_pts += frame.samples
        self.sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (None, 0))  # wake a waiting recv()


class LatestFrameTrack(MediaStreamTrack):
    """An outgoing video track that always sends the newest frame it was given."""

    kind = "video"
    _loop: asyncio.AbstractEventLoop  # always set here (the event emitter base class declares it optional)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._latest: av.VideoFrame | None = None
        self._fresh = asyncio.Event()
        self._last_pts = -1
        self.sent = 0

    def put(self, image: np.ndarray, capture_ns: int) -> None:
        """Offer a BGR image (from any thread); converted here, off the event loop.

        It is converted to the encoders' yuv420p once, here: relayed frames are shared
        by every viewer's encoder thread, and PyAV's on-demand conversion keeps state on
        the frame that is not safe to use from several threads at once.
        """
        frame = yuv420p_frame(image)
        frame.time_base = TIME_BASE
        pts = capture_ns * Frame.time_base // 1_000_000_000
        with contextlib.suppress(RuntimeError):  # the loop closed while an output thread was finishing
            self._loop.call_soon_threadsafe(self._deliver, frame, pts)

    def _deliver(self, frame: av.VideoFrame, pts: int) -> None:
        self._last_pts = max(pts, self._last_pts + 1)  # an encoder needs strictly increasing timestamps
        frame.pts = self._last_pts
        self._latest = frame
        self._fresh.set()

    async def recv(self) -> av.VideoFrame:
        while self._latest is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._fresh.clear()
            await self._fresh.wait()
        frame, self._latest = self._latest, None
        self.sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._fresh.set()  # wake a waiting recv() so it sees the track has ended


class TrackSink(Sink):
    """Pipeline output feeding a `LatestFrameTrack` (one per camera peer), and its audio track the video's
    delay, measured as each frame goes out."""

    repeat_when_idle = True

    def __init__(
        self,
        track: LatestFrameTrack,
        name: str = "webrtc",
        audio: HeldBackAudioTrack | None = None,
        audio_format: AudioFormat | None = None,
    ) -> None:
        self.name = name
        self.track = track
        self.audio = audio
        self.audio_feed: AudioFeed | None = AudioFeed(audio_format) if audio and audio_format else None

    def write(self, frame: Frame) -> None:
        self.track.put(frame.image, frame.capture_ns)
        if self.audio is not None:
            self.audio.video_delay_ns = time.monotonic_ns() - frame.capture_ns
            if self.audio_feed is not None:
                for chunk in self.audio_feed.take_all():
                    self.audio.put_chunk(chunk)

    def close(self) -> None:
        pass


class TrackSource(Source):
    """Pipeline source reading frames from an incoming WebRTC track, resized to the pipeline's size.

    A task on the loop receives decoded frames into a one-frame mailbox and does nothing else with
    them; the capture thread's `read()` takes the newest one and converts and resizes it there, so
    no per-frame work runs on the event loop. If the pipeline falls behind, older frames are
    replaced unconverted, as a camera would drop them.
    """

    def __init__(self, track: MediaStreamTrack, size: tuple[int, int], fps: float) -> None:
        self.size = size
        self.fps = fps
        self.description = f"webrtc {track.id}"
        self._track = track
        self._cond = threading.Condition()
        self._latest: av.VideoFrame | None = None
        self._ended = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Begin receiving (call from the loop)."""
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._receive())

    async def _receive(self) -> None:
        try:
            while True:
                frame = await self._track.recv()
                if not isinstance(frame, av.VideoFrame):  # a video track yields video frames
                    continue
                with self._cond:
                    self._latest = frame
                    self._cond.notify_all()
        except MediaStreamError:
            pass
        finally:
            self._end()

    def _end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def read(self) -> np.ndarray | None:
        """The newest frame as BGR at the pipeline's size (capture thread); None once the track ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended)
            frame, self._latest = self._latest, None
        if frame is None:
            return None
        image: np.ndarray = frame.to_ndarray(format="bgr24")
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        return image

    def close(self) -> None:
        """Stop receiving; safe from any thread (the pipeline closes its source from the capture thread)."""
        self._end()
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._task.cancel)
