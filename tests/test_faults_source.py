"""Faults on the way in: a network stream that stops and comes back, and media files that are not media."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from conftest import MemorySink
from test_cli_errors import assert_one_clear_error

from livefuse.chain import Chain
from livefuse.errors import SourceError
from livefuse.pipeline import Pipeline
from livefuse.sinks.encoder import open_file_sink
from livefuse.sources import Source, open_source

SIZE = (160, 120)
FPS = 30.0
GAP_S = 4.0

# A separate process sending H.264 in MPEG-TS in real time, as a camera or encoder on the network would, over
# UDP or from a TCP server socket: a flat grey picture at LEVEL, so the receiver can tell which sender a frame
# came from. It prints its monotonic clock (system-wide on Linux) once started, before it opens the connection.
SENDER = """
import sys, time
import av, numpy as np
url, seconds, level = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
print(time.monotonic(), flush=True)
out = av.open(url, mode="w", format="mpegts")
stream = out.add_stream("libx264", rate=30)
stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "15", "bf": "0"}
image = np.full((120, 160, 3), level, np.uint8)
start = time.monotonic()
i = 0
while time.monotonic() - start < seconds:
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts = i
    for packet in stream.encode(frame):
        out.mux(packet)
    i += 1
    time.sleep(max(0.0, start + i / 30 - time.monotonic()))
for packet in stream.encode(None):
    out.mux(packet)
out.close()
"""


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sender(url: str, seconds: float, level: int) -> tuple[subprocess.Popen[str], float]:
    """The sender process and the monotonic time it was ready to send at."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER, url, str(seconds), str(level)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, float(proc.stdout.readline())


def open_when_listening(url: str) -> Source:
    """The first connection, made as soon as the sender listens (it starts as a separate process)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return open_source(url, SIZE, FPS)
        except SourceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def levels(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(np.mean(f.to_ndarray(format="gray"))) for f in container.decode(video=0)]


async def _stream_with_a_gap(send: str, receive: str, viewer: MemorySink, recording: Path) -> tuple[Pipeline, float]:
    """Sender one for 3 s, nothing for GAP_S, sender two for 4 s; returns when sender two started."""
    first, _ = await asyncio.to_thread(start_sender, send, 3.0, 60)
    source = await asyncio.to_thread(open_when_listening, receive)
    pipeline = Pipeline(source, Chain("none", []), [viewer, open_file_sink(str(recording), SIZE, FPS)], fps=FPS)
    run = asyncio.create_task(pipeline.run())
    await asyncio.to_thread(first.wait)
    await asyncio.sleep(GAP_S)
    second, resumed = await asyncio.to_thread(start_sender, send, 4.0, 200)
    await asyncio.to_thread(second.wait)
    await asyncio.sleep(1.0)
    pipeline.stop()
    await asyncio.wait_for(run, 30)
    return pipeline, resumed


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_network_stream_that_stops_for_4_s_reconnects_and_the_recording_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.INFO, "livefuse")
    if protocol == "udp":  # the sender stops sending: a stall, noticed by the read timeout
        port = free_port(socket.SOCK_DGRAM)
        send, receive = f"udp://127.0.0.1:{port}?pkt_size=1316", f"udp://127.0.0.1:{port}"
    else:  # the sender's server goes away: the connection ends, and is refused until it is back
        port = free_port(socket.SOCK_STREAM)
        send, receive = f"tcp://127.0.0.1:{port}?listen=1", f"tcp://127.0.0.1:{port}"
    viewer = MemorySink("viewer", repeat_when_idle=True, keep_images=False)
    recording = tmp_path / "rec.mp4"
    pipeline, resumed = asyncio.run(_stream_with_a_gap(send, receive, viewer, recording))

    # the loss was noticed and the source reopened, not left blocked on a silent socket
    assert pipeline.stats.reconnects >= 1
    assert any("lost" in r.getMessage() for r in caplog.records)
    # the viewer kept getting the last frame throughout the gap: never more than a few frame times without one
    gaps = np.diff(viewer.write_times)
    assert gaps.max() < 0.5, gaps.max()
    # frames from the second sender reached the viewer soon after it started
    first_new = next(
        t
        for t, seq, prev in zip(viewer.write_times[1:], viewer.seqs[1:], viewer.seqs, strict=True)
        if seq != prev and t > resumed
    )
    reconnect_s = first_new - resumed
    # and the recording holds frames from both senders, played to its end
    recorded = levels(recording)
    before = sum(1 for v in recorded if v < 130)
    after = sum(1 for v in recorded if v >= 130)
    print(
        f"\n{protocol}: reconnect {reconnect_s:.2f} s after the sender came back; recorded {before} frames "
        f"before the gap and {after} after (the second sender sent {int(4 * FPS)})"
    )
    assert reconnect_s < 3.0
    assert before >= 30 and after >= 2 * FPS
    assert pipeline.stats.outputs[f"file:{recording}"].errors == 0


def write_clip(path: Path, frames: int = 60, **options: str) -> bytes:
    """A noisy H.264 clip (noise: every frame is a real packet of data), returned as bytes."""
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8), format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(2).integers(0, 255, 50_000, dtype=np.uint8).tobytes())


def _killed_recording(path: Path) -> None:  # an MP4 whose index (written last) never was
    data = write_clip(path)
    path.write_bytes(data[: len(data) // 2])


def _cut_short(path: Path) -> None:  # index first, media cut in half: the header promises 2 s
    data = write_clip(path, movflags="faststart")
    path.write_bytes(data[: len(data) // 2])


def _damaged_inside(path: Path) -> None:
    data = bytearray(write_clip(path, movflags="faststart"))
    third = len(data) // 3
    data[third : 2 * third] = np.random.default_rng(3).integers(0, 255, third, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "phrases"),
    [
        (_garbage, ("cannot open source file bad.mp4", "not a video file")),
        (_killed_recording, ("cannot open source file bad.mp4", "damaged or truncated")),
        (_cut_short, ("file bad.mp4 is truncated", "of the 2.0 s its header declares")),
        (_damaged_inside, ("cannot decode file bad.mp4 after", "damaged")),
    ],
)
def test_a_damaged_media_file_as_source_is_one_clear_error(
    cli: Any, tmp_path: Path, damage: Any, phrases: tuple[str, ...]
) -> None:
    damage(tmp_path / "bad.mp4")
    proc = cli("run", "--source", "bad.mp4", "--output", "null", "--preset", "passthrough", "--size", "96x64")
    assert_one_clear_error(proc, *phrases)


def test_a_whole_clip_plays_to_its_end_without_an_error(cli: Any, tmp_path: Path) -> None:
    write_clip(tmp_path / "good.mp4", movflags="faststart")
    proc = cli(
        "run",
        "--source",
        "good.mp4",
        "--output",
        "null",
        "--preset",
        "passthrough",
        "--size",
        "96x64",
        "--stats-json",
        "s.json",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "s.json").read_text())["frames_in"] == 60
