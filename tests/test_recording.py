"""Recordings through real PyAV: decode them back and compare with what was sent."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from livefuse.chain import Chain
from livefuse.frame import Frame
from livefuse.pipeline import Pipeline
from livefuse.sinks import open_sink
from livefuse.sinks.base import Sink
from livefuse.sinks.encoder import EncoderSink
from livefuse.sources.demo import DemoSource

SIZE = (640, 360)


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Every frame of the file's video stream (BGR) and its time in seconds."""
    images, times = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            images.append(frame.to_ndarray(format="bgr24"))
            times.append(float(frame.time) if frame.time is not None else float("nan"))
    return images, times


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


class Tap(Sink):
    """Passes frames to a real output and notes which ones it was given."""

    def __init__(self, inner: EncoderSink) -> None:
        self.inner = inner
        self.name = inner.name
        self.repeat_when_idle = inner.repeat_when_idle
        self.seqs: list[int] = []

    def write(self, frame: Frame) -> None:
        self.inner.write(frame)
        self.seqs.append(frame.seq)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("name", ["rec.mp4", "rec.webm", "rec.mkv"])
def test_recording_decodes_to_the_frames_sent(tmp_path: Path, name: str, memory_sink: Any) -> None:
    path = tmp_path / name
    sink = open_sink(f"file:{path}", SIZE, 30.0)
    assert isinstance(sink, EncoderSink)
    tap = Tap(sink)
    sent = memory_sink("sent")
    pipeline = Pipeline(DemoSource(SIZE, 30.0), Chain("none", []), [tap, sent], fps=30.0, max_frames=45)
    stats = asyncio.run(asyncio.wait_for(pipeline.run(), 60))

    written = stats.outputs[tap.name].frames
    assert written == sink.frames == len(tap.seqs) >= 10  # VP8 may skip some on a busy machine
    images, times = decode(path)
    assert len(images) == written
    assert all(image.shape == (SIZE[1], SIZE[0], 3) for image in images)
    by_seq = dict(zip(sent.seqs, sent.images, strict=True))
    scores = [psnr(image, by_seq[seq]) for image, seq in zip(images, tap.seqs, strict=True)]
    assert min(scores) > 30, f"worst PSNR {min(scores):.1f} dB"
    # A different frame scores far lower: the comparison really tells frames apart.
    assert psnr(images[-1], by_seq[tap.seqs[0]]) < min(scores) - 3
    # Timestamps come from capture times: strictly increasing, spanning the capture.
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[-1] - times[0] == pytest.approx((tap.seqs[-1] - tap.seqs[0]) / 30.0, rel=0.35)


@pytest.mark.parametrize(("stop", "suffix"), [(signal.SIGINT, ".mp4"), (signal.SIGTERM, ".mkv")])
def test_a_signal_finishes_the_recording(
    tmp_path: Path, livefuse_env: dict[str, str], stop: signal.Signals, suffix: str
) -> None:
    """Ctrl-C (or a service manager's SIGTERM) during a recording: a prompt exit 0 and a file that decodes
    to its last frame."""
    path = tmp_path / f"rec{suffix}"
    stats_path = tmp_path / "s.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livefuse",
            "run",
            "--source",
            "demo",
            "--output",
            f"file:{path}",
            "--preset",
            "passthrough",
            "--size",
            "640x360",
            "--fps",
            "30",
            "--stats-json",
            str(stats_path),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=livefuse_env,
    )
    lines: list[str] = []
    running = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "running preset" in line:
                running.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert running.wait(60), "".join(lines)
        time.sleep(2.0)
        proc.send_signal(stop)
        signalled = time.monotonic()
        rc = proc.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    stderr = "".join(lines)
    assert rc == 0, stderr
    assert took < 2.5, f"took {took:.2f} s to stop after {stop.name}"
    assert "Traceback" not in stderr

    stats = json.loads(stats_path.read_text())
    written = stats["outputs"][f"file:{path}"]["frames"]
    assert written >= 30  # about two seconds of frames
    images, times = decode(path)  # raises if the tail of the file is cut off
    assert abs(len(images) - written) <= 1, (len(images), written)
    assert images[-1].shape == (360, 640, 3)
    assert times[-1] >= (written - 1) / 30.0 * 0.65


def test_a_killed_recorder_leaves_a_playable_mp4(tmp_path: Path, livefuse_env: dict[str, str]) -> None:
    """SIGKILL gives no chance to finalise: the fragmented MP4 still plays up to its last whole fragment."""
    path = tmp_path / "killed.mp4"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livefuse",
            "run",
            "--source",
            "demo",
            "--output",
            f"file:{path}",
            "--preset",
            "passthrough",
            "--size",
            "320x240",
            "--fps",
            "30",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=livefuse_env,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "running preset" in line:
                break
        time.sleep(4.5)  # two keyframe intervals (2 s each): at least one whole fragment on disk
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    frames = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                frames += 1
        except av.FFmpegError:
            pass  # the fragment being written when the process died is cut off
    assert frames >= 55, f"only {frames} frames decode from a recorder killed after ~4.5 s"
