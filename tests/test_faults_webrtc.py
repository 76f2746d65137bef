"""200 real WebRTC viewers join and leave a running daemon, a third of them without a goodbye.

The daemon is `livefuse run` in a process of its own, so its threads, file descriptors and memory are
measured alone; the viewers are aiortc peers in batch processes (tests/peer_churn_client.py). Those that
drop vanish with their process, as a crashed tab would: the daemon must notice (`--peer-timeout`) and
clean up after them as after the ones that said goodbye.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from browser_fixtures import http_json

CLIENT = Path(__file__).resolve().parent / "peer_churn_client.py"
BATCH = 20
PEERS = 200
PEER_TIMEOUT_S = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample(proc: psutil.Process) -> dict[str, float]:
    """The daemon's resources, the least over a few looks (an HTTP request may hold a socket for a moment)."""
    looks = []
    for _ in range(3):
        looks.append((proc.memory_info().rss / 2**20, proc.num_fds(), proc.num_threads()))
        time.sleep(0.3)
    return {
        "rss_mb": round(min(x[0] for x in looks), 1),
        "fds": min(x[1] for x in looks),
        "threads": min(x[2] for x in looks),
    }


def batch(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(CLIENT), url, str(BATCH), "delete,bye,drop"], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [200] * BATCH, result
    assert min(result["frames"]) >= 1, result  # every viewer really got the stream
    return result


def wait_for_no_peers(url: str, deadline_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if not http_json("GET", url + "/api/status")[1]["peers"]:
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"peers still listed after {deadline_s} s: {http_json('GET', url + '/api/status')[1]}")


@pytest.mark.slow
def test_200_peers_joining_and_leaving_some_abruptly_leave_nothing_behind(
    tmp_path: Path, livefuse_env: dict[str, str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livefuse",
            "run",
            "--no-auth",
            "--source",
            "demo",
            "--size",
            "160x120",
            "--fps",
            "10",
            "--preset",
            "passthrough",
            "--output",
            "preview",
            "--port",
            str(port),
            "--max-peers",
            str(2 * BATCH),
            "--peer-timeout",
            str(PEER_TIMEOUT_S),
        ],
        cwd=tmp_path,
        env=livefuse_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http_json("GET", url + "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert daemon.poll() is None and time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.2)
        proc = psutil.Process(daemon.pid)
        cold = sample(proc)
        # warm-up: the first viewers load the encoders and fill the thread pools the later ones reuse
        batch(url)
        wait_for_no_peers(url, PEER_TIMEOUT_S + 20)
        time.sleep(1.5)  # memory is given back a second after peers leave
        base = sample(proc)
        frames_before = http_json("GET", url + "/api/status")[1]["stats"]["frames_out"]
        start = time.monotonic()
        results, trend, noticed, most_threads = [], [], [], base["threads"]
        for _ in range(PEERS // BATCH):  # each batch as the warm-up: BATCH peers at once, at most
            results.append(batch(url))
            most_threads = max(most_threads, proc.num_threads())
            noticed.append(round(wait_for_no_peers(url, PEER_TIMEOUT_S + 20), 1))  # the droppers too
            trend.append(round(proc.memory_info().rss / 2**20, 1))
        churn_s = time.monotonic() - start
        dropped = sum(r["leaves"].count("drop") for r in results)
        time.sleep(1.5)
        after = sample(proc)
        status = http_json("GET", url + "/api/status")[1]
        metrics = http_json("GET", url + "/api/status")[1]
        print(
            f"\n{PEERS} peers in {PEERS // BATCH} batches of {BATCH} in {churn_s:.0f} s, {dropped} dropped "
            f"without a goodbye (all of a batch gone {min(noticed)}-{max(noticed)} s after it ended); daemon "
            f"cold {cold}, after warm-up {base}, after the churn {after}; RSS after each batch {trend} MB"
        )
        assert not status["peers"] and not metrics["peers"]
        assert after["fds"] <= base["fds"], (base, after)
        # the only threads peers add are the encoders' in asyncio's default pool, which keeps its threads (at
        # most min(32, CPUs + 4)) for reuse: the warm-up may not have needed all of them yet
        pool = min(32, (os.cpu_count() or 1) + 4)
        assert after["threads"] <= min(most_threads, cold["threads"] + pool), (cold, base, after)
        assert after["rss_mb"] - base["rss_mb"] < 20, (base, after)
        assert status["stats"]["frames_out"] > frames_before + 5 * churn_s  # the stream went on throughout
    finally:
        daemon.terminate()
        daemon.wait(30)
