"""One onnxruntime session per model, whatever the number of streams that use it.

Every stream (a WHIP session, the daemon's own pipeline) builds its own chain, and each chain's
stages ask the engine for their models. Loading a model again per stream would multiply its weights,
its optimised graph and its thread pool (and its VRAM on a GPU) by the number of streams. The pool
hands out the `InferenceSession` already loaded for the same model on the same providers instead.

An `InferenceSession` may be run from several threads at once, so sharing it is safe; what must not
be shared is the I/O binding (its buffers are overwritten two runs later), and each `ModelSession`
keeps its own. The pool holds sessions weakly: once the last chain using a model is closed and freed,
so is the model.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

PoolKey = tuple[str, tuple[str, ...]]


class SessionPool:
    """Loaded sessions by (model content key, provider order); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading: dict[PoolKey, threading.Lock] = {}
        self._sessions: weakref.WeakValueDictionary[PoolKey, Any] = weakref.WeakValueDictionary()
        self._providers: dict[PoolKey, str] = {}
        self.loads: dict[str, int] = {}  # label -> sessions created for it (1 while it stays loaded)

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
