"""Keeping an NVIDIA GPU's clocks up between frames (onnxruntime issue 16135).

A GPU left idle between runs lowers its clocks; the next run then takes several times longer (4 ms
becoming 20-100 ms with 200 ms gaps in that issue). Where that was answered (onnxruntime #7449 and
#10226, TensorRT #2042) the cause named is the driver's dynamic clock scaling, which onnxruntime does not
control; the remedies offered are locking the clocks (`nvidia-smi -lgc`, as root) or keeping work
flowing. livefuse does the second, which needs no privileges. A stream has such gaps whenever frames come
slower than the GPU finishes them. So on CUDA and TensorRT, when no session of the engine ran for
`idle_ms`, a thread runs a tiny graph (a 64x64 MatMul) on the same provider; a busy stream never
triggers it, and a stream that stopped (no run for `PAUSE_S`) is left to idle. On the CPU provider it
never starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livefuse.engine.session_open import SessionOpener

log = logging.getLogger("livefuse.engine")

SIZE = 64
PAUSE_S = 2.0  # no frame for this long: the stream paused, let the GPU rest


def warm_graph_runner(opener: SessionOpener, provider: str) -> Callable[[], None]:
    """A call that runs the tiny graph once on `provider`."""
    from livefuse.engine.graph_builder import FLOAT, GraphBuilder
    from livefuse.engine.source import ModelSource

    b = GraphBuilder("keep_warm")
    x = b.input("x", FLOAT, [SIZE, SIZE])
    b.op("MatMul", x, b.const(np.eye(SIZE, dtype=np.float32)), out="y")
    b.output("y", FLOAT, [SIZE, SIZE])
    source = ModelSource.from_proto(b.build("keeps the GPU clocks up between frames"))
    session = opener.open(source, provider)
    feed = {"x": np.ones((SIZE, SIZE), np.float32)}

    def run() -> None:
        if session is not None:
            session.run(None, feed)

    return run


class KeepWarm:
    """Runs a tiny graph when the engine's sessions were idle for `idle_ms` (0 turns it off).

    `make_runner` opens the tiny graph on first need and returns the call that runs it once.
    """

    def __init__(self, idle_ms: float, make_runner: Callable[[], Callable[[], None]]) -> None:
        self.idle_s = max(0.0, idle_ms) / 1000.0
        self._make_runner = make_runner
        self._runner: Callable[[], None] | None = None
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.warm_runs = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ran(self) -> None:
        """A session ran a frame: the GPU is busy, nothing to do until it is idle again."""
        self._last = time.monotonic()

    def start(self) -> None:
        """Start the thread (the engine does, once a session is on a GPU provider); idempotent."""
        if self.idle_s <= 0 or self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="livefuse-keep-warm", daemon=True)
        self._thread.start()

    def tick(self, now: float) -> bool:
        """Run the tiny graph if nothing ran for `idle_s` (but less than `PAUSE_S`) before `now`; whether it ran."""
        if not self.idle_s <= now - self._last < PAUSE_S:
            return False
        if self._runner is None:
            self._runner = self._make_runner()
        self._runner()
        self.warm_runs += 1
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.idle_s):
            try:
                self.tick(time.monotonic())
            except Exception as exc:  # noqa: BLE001 (a keep-warm failure must never reach the stream)
                log.debug("keep-warm stopped: %s", exc)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
