"""The inference engine: picks an execution provider and creates model sessions on it.

The pieces: `ProviderChoice` (the order and what failed), `SessionOpener` (one onnxruntime session on
one provider, with the optimised-model cache), `ModelSession` (running, with run-time fallback) and,
on NVIDIA GPUs, `KeepWarm` (clocks kept up between frames). The engine wires them for its sessions.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, overload

import onnx

from livefuse.engine import providers as prov
from livefuse.engine.iobinding import Copies
from livefuse.engine.keep_warm import KeepWarm, warm_graph_runner
from livefuse.engine.provider_choice import ProviderChoice
from livefuse.engine.provider_help import explain
from livefuse.engine.provider_options import uses_cuda_graph
from livefuse.engine.reasons import first_line, short
from livefuse.engine.session import ModelSession, Session
from livefuse.engine.session_open import Opened, SessionOpener
from livefuse.engine.shared import SessionPool, batchable
from livefuse.engine.source import ModelSource
from livefuse.errors import ModelError
from livefuse.paths import engine_cache_dir, names_a_file

if TYPE_CHECKING:
    from livefuse.engine.registry import Registry
    from livefuse.triton.executor import TritonExecutor

log = logging.getLogger("livefuse.engine")

PROBE_LABEL = "built graph 'provider_probe'"


def default_cache_dir() -> Path:
    """Where optimised models and TensorRT engines are kept: <$LIVEFUSE_CACHE_DIR or the user's cache>/engine."""
    return engine_cache_dir()


