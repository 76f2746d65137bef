"""Sources: the deterministic demo, stills, and files paced at their own rate (and looping)."""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import cv2
import numpy as np
import pytest

from livefuse.errors import SourceError
from livefuse.sources import SourceLost, open_source
from livefuse.sources.av_source import AVSource
from livefuse.sources.demo import DemoSource


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Encode BGR frames to a real H.264 file with PyAV."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "bf": "0"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def numbered_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Frames told apart by their brightness: frame i is a flat grey of 20 + 20*i."""
    return [np.full((size[1], size[0], 3), 20 + 20 * i, np.uint8) for i in range(count)]


def frame_index(image: np.ndarray) -> int:
    return round((float(image.mean()) - 20) / 20)


def test_demo_frames_are_deterministic_and_move() -> None:
    a = DemoSource((320, 240), 30.0, paced=False)
    b = DemoSource((320, 240), 30.0, paced=False)
    first = [a.read() for _ in range(4)]
    second = [b.read() for _ in range(4)]
    for x, y in zip(first, second, strict=True):
        assert x.shape == (240, 320, 3) and x.dtype == np.uint8
        np.testing.assert_array_equal(x, y)
    assert all(np.abs(first[i].astype(int) - first[i + 1]).mean() > 0.1 for i in range(3))  # it moves
    np.testing.assert_array_equal(DemoSource((320, 240), 30.0, paced=False).render(3 / 30.0), first[3])
    assert DemoSource((160, 120), 15.0, paced=False).read().shape == (120, 160, 3)


def test_demo_is_paced_like_a_camera() -> None:
    source = open_source("demo", (160, 120), 30.0)
    start = time.monotonic()
    for _ in range(16):
        source.read()
    elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 2.0, elapsed  # 15 intervals of 1/30 s


def test_file_source_is_paced_at_the_files_rate_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, numbered_frames(10), fps=20)
    source = open_source(f"file:{path}?loop=1", (64, 48), 30.0)  # the file's own 20 fps wins over --fps
    assert source.fps == pytest.approx(20.0)
    start = time.monotonic()
    frames = [source.read() for _ in range(25)]
    elapsed = time.monotonic() - start
    source.close()
    assert all(f is not None and f.shape == (48, 64, 3) for f in frames)
    assert [frame_index(f) for f in frames if f is not None] == [i % 10 for i in range(25)]
    assert 0.9 < elapsed < 3.0, elapsed  # 24 intervals of 1/20 s = 1.2 s


def test_file_source_ends_without_loop_and_resizes(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, numbered_frames(6), fps=60)
    source = open_source(str(path), (32, 24), 30.0)
    frames = []
    while (image := source.read()) is not None:
        frames.append(image)
        assert len(frames) <= 6
    source.close()
    assert [frame_index(f) for f in frames] == list(range(6))
    assert frames[0].shape == (24, 32, 3)


def test_a_live_source_that_ends_is_lost_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, numbered_frames(3), fps=30)
    source = AVSource(str(path), (64, 48), 30.0, live=True, description="stream test")
    assert [frame_index(source.read()) for _ in range(3)] == [0, 1, 2]  # type: ignore[arg-type]
    with pytest.raises(SourceLost, match="stream test ended"):  # for the pipeline to reconnect, not to stop
        source.read()
    source.reopen()
    assert frame_index(source.read()) == 0  # type: ignore[arg-type]
    source.close()


def test_image_source_repeats_the_resized_still_at_the_rate(tmp_path: Path) -> None:
    still = np.zeros((80, 100, 3), np.uint8)
    still[:, :, 0] = np.linspace(0, 255, 100, dtype=np.uint8)[None, :]
    still[:40, :, 2] = 200
    path = tmp_path / "still.png"
    assert cv2.imwrite(str(path), still)
    source = open_source(f"image:{path}", (50, 40), 20.0)
    expected = cv2.resize(still, (50, 40), interpolation=cv2.INTER_AREA)
    start = time.monotonic()
    frames = [source.read() for _ in range(11)]
    elapsed = time.monotonic() - start
    for image in frames:
        assert image is not None
        np.testing.assert_array_equal(image, expected)
    assert 0.35 < elapsed < 2.0, elapsed  # 10 intervals of 1/20 s
    assert frames[0] is not frames[1]  # a stage may change one frame without touching the next


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{tmp}/missing.mp4", "source file not found"),
        ("file:{tmp}/missing.mkv?loop=1", "source file not found"),
        ("image:{tmp}/missing.png", "image source not found"),
        ("image:{tmp}/notes.txt", "cannot decode image"),
        ("{tmp}/notes.txt", "cannot open source"),
        ("ftp://example.invalid/x.mp4", "unknown source"),
        pytest.param(
            "webcam:7",
            "no camera at /dev/video7",
            marks=pytest.mark.skipif(
                not sys.platform.startswith("linux") or Path("/dev/video7").exists(),
                reason="needs Linux without /dev/video7",
            ),
        ),
    ],
)
def test_bad_sources_raise_a_clear_source_error(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "notes.txt").write_text("not a video\n")
    with pytest.raises(SourceError, match=message):
        open_source(spec.format(tmp=tmp_path), (64, 48), 30.0)


class _FakeCamera:
    """Stands in for PyAV's v4l2 device (no camera on this machine): accepts only the listed modes."""

    accepted: ClassVar[tuple[str, ...]] = ()
    tried: ClassVar[list[str]] = []

    def __init__(self, url: str, size: tuple[int, int], fps: float, **kwargs: object) -> None:
        options = kwargs["options"]
        assert isinstance(options, dict)
        mode = str(options.get("input_format", "default"))
        type(self).tried.append(mode)
        if mode not in self.accepted:
            raise SourceError(f"cannot open source camera {url}: {mode} refused")
        self.mode = mode


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2 modes are Linux's")
def test_a_camera_without_mjpeg_is_opened_in_yuyv(monkeypatch: pytest.MonkeyPatch) -> None:
    from livefuse.sources import av_source

    monkeypatch.setattr(av_source, "AVSource", _FakeCamera)
    monkeypatch.setattr(_FakeCamera, "tried", [])
    monkeypatch.setattr(_FakeCamera, "accepted", ("yuyv422",))
    camera = av_source.open_camera("/dev/null", (1280, 720), 30.0)  # a path that exists stands in for the device
    assert isinstance(camera, _FakeCamera) and camera.mode == "yuyv422"
    assert _FakeCamera.tried == ["mjpeg", "yuyv422"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2 modes are Linux's")
def test_a_camera_that_takes_no_mode_reports_the_preferred_modes_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from livefuse.sources import av_source

    monkeypatch.setattr(av_source, "AVSource", _FakeCamera)
    monkeypatch.setattr(_FakeCamera, "tried", [])
    monkeypatch.setattr(_FakeCamera, "accepted", ())
    with pytest.raises(SourceError, match="mjpeg refused"):
        av_source.open_camera("/dev/null", (1280, 720), 30.0)
    assert _FakeCamera.tried == ["mjpeg", "yuyv422", "default"]


def test_no_camera_device_names_the_fix() -> None:
    with pytest.raises(SourceError, match=r"no camera at /dev/video97.*--source demo"):
        open_source("webcam:97", (640, 360), 30.0)
