"""Sleep when nobody watches: a real WebRTC viewer leaves, inference stops and the source is released within
the grace period; a new viewer wakes it with its first frame within 1.5 s. The virtual camera's readers are
counted at the OS boundary (/proc), as pyvirtualcam's backend is faked for its own tests."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import numpy as np
import pytest
from browser_fixtures import LiveDaemon, daemons_fixture, http
from conftest import MemorySink
from pyvirtualcam.camera import BACKENDS
from test_webrtc import Client

from livefuse.sinks.readers import readers
from livefuse.sinks.virtualcam import VirtualCamSink
from livefuse.sleep import CHECK_S, paused_picture

__all__ = ["daemons_fixture"]

GRACE_S = 1.0


def wait_for(predicate: Callable[[], object], timeout: float) -> float | None:
    """Seconds until `predicate()` held, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


async def watch(daemon: LiveDaemon, seconds_after_first: float) -> tuple[Client, float]:
    """A viewer that connects, gets frames for a while and leaves; (it, seconds from connect to first frame)."""
    async with aiohttp.ClientSession() as session:
        viewer = Client(daemon.url)
        start = time.monotonic()
        assert await viewer.connect(session) == 200
        task = asyncio.create_task(viewer.receive())
        while viewer.frames == 0 and time.monotonic() - start < 20:
            await asyncio.sleep(0.02)
        first = time.monotonic() - start
        await asyncio.sleep(seconds_after_first)
        task.cancel()
        await viewer.close()
    return viewer, first


