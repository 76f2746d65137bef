"""Peer: the aiortc server example's pattern, a per-frame transform inside a track's `recv()`.

A camera track hands out `av.VideoFrame`s (yuv420p, as a decoder would) through an asyncio
queue fed by a reader thread, as aiortc's own media tracks do: nothing is dropped there, so a
transform slower than real time lets a backlog (and latency) grow. The transform track awaits the
source frame, converts it to BGR, segments and blurs it (the OpenCV + onnxruntime peer's code,
livefuse's blur strength) on the event loop, and returns a new frame with the source's timing.
A consumer awaits `recv()` in a loop, like a MediaBlackhole.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time

from aiortc import MediaStreamTrack
from av import VideoFrame
from common import finish, measure, ort_segment_blur, parse_args, record

from livefuse.bench.camera import ReleasedCamera
from livefuse.bench.report import Measured

TIME_BASE = fractions.Fraction(1, 90000)


class CameraTrack(MediaStreamTrack):
    """Frames released by the camera, as a media track; `pts` carries the release index."""

    kind = "video"

    def __init__(self, camera: ReleasedCamera, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.queue: asyncio.Queue[VideoFrame | None] = asyncio.Queue()
        self.taken: dict[int, int] = {}  # release index -> when the reader thread took it
        self._camera = camera
        self._thread = threading.Thread(target=self._read, args=(loop,), daemon=True)
        self._thread.start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        while (image := self._camera.read()) is not None:
            got = self._camera.reads[-1]
            self.taken[got.index] = time.monotonic_ns()
            frame = VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            frame.pts, frame.time_base = got.index, TIME_BASE
            loop.call_soon_threadsafe(self.queue.put_nowait, frame)
        loop.call_soon_threadsafe(self.queue.put_nowait, None)

    async def recv(self) -> VideoFrame:
        frame = await self.queue.get()
        if frame is None:
            self.stop()
            raise EOFError
        return frame


class BlurTrack(MediaStreamTrack):
    """Transforms each frame of another track in `recv()`, as the aiortc server example does."""

    kind = "video"

    def __init__(self, track: MediaStreamTrack, transform: object) -> None:
        super().__init__()
        self.track = track
        self.transform = transform
        self.steps: dict[int, dict[str, int]] = {}

    async def recv(self) -> VideoFrame:
        frame = await self.track.recv()
        t0 = time.perf_counter_ns()
        image = frame.to_ndarray(format="bgr24")
        t1 = time.perf_counter_ns()
        out, steps = self.transform(image)  # type: ignore[operator]
        t2 = time.perf_counter_ns()
        new_frame = VideoFrame.from_ndarray(out, format="bgr24")
        new_frame.pts, new_frame.time_base = frame.pts, frame.time_base
        self.steps[frame.pts] = {"convert": t1 - t0 + time.perf_counter_ns() - t2, **steps}
        return new_frame


async def consume(camera: ReleasedCamera, transform: object, measured: Measured) -> None:
    source = CameraTrack(camera, asyncio.get_running_loop())
    track = BlurTrack(source, transform)
    while True:
        try:
            frame = await track.recv()
        except EOFError:
            break
        done = time.monotonic_ns()
        index = int(frame.pts)
        record(measured, index, camera.release_times_ns[index], source.taken[index], done, track.steps.pop(index))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    transform = ort_segment_blur(args)
    camera, measured = measure(
        args, transform, lambda camera, measured: asyncio.run(consume(camera, transform, measured))
    )
    finish(
        args,
        "aiortc-track-recv",
        "track",
        "CPUExecutionProvider",
        measured,
        camera,
        "VideoFrame in/out, transform on the event loop, unbounded source queue",
    )


if __name__ == "__main__":
    main()
