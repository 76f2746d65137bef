"""The virtual camera output, through the real pyvirtualcam.Camera and a registered backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
import pyvirtualcam
from pyvirtualcam.camera import BACKENDS
from pyvirtualcam.util import decode_fourcc

from livefuse.chain import Chain
from livefuse.errors import OutputError
from livefuse.frame import Frame
from livefuse.pipeline import Pipeline
from livefuse.sinks.virtualcam import VirtualCamSink
from livefuse.sources.base import Pacer, Source
from livefuse.sources.demo import DemoSource

BACKEND = "livefuse-test"


class RecordingBackend:
    """A pyvirtualcam backend (see pyvirtualcam.Backend) that keeps what it is sent instead of a device."""

    instances: ClassVar[list[RecordingBackend]] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any) -> None:
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._device = device or "/dev/video-test"
        self.frames: list[np.ndarray] = []
        self.closes = 0
        RecordingBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert frame.ndim == 1 and frame.flags.c_contiguous and frame.dtype == np.uint8
        self.frames.append(frame.copy())

    def close(self) -> None:
        self.closes += 1

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return None


class RefusingBackend(RecordingBackend):
    def __init__(self, **kw: Any) -> None:
        raise RuntimeError("No v4l2 loopback device found")


@pytest.fixture
def backend() -> Iterator[type[RecordingBackend]]:
    RecordingBackend.instances = []
    pyvirtualcam.register_backend(BACKEND, RecordingBackend)
    try:
        yield RecordingBackend
    finally:
        BACKENDS.pop(BACKEND, None)


def stamped(seq: int, size: tuple[int, int]) -> np.ndarray:
    image = np.full((size[1], size[0], 3), (seq * 7) % 256, np.uint8)
    image[0, 0] = (seq % 256, seq // 256, 99)
    return image


def test_sink_sends_bgr_frames_of_its_size(backend: type[RecordingBackend]) -> None:
    sink = VirtualCamSink((64, 48), 25.0, device="/dev/video42", backend=BACKEND)
    assert sink.name == "virtualcam:/dev/video42"
    (cam,) = backend.instances
    assert (cam.width, cam.height, cam.fps) == (64, 48, 25.0)
    assert pyvirtualcam.PixelFormat(decode_fourcc(cam.fourcc)) is pyvirtualcam.PixelFormat.BGR
    images = [stamped(i, (64, 48)) for i in range(3)]
    for i, image in enumerate(images):
        image.flags.writeable = False  # the pipeline hands outputs read-only images
        sink.write(Frame(seq=i, capture_ns=0, image=image))
    sink.close()
    assert cam.closes == 1
    assert len(cam.frames) == 3
    for sent, got in zip(images, cam.frames, strict=True):
        np.testing.assert_array_equal(got.reshape(48, 64, 3), sent)
    with pytest.raises(ValueError, match="shape"):  # pyvirtualcam checks the size for us
        VirtualCamSink((64, 48), 25.0, backend=BACKEND).write(Frame(0, 0, stamped(0, (32, 24))))


def test_unusable_camera_says_how_to_fix_it() -> None:
    pyvirtualcam.register_backend(BACKEND, RefusingBackend)
    try:
        with pytest.raises(OutputError, match=r"no virtual camera is usable.*(v4l2loopback|OBS)"):
            VirtualCamSink((64, 48), 30.0, backend=BACKEND)
    finally:
        BACKENDS.pop(BACKEND, None)


class StampedSource(Source):
    """Demo frames with their sequence number written into the first pixel."""

    description = "stamped demo"
    fps = 30.0

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.demo = DemoSource(size, self.fps, paced=False)
        self.pacer = Pacer(self.fps)
        self.count = 0

    def read(self) -> np.ndarray:
        self.pacer.wait()
        image = self.demo.render(self.count / self.fps)
        image[0, 0] = (self.count % 256, self.count // 256, 99)
        self.count += 1
        return image

    def close(self) -> None:
        pass


def test_pipeline_feeds_the_virtual_camera(backend: type[RecordingBackend], memory_sink: Any) -> None:
    size = (320, 240)
    sink = VirtualCamSink(size, 30.0, backend=BACKEND)
    recorded = memory_sink("recorded", keep_images=False)
    pipeline = Pipeline(StampedSource(size), Chain("none", []), [sink, recorded], fps=30.0, max_frames=40)
    stats = asyncio.run(asyncio.wait_for(pipeline.run(), 60))
    (cam,) = backend.instances
    assert cam.closes == 1 and (cam.width, cam.height) == size
    assert pyvirtualcam.PixelFormat(decode_fourcc(cam.fourcc)) is pyvirtualcam.PixelFormat.BGR
    written = stats.outputs[sink.name].frames
    assert written >= 30 and len(cam.frames) >= written  # more only if a stall made it repeat a frame
    seqs = [int(f[0]) + 256 * int(f[1]) for f in cam.frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == written
    reference = DemoSource(size, 30.0, paced=False)
    for seq, raw in zip(seqs, cam.frames, strict=True):
        image = raw.reshape(size[1], size[0], 3)
        assert tuple(image[0, 0]) == (seq % 256, seq // 256, 99)
        expected = reference.render(seq / 30.0)
        np.testing.assert_array_equal(image[1:], expected[1:])  # sent as captured, bit for bit
