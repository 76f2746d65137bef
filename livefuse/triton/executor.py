"""`--executor triton://HOST:PORT`: stages' model calls go to Triton Inference Server over gRPC.

Stages keep their own pre- and post-processing; only the model call moves, so results match a local
run. Each model also has its local session, loaded at start, so when Triton is unreachable, slow
(past the timeout) or refuses a call, that call runs locally at once: the stream never waits on the
network for longer than the timeout, and a privacy stage still sees its faces. The outage is logged
once; a watcher thread probes Triton and moves calls back when it answers. The same thread re-reads
each model's release state from Triton every poll, so a release or rollback reaches a running daemon
within seconds, and each session (stream) is sent to the version its share bucket gets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from livefuse.errors import UserError
from livefuse.stats import Recorder
from livefuse.triton.address import ExecutorSpec, parse_executor
from livefuse.triton.release import PARAMETER, ReleaseState

log = logging.getLogger("livefuse.triton")

__all__ = [
    "ExecutorSpec",
    "ModelCalls",
    "RemoteCallFailed",
    "RemoteCallTimeout",
    "TritonExecutor",
    "open_executor",
    "parse_executor",
]  # the spec and its parser live in triton/address.py

POLL_S = 1.0
WARMUP_TIMEOUT_S = 10.0
# gRPC's default reconnect backoff grows to two minutes: a restarted server would wait that long for us.
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
SLOW_CALLS_FOR_OUTAGE = 3  # consecutive timeouts that count as an outage (a refused connection is one at once)
FLAP_WINDOW_S = 60.0  # more than FLAP_LOGS changes in this window: stop logging each one
FLAP_LOGS = 4


def open_executor(text: str, fps: float) -> TritonExecutor | None:
    """The executor `--executor` names (None for local), connected and watching."""
    spec = parse_executor(text, fps)
    return None if spec is None else TritonExecutor(spec)


class RemoteCallFailed(Exception):
    """Triton answered a call with an error."""


class RemoteCallTimeout(RemoteCallFailed):
    """Triton did not answer a call within the timeout."""


@dataclass
class ModelCalls:
    """Per-model figures for /api/status and /metrics."""

    remote: int = 0
    local_fallbacks: int = 0
    errors: int = 0
    latency: Recorder = field(default_factory=lambda: Recorder(window=5000))
    versions: dict[str, int] = field(default_factory=dict)  # session id -> version it last used


class TritonExecutor:
    """One Triton server for every model of a daemon, with local fallback and release following."""

    def __init__(self, spec: ExecutorSpec, poll_s: float = POLL_S) -> None:
        try:
            import tritonclient.grpc as grpcclient
        except (ImportError, RuntimeError) as exc:
            raise UserError("--executor triton:// needs tritonclient: pip install 'livefuse[triton]'") from exc
        self.spec = spec
        self._grpc = grpcclient
        self._client = grpcclient.InferenceServerClient(spec.address, channel_args=CHANNEL_ARGS)
        self._lock = threading.Lock()
        self._states: dict[str, ReleaseState] = {}
        self.calls: dict[str, ModelCalls] = {}
        self.up = False
        self.last_error = ""
        self._slow_calls = 0
        self._changes: list[float] = []  # when up/down changes were logged (flapping is logged once)
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._probe()  # so the first frames already go where they can
        self._watcher = threading.Thread(target=self._watch, name="livefuse-triton", daemon=True)
        self._watcher.start()

    # -- health and release state (the watcher thread) --------------------------------------------

    def _probe(self) -> None:
        try:
            live = bool(self._client.is_server_live(client_timeout=max(self.spec.timeout_s, 0.5)))
            if live:
                self._refresh_states()
        except Exception as exc:  # noqa: BLE001 - gRPC raises several types; any means "not there"
            self._set_down(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        if live and not self.up:
            if self.last_error:
                self._log_change(logging.INFO, "triton at %s answers again; model calls go there", self.spec.address)
            else:
                log.info("model calls go to triton at %s", self.spec.address)
            self._slow_calls = 0
            self.up = True

    def _refresh_states(self) -> None:
        for name in list(self.calls):
            try:
                config = self._client.get_model_config(name, client_timeout=max(self.spec.timeout_s, 0.5)).config
            except Exception:  # noqa: BLE001 - not served there (yet): calls for it stay local
                with self._lock:
                    self._states.pop(name, None)
                continue
            if PARAMETER in config.parameters:
                state = ReleaseState.from_json(config.parameters[PARAMETER].string_value)
                with self._lock:
                    previous = self._states.get(name)
                    self._states[name] = state
                if previous is not None and previous.to_json() != state.to_json():
                    log.info(
                        "triton model %s: now version %d for most sessions%s",
                        name,
                        state.current,
                        f", {state.candidate} for {state.share:g}%" if state.candidate else "",
                    )

    def _set_down(self, why: str) -> None:
        if self.up or not self.last_error:
            self._log_change(
                logging.WARNING,
                "triton at %s is not answering (%s); running models locally until it does",
                self.spec.address,
                why[:160],
            )
        self.up = False
        self.last_error = why

    def _log_change(self, level: int, message: str, *args: Any) -> None:
        """Log an outage or a recovery; a flapping server gets one line saying so, then debug lines."""
        now = time.monotonic()
        self._changes = [t for t in self._changes if now - t < FLAP_WINDOW_S]
        self._changes.append(now)
        if len(self._changes) <= FLAP_LOGS:
            log.log(level, message, *args)
        elif len(self._changes) == FLAP_LOGS + 1:
            log.warning(
                "triton at %s keeps failing and recovering; further changes are in /api/status", self.spec.address
            )
        else:
            log.debug(message, *args)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            self._probe()

    # -- calls (worker threads) --------------------------------------------------------------------

    def register(self, name: str, inputs: Mapping[str, tuple[list[Any], np.dtype]], output_names: list[str]) -> None:
        """A model that stages will call: fetch its release state, and warm every served version up.

        Triton's first call to a model is slow (the backend allocates, onnxruntime plans): made here,
        with a generous timeout, it does not cost a live frame its remote call.
        """
        with self._lock:
            known = name in self.calls
            self.calls.setdefault(name, ModelCalls())
        if known or not self.up:
            return
        self._refresh_states()
        with self._lock:
            state = self._states.get(name)
        feeds = {
            n: np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in shape], dtype)
            for n, (shape, dtype) in inputs.items()
        }
        for version in state.served() if state is not None else []:
            try:
                self.infer(name, version, feeds, output_names, timeout_s=WARMUP_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - a version that fails here fails (and falls back) live too
                log.debug("warming %s version %d up failed: %s", name, version, exc)

    def version_for(self, name: str, session_id: str) -> int | None:
        """The version `session_id` uses, or None while Triton does not serve `name`."""
        with self._lock:
            state = self._states.get(name)
        return None if state is None else state.version_for(session_id)

    def infer(
        self,
        name: str,
        version: int,
        feeds: Mapping[str, np.ndarray],
        output_names: list[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """One call to Triton, waited for at most the timeout (the wait releases the GIL)."""
        timeout = self.spec.timeout_s if timeout_s is None else timeout_s
        inputs = []
        for input_name, array in feeds.items():
            value = self._grpc.InferInput(input_name, list(array.shape), _triton_type(array.dtype))
            value.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(value)
        outputs = [self._grpc.InferRequestedOutput(n) for n in output_names]
        done = threading.Event()
        answer: list[Any] = [None, None]

        def on_done(result: Any, error: Any) -> None:
            answer[0], answer[1] = result, error
            done.set()

        self._client.async_infer(
            name, inputs, on_done, model_version=str(version), outputs=outputs, client_timeout=timeout
        )
        if not done.wait(timeout + 0.05):
            raise RemoteCallTimeout(f"no answer within {timeout * 1000:.0f} ms")
        if answer[1] is not None:
            raise RemoteCallFailed(str(answer[1]).splitlines()[0] if str(answer[1]) else "error")
        return {n: answer[0].as_numpy(n) for n in output_names}

    def answered(self) -> None:
        self._slow_calls = 0

    def failed(self, name: str, exc: Exception) -> None:
        """A call failed: count it. Calls go local until the watcher sees Triton answer again when the
        server refused or broke the call, or after a few calls in a row missed the timeout (one slow
        answer is not an outage).
        """
        self.calls[name].errors += 1
        if isinstance(exc, RemoteCallTimeout) or "DEADLINE_EXCEEDED" in str(exc):
            self._slow_calls += 1
            if self._slow_calls < SLOW_CALLS_FOR_OUTAGE:
                return
            exc = RemoteCallTimeout(
                f"{self._slow_calls} calls in a row took longer than {self.spec.timeout_s * 1000:.0f} ms"
            )
        self._set_down(f"{name}: {exc}")

    # -- figures -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "executor": self.spec.url,
            "up": self.up,
            "timeout_ms": round(self.spec.timeout_s * 1000, 1),
            "last_error": self.last_error,
            "models": {
                name: {
                    "remote_calls": c.remote,
                    "local_fallbacks": c.local_fallbacks,
                    "errors": c.errors,
                    "latency_ms": c.latency.summary(),
                    "versions": dict(c.versions),
                }
                for name, c in self.calls.items()
            },
        }

    def metric_rows(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """(metric, labels, value) rows for /metrics."""
        yield "livefuse_remote_up", {"executor": self.spec.url}, float(self.up)
        for name, c in self.calls.items():
            yield "livefuse_remote_calls_total", {"model": name}, float(c.remote)
            yield "livefuse_remote_errors_total", {"model": name}, float(c.errors)
            yield "livefuse_remote_local_fallbacks_total", {"model": name}, float(c.local_fallbacks)
            summary = c.latency.summary()
            for quantile in ("p50", "p99"):
                yield "livefuse_remote_call_ms", {"model": name, "quantile": quantile}, summary[quantile]
            for session_id, version in c.versions.items():
                yield "livefuse_model_version", {"model": name, "session": session_id}, float(version)

    def close(self) -> None:
        self._stop.set()
        self._watcher.join(timeout=2.0)
        try:
            self._client.close()
        except Exception:  # closing a dead channel must not fail shutdown
            log.debug("closing the triton client failed", exc_info=True)


_TRITON_TYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float64): "FP64",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.bool_): "BOOL",
}


def _triton_type(dtype: np.dtype) -> str:
    return _TRITON_TYPES[np.dtype(dtype)]
