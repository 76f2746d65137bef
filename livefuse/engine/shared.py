"""One onnxruntime session per model, whatever the number of streams that use it.

Every stream (a WHIP session, the daemon's own pipeline) builds its own chain, and each chain's
stages ask the engine for their models. Loading a model again per stream would multiply its weights,
its optimised graph and its thread pool (and its VRAM on a GPU) by the number of streams. The pool
hands out the `InferenceSession` already loaded for the same model on the same providers instead.

An `InferenceSession` may be run from several threads at once, so sharing it is safe; what must not
be shared is the I/O binding (its buffers are overwritten two runs later), and each `ModelSession`
keeps its own. The pool holds sessions weakly: once the last chain using a model is closed and freed,
so is the model.

With batching on (`enable_batching`), each shared session also gets a `Batcher` (engine/batcher.py):
the calls of all streams to one model run as batches. Models with a fixed batch of 1 are loaded with
a free batch axis then (see `Engine.shared_session`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from livefuse.engine.batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY_MS, Batcher

PoolKey = tuple[str, tuple[str, ...]]


class SessionPool:
    """Loaded sessions by (model content key, provider order); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading: dict[PoolKey, threading.Lock] = {}
        self._sessions: weakref.WeakValueDictionary[PoolKey, Any] = weakref.WeakValueDictionary()
        self._providers: dict[PoolKey, str] = {}
        self.loads: dict[str, int] = {}  # label -> sessions created for it (1 while it stays loaded)
        self.batching: tuple[int, float] | None = None  # (max_batch, max_delay_ms) once enabled
        self._batchers: weakref.WeakKeyDictionary[Any, Batcher] = weakref.WeakKeyDictionary()

    def enable_batching(self, max_batch: int = DEFAULT_MAX_BATCH, max_delay_ms: float = DEFAULT_MAX_DELAY_MS) -> None:
        """Batch the calls of all streams to each model loaded from now on."""
        Batcher(lambda feeds: feeds, max_batch=max_batch, max_delay_ms=max_delay_ms)  # checks the settings
        self.batching = (max_batch, max_delay_ms)

    def batcher(self, session: Any, label: str) -> Batcher | None:
        """The batcher of a shared session whose first input axis is free, when batching is on; else None."""
        if self.batching is None:
            return None
        with self._lock:
            batcher = self._batchers.get(session)
            if batcher is None:
                first = session.get_inputs()[0].shape
                if not first or isinstance(first[0], int):
                    return None
                names = [o.name for o in session.get_outputs()]

                def run(feeds: dict[str, Any]) -> dict[str, Any]:
                    return dict(zip(names, session.run(None, feeds), strict=True))

                max_batch, max_delay_ms = self.batching
                batcher = self._batchers[session] = Batcher(run, max_batch=max_batch, max_delay_ms=max_delay_ms,
                                                            name=label)
            return batcher

    def batchers(self) -> list[Batcher]:
        with self._lock:
            return list(self._batchers.values())

    def get(self, key: PoolKey, label: str, create: Callable[[], tuple[Any, str]]) -> tuple[Any, str]:
        """The session and its provider for `key`, created with `create()` the first time.

        Two streams starting together load a model once: the second waits for the first's load.
        """
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                session = self._sessions.get(key)
                if session is not None:
                    return session, self._providers[key]
            session, provider = create()
            with self._lock:
                self._sessions[key] = session
                self._providers[key] = provider
                self.loads[label] = self.loads.get(label, 0) + 1
            return session, provider

    def live(self) -> int:
        """Sessions loaded now (those some chain still uses)."""
        with self._lock:
            return len(self._sessions)
