"""Frames between the pipeline's threads and aiortc's loop, always the newest, never a backlog.

- `LatestFrameTrack`: an outgoing video track. Any thread `put`s processed
  images; `recv()` returns the newest one not yet sent, stamped with its capture
  time on the 90 kHz clock, and waits when there is none.
- `TrackSource`: a pipeline `Source` reading an incoming (browser camera) track.
- `TrackSink`: a pipeline output that feeds a `LatestFrameTrack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from fractions import Fraction

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livefuse.frame import Frame

TIME_BASE = Fraction(1, Frame.time_base)


class LatestFrameTrack(MediaStreamTrack):
    """An outgoing video track that always sends the newest frame it was given."""

    kind = "video"

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
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
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


class TrackSink:
    """Pipeline output feeding a `LatestFrameTrack` (one per camera peer)."""

    repeat_when_idle = True

    def __init__(self, track: LatestFrameTrack, name: str = "webrtc") -> None:
        self.name = name
        self.track = track

    def write(self, frame: Frame) -> None:
        self.track.put(frame.image, frame.capture_ns)

    def close(self) -> None:
        pass


class TrackSource:
    """Pipeline source reading frames from an incoming WebRTC track, resized to the pipeline's size.

    A task on the loop receives frames into a one-frame mailbox; the capture thread's
    `read()` takes the newest one. If the pipeline falls behind, older frames are
    replaced, as a camera would drop them.
    """

    def __init__(self, track: MediaStreamTrack, size: tuple[int, int], fps: float) -> None:
        self.size = size
        self.fps = fps
        self.description = f"webrtc {track.id}"
        self._track = track
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
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
                image = frame.to_ndarray(format="bgr24")
                if (image.shape[1], image.shape[0]) != self.size:
                    image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
                with self._cond:
                    self._latest = image
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
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended)
            image, self._latest = self._latest, None
        return image

    def close(self) -> None:
        """Stop receiving; safe from any thread (the pipeline closes its source from the capture thread)."""
        self._end()
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._task.cancel)
