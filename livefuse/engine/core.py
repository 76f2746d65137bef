"""The inference engine: picks an execution provider and creates model sessions on it."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import onnxruntime as ort

from livefuse.engine import providers as prov
from livefuse.engine.iobinding import Copies
from livefuse.engine.session import (
    ModelSession,
    ModelSource,
    cache_name,
    first_line,
    session_options,
    tmp_name,
)
from livefuse.engine.shared import SessionPool
from livefuse.errors import ModelError

if TYPE_CHECKING:
    from livefuse.engine.registry import Registry
    from livefuse.triton.executor import RemoteSession, TritonExecutor

log = logging.getLogger("livefuse.engine")


def default_cache_dir() -> Path:
    """Where optimised models and TensorRT engines are kept: $LIVEFUSE_CACHE_DIR or ~/.cache/livefuse."""
    base = os.environ.get("LIVEFUSE_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "livefuse") / "engine"


PROBE_LABEL = "built graph 'provider_probe'"
BATCH_TOLERANCE = 1e-4  # batched and single results may differ this much (float summation order)


def batchable(source: ModelSource) -> ModelSource:
    """The model with a free batch axis when it has a fixed batch of 1 and the rewrite answers per item as
    before; else the model as it is (it then runs unbatched)."""
    from livefuse.engine.batch_axis import batch_error, fixed_batch, with_dynamic_batch

    try:
        model = onnx.load(str(source.path)) if source.path is not None else onnx.load_from_string(source.data)
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
    return ModelSource(label=source.label, data=data, key=f"{source.key}-batch")


def _short(reason: str, limit: int = 90) -> str:
    """A reason's first sentence, cut to fit one log line."""
    first = reason.split(". ")[0].split(", make sure")[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


class Engine:
    """Creates `ModelSession`s on the best provider that works, falling back with one warning.

    `provider` is "auto" or a short name (cpu, cuda, tensorrt, rocm, migraphx, directml, coreml,
    openvino). `iobinding=False` runs plain `session.run` (kept so the benchmark can compare).
    With an `executor` (Triton), manifest models run there, each with its local session as fallback;
    `session_id` picks the model versions a grey release gives this session (see `for_session`).
    """

    def __init__(
        self,
        provider: str = "auto",
        iobinding: bool = True,
        cache_dir: Path | str | None = None,
        registry: Registry | None = None,
        executor: TritonExecutor | None = None,
        session_id: str = "main",
    ) -> None:
        self.requested = provider
        self.executor = executor
        self.session_id = session_id
        self.model_names: list[str] = []  # manifest models sessions were made for, in order
        self.iobinding = iobinding
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._registry = registry
        self._failed: dict[str, str] = {}  # provider -> why it failed (skipped from then on, silently)
        self._ep_errors: dict[str, str] = {}  # what onnxruntime printed when a provider failed
        self._copies = Copies()
        self.pool = SessionPool()  # shared by every `for_session` view: one loaded session per model
        self._lock = threading.Lock()
        self._order = prov.candidates(provider)  # raises UserError for an unknown/unlisted provider
        self.provider: str = self._order[0]  # updated to what sessions really got

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

    def session(self, model: str | Path | onnx.ModelProto) -> ModelSession | RemoteSession:
        """A session for a manifest name (`name` or `name@version`), a file path or a built graph.

        With an executor, a manifest model's calls go there (built graphs and files stay local).
        """
        if isinstance(model, onnx.ModelProto):
            return ModelSession(self, ModelSource.from_proto(model))
        if isinstance(model, Path) or (isinstance(model, str) and (model.endswith(".onnx") or os.sep in model)):
            return ModelSession(self, ModelSource.from_path(Path(model)))
        name = model.split("@", 1)[0]
        local = ModelSession(self, self.registry.source(model))
        self.model_names.append(name)
        if self.executor is None:
            return local
        from livefuse.triton.executor import RemoteSession

        return RemoteSession(self.executor, name, local, self.session_id)

    def close(self) -> None:
        """Stop the executor's connection and watcher (local sessions need nothing)."""
        if self.executor is not None:
            self.executor.close()

    def resolve_provider(self) -> str:
        """Settle the provider now with a one-node probe graph, so the first status line is already true.

        Without it a preset with no model (passthrough) would report the provider asked for, not the one
        that works; with it a missing CUDA falls back at start-up, with its one log line.
        """
        from livefuse.engine.graphs import identity_probe

        probe = identity_probe()
        self._create(ModelSource.from_proto(probe), self._candidates())
        return self.provider

    def shared_session(self, source: ModelSource) -> tuple[ort.InferenceSession, str]:
        """The loaded session for `source` that every stream shares, and its provider (see engine/shared.py)."""
        order = self._candidates()
        batched = self.pool.batching is not None
        key = (f"{source.key or source.label}{'-batch' if batched else ''}", tuple(order))
        return self.pool.get(key, source.label,  # type: ignore[no-any-return]
                             lambda: self._create(batchable(source) if batched else source, order))

    # -- provider selection ----------------------------------------------------------------------

    def _candidates(self) -> list[str]:
        return [p for p in self._order if p not in self._failed or p == prov.CPU]

    def _create(
        self, source: ModelSource, order: list[str], quiet: bool = False
    ) -> tuple[ort.InferenceSession, str]:
        """A session on the first provider of `order` that really works; one log line if any failed."""
        reasons: list[str] = []
        last_exc: Exception | None = None
        for provider in order:
            try:
                session = self._try(source, provider)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 (onnxruntime raises several types for provider failures)
                last_exc = exc
                why = first_line(exc, 200)
                if provider == prov.CPU:
                    break
                reasons.append(f"{prov.short_name(provider)}: {why}")
                self._failed[provider] = why
                continue
            if session is None:  # onnxruntime silently fell back to CPU inside the session
                why = self._ep_errors.pop(provider, "") or prov.load_failure(provider)
                reasons.append(f"{prov.short_name(provider)}: {why}")
                self._failed[provider] = why
                continue
            if reasons and not quiet:
                log.warning(
                    "provider fallback%s: %s; using %s",
                    "" if source.label == PROBE_LABEL else f" for {source.label}",
                    "; ".join(_short(reason) for reason in reasons),
                    prov.short_name(provider),
                )
            self.provider = provider
            return session, provider
        raise ModelError(
            f"{source.label} does not load in onnxruntime ({last_exc}); run "
            f"`livefuse models verify`, and re-download or re-export the model"
        )

    def _try(self, source: ModelSource, provider: str) -> ort.InferenceSession | None:
        """A session on exactly `provider`, or None when onnxruntime put it on CPU instead."""
        path, data, key = source.variant_for(provider)
        providers: list[str | tuple[str, dict[str, str]]] = [prov.CPU]
        if provider != prov.CPU:
            providers = [(provider, prov.options(provider, self.cache_dir)), prov.CPU]
        cached: Path | None = None
        if provider not in prov.COMPILING and key:
            cached = self.cache_dir / "optimized" / cache_name(key, provider)
        model: str | bytes = str(path) if path is not None else data  # type: ignore[assignment]
        if cached is not None and cached.is_file():
            try:
                session = self._open(str(cached), providers, session_options(None, from_cache=True), provider)
                if session is not None:
                    return session
            except Exception:  # noqa: BLE001 (a stale or broken cache file of any kind: rebuild it below)
                with contextlib.suppress(OSError):
                    cached.unlink()
        tmp: Path | None = None
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = tmp_name(cached)
            except OSError:
                tmp = None
        try:
            session = self._open(model, providers, session_options(tmp, from_cache=False), provider)
        except Exception as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            if provider == prov.CPU:
                raise ModelError(
                    f"{source.label} does not load in onnxruntime: "
                    f"{first_line(exc, 300)}; run `livefuse models verify`, "
                    f"and re-download or re-export the model"
                ) from exc
            raise
        if tmp is not None and cached is not None:
            with contextlib.suppress(OSError):
                if session is not None and tmp.is_file():
                    os.replace(tmp, cached)
                else:
                    tmp.unlink()
        return session

    def _open(
        self,
        model: str | bytes,
        providers: list[str | tuple[str, dict[str, str]]],
        options: ort.SessionOptions,
        provider: str,
    ) -> ort.InferenceSession | None:
        printed = io.StringIO()
        with self._lock:
            if provider != prov.CPU:
                ort.set_default_logger_severity(4)  # we log the reason once ourselves
            try:
                # onnxruntime prints its own fallback notice on stdout; keep it for our one log line.
                with contextlib.redirect_stdout(printed):
                    session = ort.InferenceSession(model, options, providers=providers)
            finally:
                if provider != prov.CPU:
                    ort.set_default_logger_severity(3)
        # Run-time failures are ours to handle (one log line, next provider), not onnxruntime's silent retry.
        session.disable_fallback()
        if session.get_providers()[0] != provider:
            match = re.search(r"^EP Error:? ([^*].*?)(?: when using \[|$)", printed.getvalue(), re.M)
            if match:
                self._ep_errors[provider] = match.group(1).split(" void ")[-1].split(") ", 1)[-1].strip()
            return None
        return session
