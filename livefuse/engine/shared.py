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

import hashlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from livefuse.engine.batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY_MS, Batcher
from livefuse.engine.session_open import Opened
from livefuse.engine.source import ModelSource

log = logging.getLogger("livefuse.engine")

PoolKey = tuple[str, tuple[str, ...]]
BATCH_TOLERANCE = 1e-4  # batched and single results may differ this much (float summation order)


class SessionPool:
    """Loaded sessions by (model content key, provider order); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loading: dict[PoolKey, threading.Lock] = {}
        self._sessions: dict[PoolKey, tuple[weakref.ref[Any], str, bool]] = {}  # session (weakly), provider, graph
        self.loads: dict[str, int] = {}  # label -> sessions created for it (1 while it stays loaded)
        self.batching: tuple[int, float] | None = None  # (max_batch, max_delay_ms) once enabled
        self._batchers: weakref.WeakKeyDictionary[Any, Batcher] = weakref.WeakKeyDictionary()

    def get(self, key: PoolKey, label: str, create: Callable[[], Opened]) -> Opened:
        """The opened session for `key`, created with `create()` the first time (or once the last user let go).

        Two streams starting together load a model once: the second waits for the first's load.
        """
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                entry = self._sessions.get(key)
                session = entry[0]() if entry is not None else None
                if entry is not None and session is not None:
                    return Opened(session, entry[1], entry[2])
            opened = create()
            with self._lock:
                self._sessions[key] = (weakref.ref(opened.session), opened.provider, opened.cuda_graph)
                self.loads[label] = self.loads.get(label, 0) + 1
            return opened

    def live(self) -> int:
        """Sessions loaded now (those some chain still uses)."""
        with self._lock:
            return sum(1 for ref, _, _ in self._sessions.values() if ref() is not None)

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
                batcher = self._batchers[session] = Batcher(
                    run, max_batch=max_batch, max_delay_ms=max_delay_ms, name=label
                )
            return batcher

    def batchers(self) -> list[Batcher]:
        with self._lock:
            return list(self._batchers.values())


def batchable(source: ModelSource) -> ModelSource:
    """The model with a free batch axis when it has a fixed batch of 1 and the rewrite answers per item as
    before; else the model as it is (it then runs one frame at a time)."""
    import onnx

    from livefuse.engine.batch_axis import batch_error, fixed_batch, with_dynamic_batch

    try:
        if source.path is not None:
            model = onnx.load(str(source.path))
        elif source.data is not None:
            model = onnx.load_from_string(source.data)
        else:
            return source
        if fixed_batch(model) != 1:
            return source
        dynamic = with_dynamic_batch(model)
        if batch_error(dynamic) > BATCH_TOLERANCE:
            log.info("%s does not batch exactly; it runs one frame at a time", source.label)
            return source
    except Exception as exc:  # noqa: BLE001 - a model the rewrite cannot handle still runs unbatched
        log.info("%s cannot be given a batch axis (%s); it runs one frame at a time", source.label, exc)
        return source
    data = dynamic.SerializeToString()
    # a key of its own: the optimised-model cache is named by the key's start, so no suffix would do
    return ModelSource(label=source.label, data=data, key=hashlib.sha256(data).hexdigest())
