"""RTMP push through PyAV to a real RTMP listener (FFmpeg's own, in a second process)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from livefuse.chain import Chain
from livefuse.errors import OutputError
from livefuse.pipeline import Pipeline
from livefuse.sinks import open_sink
from livefuse.sinks.encoder import open_stream_sink
from livefuse.sinks.push import PushSink
from livefuse.sources.demo import DemoSource

LISTENER = textwrap.dedent("""
    import sys, av
    container = av.open(sys.argv[1], format="flv", options={"listen": "1"}, timeout=20)
    print("listening", flush=True)
    frames = []
    try:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
    except av.error.OSError:
        pass  # the publisher hung up: the end of the stream
    import numpy as np
    np.save(sys.argv[2], np.stack(frames))
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rtmp_push_reaches_a_real_listener(tmp_path: Path) -> None:
    url = f"rtmp://127.0.0.1:{free_port()}/live/livefuse"
    received = tmp_path / "received.npy"
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, url, str(received)])
    try:
        size = (320, 240)
        for _ in range(50):  # the listener binds shortly after it starts
            try:
                sink = open_stream_sink(url, size, 30.0)
                break
            except OutputError:
                asyncio.run(asyncio.sleep(0.1))
        else:
            pytest.fail("could not connect to the RTMP listener")
        source = DemoSource(size, 30.0)
        pipeline = Pipeline(source, Chain("none", []), [sink], fps=30.0, max_frames=45)
        stats = asyncio.run(pipeline.run())
        assert listener.wait(timeout=20) == 0
    finally:
        listener.kill()
    frames = np.load(received)
    written = stats.outputs[sink.name].frames
    assert written >= 40
    assert len(frames) == written
    assert frames.shape[1:] == (240, 320, 3)
    expected = DemoSource(size, 30.0, paced=False).render(0.0)
    error = np.abs(frames[0].astype(np.int16) - expected.astype(np.int16)).mean()
    assert error < 6.0, f"first pushed frame differs from the demo's first frame by {error:.1f} levels"


def test_srt_without_support_names_the_alternative() -> None:
    import av

    try:
        sink = open_stream_sink("srt://127.0.0.1:9", (64, 64), 30.0)
    except OutputError as exc:
        assert "srt://127.0.0.1:9" in str(exc)
        return
    sink.close()  # this FFmpeg build has SRT: nothing to check
    pytest.skip(f"PyAV {av.__version__} has SRT support")


def test_a_push_connects_in_the_background_once_its_server_appears(tmp_path: Path) -> None:
    """The push opens at once whatever the server does, retries while it refuses, and is received in full
    once it listens; its state says which."""
    url = f"rtmp://127.0.0.1:{free_port()}/live/livefuse"
    size = (320, 240)
    started = time.monotonic()
    sink = open_sink(url, size, 30.0)
    assert isinstance(sink, PushSink) and time.monotonic() - started < 0.5
    try:
        deadline = time.monotonic() + 20
        while sink.state != "retrying" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.state == "retrying" and "Connection refused" in sink.error, (sink.state, sink.error)
        received = tmp_path / "received.npy"
        listener = subprocess.Popen([sys.executable, "-c", LISTENER, url, str(received)])
        try:
            assert sink.wait_connected(30), (sink.state, sink.error)
            pipeline = Pipeline(DemoSource(size, 30.0), Chain("none", []), [sink], fps=30.0, max_frames=45)
            stats = asyncio.run(pipeline.run())
            assert listener.wait(timeout=20) == 0
        finally:
            listener.kill()
    finally:
        sink.close()
    frames = np.load(received)
    assert stats.outputs[sink.name].frames >= 40
    assert stats.outputs[sink.name].state == "connected"
    assert len(frames) >= 40


def test_a_push_whose_server_never_answers_is_restarted_and_closes_promptly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child stuck in FFmpeg's connect (holding its own GIL) is killed after the connect timeout and
    started again; the daemon's side never waits on it, and closing takes no longer than the kill."""
    from test_push_stall import SilentServer

    from livefuse.frame import Frame
    from livefuse.sinks import push

    monkeypatch.setattr(push, "CONNECT_TIMEOUT_S", 1.5)
    monkeypatch.setattr(push, "RESPAWN_S", 0.2)
    server = SilentServer()
    try:
        sink = open_sink(f"rtmp://127.0.0.1:{server.port}/live/key", (64, 48), 10.0)
        assert isinstance(sink, PushSink)
        image = DemoSource((64, 48), 10.0, paced=False).read()
        deadline = time.monotonic() + 20
        writes: list[float] = []
        while len(server.accepted) < 2 and time.monotonic() < deadline:
            started = time.monotonic()
            sink.write(Frame(seq=len(writes), capture_ns=time.monotonic_ns(), image=image))
            writes.append(time.monotonic() - started)
            time.sleep(0.1)
        assert len(server.accepted) >= 2, (sink.state, sink.error)  # connected, killed, connected again
        assert max(writes) < 0.1, max(writes)  # never waits on the stuck child
        assert sink.restarts >= 1
        seen = (sink.state, sink.error)
        started = time.monotonic()
        sink.close()
        assert time.monotonic() - started < push.CLOSE_WAIT_S + 2
    finally:
        server.close()
    assert seen[0] in ("connecting", "retrying"), seen
