"""The daemon's event loop runs at real-time priority where the OS allows it, and only the loop does.

A real `livefuse run` (demo source, preview output): its main thread, the asyncio loop's, is SCHED_RR
and every other thread it has started is a normal one; `--loop-priority normal` leaves the loop normal;
/api/status says which. Where real-time scheduling is not permitted, the loop stays normal and says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import http_json

from livefuse import loop_priority

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from pytriton_server import free_port  # noqa: E402 - tools/, as test_triton takes it

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real-time scheduling is Linux's")


def policies(pid: int) -> dict[int, int]:
    """Each thread's scheduling policy (without the reset-on-fork flag), by thread id."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = os.sched_getscheduler(int(task.name)) & ~os.SCHED_RESET_ON_FORK
        except OSError:  # the thread ended meanwhile
            pass
    return found


def status_of_running_daemon(env: dict[str, str], *extra: str) -> tuple[dict[str, Any], dict[int, int], int]:
    port = free_port()
    daemon = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "livefuse"),
            "run",
            "--source",
            "demo",
            "--preset",
            "background-blur",
            "--output",
            "preview",
            "--size",
            "320x240",
            "--duration",
            "20",
            "--port",
            str(port),
            "--no-auth",
            *extra,
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                code, status = http_json("GET", f"http://127.0.0.1:{port}/api/status")
                if code == 200 and status["stats"]["frames_out"] > 10:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and daemon.poll() is None, "the daemon did not start"
            time.sleep(0.3)
        return status, policies(daemon.pid), daemon.pid
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)


def test_only_the_daemon_loop_runs_at_real_time_priority(livefuse_env: dict[str, str]) -> None:
    status, threads, pid = status_of_running_daemon(livefuse_env)
    if status["loop_priority"] != loop_priority.REALTIME:
        pytest.skip(f"this machine does not permit real-time scheduling: {status['loop_priority']}")
    assert threads[pid] == os.SCHED_RR  # the main thread: asyncio.run's loop
    others = {tid: policy for tid, policy in threads.items() if tid != pid}
    assert len(others) >= 4 and set(others.values()) == {os.SCHED_OTHER}, others  # capture, filter, codecs...


def test_the_loop_can_be_left_at_normal_priority(livefuse_env: dict[str, str]) -> None:
    status, threads, _ = status_of_running_daemon(livefuse_env, "--loop-priority", "normal")
    assert status["loop_priority"] == loop_priority.NORMAL
    assert set(threads.values()) == {os.SCHED_OTHER}


def test_without_the_right_the_loop_stays_normal_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(*_: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refused)  # the OS's answer without CAP_SYS_NICE / RLIMIT_RTPRIO
    with caplog.at_level("INFO", logger="livefuse"):
        got = loop_priority.raise_loop_priority()
    assert got.startswith(loop_priority.NORMAL) and "not permitted" in got
    assert "ulimit -r" in caplog.text and "Operation not permitted" in caplog.text
