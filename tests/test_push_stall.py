"""A push whose server accepts and never answers must not stall the daemon (issue 29's freeze).

FFmpeg holds the GIL while it connects (`avio_open`, `avformat_write_header`): before pushes moved to a
child process, `livefuse run --output preview --output rtmp://<silent>` never served /healthz at all.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import http_json
from conftest import stop_with_sigint

from livefuse.redact import redact

FPS = 15


class SilentServer:
    """A TCP listener on loopback that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_silent_push_server_stalls_neither_start_nor_preview_nor_healthz(
    tmp_path: Path, livefuse_env: dict[str, str], silent_server: SilentServer
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    push = f"rtmp://127.0.0.1:{silent_server.port}/live/x"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livefuse",
            "run",
            "--source",
            "demo",
            "--size",
            "160x120",
            "--fps",
            str(FPS),
            "--preset",
            "passthrough",
            "--output",
            "preview",
            "--output",
            push,
            "--port",
            str(port),
            "--no-auth",
        ],
        cwd=tmp_path,
        env=livefuse_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        while True:  # the old daemon hung here, in avformat_write_header, for as long as the server was silent
            try:
                if http_json("GET", base + "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert daemon.poll() is None, "the daemon ended"
            assert time.monotonic() < deadline, "/healthz never answered with a silent push server"
            time.sleep(0.2)
        assert wait_until(lambda: silent_server.accepted, 20), "the push never connected"
        time.sleep(1.0)  # the preview settles
        first = outputs(base)
        start = time.monotonic()
        latencies = []
        while time.monotonic() - start < 6.0:  # the push stays hung all along: the server never answers
            t0 = time.monotonic()
            assert http_json("GET", base + "/healthz", timeout=5)[0] == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.1)
        last = outputs(base)
        elapsed = time.monotonic() - start
        fps = (last["preview"]["frames"] - first["preview"]["frames"]) / elapsed
        latencies.sort()
        p95 = latencies[int(len(latencies) * 0.95)]
        p50, most = latencies[len(latencies) // 2], latencies[-1]
        print(
            f"\npreview {fps:.1f} fps of {FPS} while the push hung; /healthz p50 {p50 * 1000:.1f} ms, "
            f"p95 {p95 * 1000:.1f} ms, max {most * 1000:.1f} ms; "
            f"push state: {last[redact(push)].get('state')}"
        )
        assert fps >= 0.9 * FPS
        assert p95 < 0.1 and latencies[-1] < 0.5
        shown = redact(push)  # the output's name: /api/status never shows a stream key
        assert last[shown]["state"].startswith(("connecting", "retrying")), last[shown]
        assert not last[shown]["failed"]
    finally:
        stop_with_sigint(daemon, "livefuse run with a hung push", 30.0)
    assert daemon.returncode == 0


def wait_until(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def outputs(base: str) -> dict[str, dict[str, Any]]:
    """/api/status's figures per output (JSON)."""
    status, body = http_json("GET", base + "/api/status", timeout=5)
    assert status == 200, body
    return body["stats"]["outputs"]