class Engine:
    """Creates `ModelSession`s on the best provider that works, falling back with one warning.

    `provider` is "auto" or a short name (cpu, cuda, tensorrt, rocm, migraphx, directml, coreml,
    openvino). `iobinding=False` runs plain `session.run` (kept so the benchmark can compare).
    With an `executor` (Triton), manifest models run there, each with its local session as fallback;
    `session_id` picks the model versions a grey release gives this session (see `for_session`).
    `keep_warm_ms` (GPU providers only): after this long without a run, a tiny graph keeps the clocks up.
    """

    def __init__(
        self,
        provider: str = "auto",
        iobinding: bool = True,
        cache_dir: Path | str | None = None,
        registry: Registry | None = None,
        executor: TritonExecutor | None = None,
        session_id: str = "main",
        keep_warm_ms: float = 20.0,
    ) -> None:
        self.executor = executor
        self.session_id = session_id
        self.model_names: list[str] = []  # manifest models sessions were made for, in order
        self.iobinding = iobinding
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._registry = registry
        self.choice = ProviderChoice(provider)  # raises UserError for an unknown/unlisted provider
        self.requested = self.choice.requested
        self.opener = SessionOpener(self.cache_dir, self.choice)
        self.keep_warm = KeepWarm(keep_warm_ms, lambda: warm_graph_runner(self.opener, self.choice.current))
        self._copies = Copies()
        self.pool = SessionPool()  # shared by every `for_session` view: one loaded session per model

    @property
    def provider(self) -> str:
        """The provider sessions really got (the first candidate until one was made)."""
        return self.choice.current

    @property
    def registry(self) -> Registry:
        """The model registry used to resolve model names (created on first use)."""
        if self._registry is None:
            from livefuse.engine.registry import Registry

            self._registry = Registry()
        return self._registry

    def copies(self) -> dict[str, int]:
        """Cumulative host-to-device and device-to-host copies made by this engine's sessions."""
        return {"h2d": self._copies.h2d, "d2h": self._copies.d2h}

    def for_session(self, session_id: str) -> Engine:
        """This engine for another session (a camera peer): same providers, registry and executor.

        Only the session id differs, so a grey release can give that session another model version.
        """
        view = copy.copy(self)
        view.session_id = session_id
        return view

    @overload
    def session(self, model: onnx.ModelProto | Path) -> ModelSession: ...

    @overload
    def session(self, model: str) -> Session: ...

    def session(self, model: str | Path | onnx.ModelProto) -> Session:
        """A session for a manifest name (`name` or `name@version`), a file path or a built graph.

        With an executor, a manifest model's calls go there (built graphs and files stay local, so a built
        graph's or a Path's session is always a `ModelSession`, with its device calls).
        """
        if isinstance(model, onnx.ModelProto):
            return ModelSession(self, ModelSource.from_proto(model))
        if isinstance(model, Path) or names_a_file(model, ".onnx"):
            return ModelSession(self, ModelSource.from_path(Path(model)))
        name = model.split("@", 1)[0]
        local = ModelSession(self, self.registry.source(model))
        self.model_names.append(name)
        if self.executor is None:
            return local
        from livefuse.triton.remote_session import RemoteSession

        return RemoteSession(self.executor, name, local, self.session_id)

    def close(self) -> None:
        """Stop the keep-warm thread and the executor's connection and watcher."""
        self.keep_warm.stop()
        if self.executor is not None:
            self.executor.close()

    def resolve_provider(self) -> str:
        """Settle the provider now with a one-node probe graph, so the first status line is already true.

        Without it a preset with no model (passthrough) would report the provider asked for, not the one
        that works; with it a missing CUDA falls back at start-up, with its one log line.
        """
        from livefuse.engine.graphs import identity_probe

        probe = ModelSource.from_proto(identity_probe())
        probe.fixed_shapes = False  # it only asks whether the provider works: no CUDA graph for it
        self.create(probe, self.choice.candidates())
        return self.provider

    def shared(self, source: ModelSource) -> Opened:
        """The opened session for `source` that every stream shares (see engine/shared.py).

        Not for a session that would capture a CUDA graph: the graph is bound to one binding's buffers.
        """
        order = self.choice.candidates()
        if uses_cuda_graph(order[0], source.fixed_shapes):
            return self.create(source, order)
        batched = self.pool.batching is not None
        key = (f"{source.key or source.label}{'-batch' if batched else ''}", tuple(order))
        return self.pool.get(key, source.label, lambda: self.create(batchable(source) if batched else source, order))

    # -- provider selection ----------------------------------------------------------------------

    def create(self, source: ModelSource, order: list[str], quiet: bool = False) -> Opened:
        """A session on the first provider of `order` that really works; one log line if any failed."""
        reasons: list[str] = []
        last_exc: Exception | None = None
        for provider in order:
            try:
                opened = self.open_on(source, provider, uses_cuda_graph(provider, source.fixed_shapes))
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 (onnxruntime raises several types for provider failures)
                last_exc = exc
                if provider == prov.CPU:
                    break
                why = explain(provider, short(first_line(exc, 200), 160))
                reasons.append(why)
                self.choice.fail(provider, why)
                continue
            if opened is None:  # onnxruntime silently fell back to CPU inside the session
                why = explain(provider, short(self.choice.fell_back_reason(provider), 160))
                reasons.append(why)
                self.choice.fail(provider, why)
                continue
            if reasons and not quiet:
                log.warning(
                    "provider fallback%s: %s; using %s",
                    "" if source.label == PROBE_LABEL else f" for {source.label}",
                    "; ".join(reasons),
                    prov.short_name(provider),
                )
            self.choice.succeeded(provider)
            if provider in prov.GPU:
                self.keep_warm.start()
            return opened
        raise ModelError(
            f"{source.label} does not load in onnxruntime ({last_exc}); run "
            f"`livefuse models verify`, and re-download or re-export the model"
        )

    def open_on(self, source: ModelSource, provider: str, cuda_graph: bool) -> Opened | None:
        """A session on exactly `provider` (None: onnxruntime put it on the CPU).

        A session that cannot have its CUDA graph (a node outside the CUDA provider, say) is opened
        again without one, on the same provider.
        """
        if cuda_graph:
            try:
                session = self.opener.open(source, provider, cuda_graph=True)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 (onnxruntime refuses the graph with several types)
                log.info("no CUDA graph for %s (%s); running it without one", source.label, first_line(exc, 160))
            else:
                return None if session is None else Opened(session, provider, cuda_graph=True)
        session = self.opener.open(source, provider)
        return None if session is None else Opened(session, provider, cuda_graph=False)
