"""Shared fixtures: the `livefuse` CLI as a subprocess, and an in-memory output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from livefuse.frame import Frame
from livefuse.sinks.base import Sink

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(home: Path) -> dict[str, str]:
    """The environment for a `livefuse` subprocess: a private home, so user presets and caches stay out."""
    env = dict(os.environ)
    env.update(HOME=str(home), LIVEFUSE_CACHE_DIR=str(home / "cache"), PYTHONUNBUFFERED="1")
    env.pop("LIVEFUSE_PRESETS", None)
    return env


@pytest.fixture
def livefuse_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `livefuse` subprocess run in tmp_path."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return cli_env(home)


@pytest.fixture
def cli(tmp_path: Path, livefuse_env: dict[str, str]) -> CliRunner:
    """Runs `python -m livefuse ARGS...` in tmp_path; returns the completed process (text output)."""

    def run(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "livefuse", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**livefuse_env, **(env or {})},
        )

    return run


class MemorySink(Sink):
    """An output that keeps a copy of every frame it is given: an in-memory recording."""

    def __init__(
        self, name: str = "memory", *, delay: float = 0.0, repeat_when_idle: bool = False, keep_images: bool = True
    ) -> None:
        self.name = name
        self.repeat_when_idle = repeat_when_idle
        self.delay = delay
        self.keep_images = keep_images
        self.seqs: list[int] = []
        self.images: list[np.ndarray] = []
        self.write_times: list[float] = []
        self.closed = False
        self._lock = threading.Lock()

    def write(self, frame: Frame) -> None:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.seqs.append(frame.seq)
            if self.keep_images:
                self.images.append(frame.image.copy())
            self.write_times.append(time.monotonic())

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def memory_sink() -> type[MemorySink]:
    return MemorySink


def imread(path: Path) -> np.ndarray:
    """A picture from disk, BGR uint8; the test fails here when it cannot be read."""
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


def stop_with_sigint(proc: subprocess.Popen[Any], what: str, wait_s: float = 20.0) -> None:
    """Stop a daemon as Ctrl+C does; the test fails, naming `what`, when it is still running `wait_s` later."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        pytest.fail(f"{what} did not stop on SIGINT")