@pytest.mark.slow
def test_a_viewer_leaving_puts_it_to_sleep_and_a_new_one_wakes_it(daemons: type[LiveDaemon]) -> None:
    daemon = daemons("background-blur", sleep_after=GRACE_S).start()
    source = daemon.source
    assert source is not None and daemon.pipeline is not None
    calls = {"close": 0, "reopen": 0}
    close, reopen = source.close, source.reopen

    def counted(name: str, call: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            calls[name] += 1
            call()

        return run

    # counts the source's calls: the test patches the instance's methods on purpose
    source.close, source.reopen = counted("close", close), counted("reopen", reopen)  # type: ignore[method-assign]
    stats = daemon.pipeline.stats
    # Nobody watches from the start: asleep within the grace period (plus one check).
    assert wait_for(lambda: stats.sleep == "sleeping", GRACE_S + 3 * CHECK_S + 1.0) is not None
    viewer, first = asyncio.run(watch(daemon, 1.0))
    left = time.monotonic()
    print(f"woken by a viewer: its first frame after {first * 1000:.0f} ms; {viewer.frames} frames")
    assert first < 1.5 and viewer.frames > 5 and calls["reopen"] >= 1
    assert stats.sleep == "awake"
    # The viewer left: asleep again within the grace period (the server sees the peer close at once).
    asleep_after = wait_for(lambda: stats.sleep == "sleeping", GRACE_S + 3 * CHECK_S + 1.0)
    assert asleep_after is not None, "did not sleep after the viewer left"
    print(f"asleep {time.monotonic() - left:.2f} s after the viewer left (grace {GRACE_S} s)")
    assert wait_for(lambda: calls["close"] >= 2, 1.0) is not None  # the source was released again
    processed, captured = stats.frames_processed, stats.frames_in
    time.sleep(1.5)
    assert stats.frames_in == captured  # nothing captured, so no stage runs
    assert stats.frames_processed == processed
    assert stats.snapshot()["sleep"] == {"state": "sleeping", "sleeps": 2}
    metrics = http("GET", f"{daemon.url}/metrics")[2].decode()  # what a dashboard sees
    assert "livefuse_sleeping 1.0" in metrics and "livefuse_sleeps_total 2.0" in metrics
    second, first_again = asyncio.run(watch(daemon, 0.3))
    print(f"woken again: first frame after {first_again * 1000:.0f} ms")
    assert first_again < 1.5 and second.frames > 0 and calls["reopen"] >= 2


def test_an_unwatched_camera_output_keeps_showing_the_paused_picture() -> None:
    """No reader (an output that says so): after the grace period the outputs get the paused picture, and
    an output that repeats its last frame (the virtual camera) shows it until a viewer comes."""
    from livefuse.chain import Chain
    from livefuse.pipeline import Pipeline
    from livefuse.sources.demo import DemoSource

    class Unread(MemorySink):
        def watched(self) -> bool:
            return False

    sink = Unread(repeat_when_idle=True)
    source = DemoSource((160, 90), 30.0)
    pipeline = Pipeline(source, Chain("none", []), [sink], fps=30.0, duration=2.5, sleep_after=0.5)
    stats = asyncio.run(pipeline.run())
    assert stats.sleep == "sleeping" and stats.sleeps == 1
    assert stats.frames_in < 1.6 * 30  # capture stopped about 1 s in (grace + one check), not at 2.5 s
    dimmed = [np.median(image) < 0.5 * np.median(sink.images[0]) for image in sink.images]
    first = dimmed.index(True)
    assert all(dimmed[first:]) and len(dimmed) - first > 10  # shown, and repeated, until the end
    assert np.array_equal(sink.images[first], paused_picture(sink.images[first - 1]))  # the last frame, paused


def test_the_paused_picture_is_the_last_one_dimmed_and_marked() -> None:
    image = np.full((180, 320, 3), 200, np.uint8)
    paused = paused_picture(image)
    assert paused.shape == image.shape and paused.dtype == np.uint8
    assert np.median(paused) < 100 and paused.max() > 200  # dimmed, with bright text on it


def test_readers_of_a_device_are_other_processes_holding_it_open(tmp_path: Path) -> None:
    device = tmp_path / "video9"
    device.write_bytes(b"")
    assert readers(str(device)) == 0
    with device.open("rb"):  # this process itself (the writer) is not a reader
        assert readers(str(device)) == 0
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time; f = open({str(device)!r}); print('open', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        assert readers(str(device)) == 1
    finally:
        reader.kill()
        reader.wait()
    assert readers(str(device)) == 0
    assert readers(str(device), proc=tmp_path / "no-proc") is None  # an OS without /proc cannot tell


class FileBackend:
    """A pyvirtualcam backend whose "device" is a plain file (no v4l2loopback here)."""

    device_path: ClassVar[str] = ""

    def __init__(self, **kw: Any) -> None:
        pass

    def send(self, frame: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self.device_path

    def native_fourcc(self) -> int | None:
        return None


@pytest.fixture
def file_backend(tmp_path: Path) -> Iterator[Path]:
    device = tmp_path / "video7"
    device.write_bytes(b"")
    FileBackend.device_path = str(device)
    BACKENDS["livefuse-file"] = FileBackend
    yield device
    del BACKENDS["livefuse-file"]


def test_the_virtual_camera_is_watched_while_an_application_reads_it(file_backend: Path) -> None:
    sink = VirtualCamSink((64, 36), 30.0, backend="livefuse-file")
    try:
        assert sink.device == str(file_backend) and not sink.watched()
        reader = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import time; f = open({str(file_backend)!r}); print('open', flush=True); time.sleep(30)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
            assert sink.watched()
        finally:
            reader.kill()
            reader.wait()
        assert not sink.watched()
    finally:
        sink.close()


def run_daemon(tmp_path: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """`livefuse run` with only the preview (nobody watching) until SIGINT after 3 s: its --stats-json."""
    stats = tmp_path / f"stats{len(extra)}.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livefuse",
            "run",
            "--source",
            "demo",
            "--size",
            "160x90",
            "--preset",
            "passthrough",
            "--output",
            "preview",
            "--port",
            "0",
            "--sleep-after",
            "0.5",
            "--stats-json",
            str(stats),
            *extra,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return dict(json.loads(stats.read_text()))


def test_the_daemon_sleeps_unless_always_on_or_bounded(tmp_path: Path, livefuse_env: dict[str, str], cli: Any) -> None:
    assert run_daemon(tmp_path, livefuse_env)["sleep"] == {"state": "sleeping", "sleeps": 1}
    assert run_daemon(tmp_path, livefuse_env, "--always-on")["sleep"]["state"] == "always on"
    assert run_daemon(tmp_path, livefuse_env, "--duration", "3.5")["sleep"]["state"] == "always on"
    bad = cli("run", "--source", "demo", "--sleep-after", "-1", "--frames", "1")
    assert bad.returncode == 2 and "--sleep-after" in bad.stderr
