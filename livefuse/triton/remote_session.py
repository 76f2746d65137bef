"""A model session whose calls go to Triton, with the engine's local session as the fallback."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from livefuse.triton.executor import TritonExecutor

if TYPE_CHECKING:
    from livefuse.engine.session import ModelSession


class RemoteSession:
    """A model session whose calls go to Triton, with the local session as the fallback.

    It is a `Session` as the local `ModelSession` is (names, shapes, the source, `run`), so a stage
    cannot tell where its model runs.
    """

    def __init__(self, executor: TritonExecutor, name: str, local: ModelSession, session_id: str) -> None:
        self.executor = executor
        self.name = name
        self.local = local
        self.session_id = session_id
        self.source = local.source
        self.input_names = local.input_names
        self.output_names = local.output_names
        self.inputs = local.inputs
        self.outputs = local.outputs
        executor.register(name, local.inputs, local.output_names)

    @property
    def provider(self) -> str:
        return self.local.provider

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        executor = self.executor
        calls = executor.calls[self.name]
        version = executor.version_for(self.name, self.session_id) if executor.up else None
        if version is not None:
            start = time.perf_counter_ns()
            try:
                result = executor.infer(self.name, version, feeds, self.output_names)
            except Exception as exc:  # noqa: BLE001 - any failure: this frame runs locally
                executor.failed(self.name, exc)
            else:
                executor.answered()
                calls.latency.add(time.perf_counter_ns() - start)
                calls.remote += 1
                calls.versions[self.session_id] = version
                return result
        calls.local_fallbacks += 1
        calls.versions[self.session_id] = 0  # 0: the local copy
        return dict(self.local.run(feeds))

    def __repr__(self) -> str:
        return f"RemoteSession({self.name} on {self.executor.spec.url}, session {self.session_id})"
