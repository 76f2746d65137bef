"""`livefuse doctor`'s checks: what this machine offers livefuse, what is wrong, and the fix for each.

A check is `fail` only where the default `livefuse run` (default source, preset and outputs on port 8080)
would not work; what merely makes it slower or smaller (a GPU provider that does not load, no virtual
camera) is `warn`. Every check is bounded: device queries have timeouts, and nothing is left open.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import platform
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livefuse import __version__, paths
from livefuse.errors import UserError

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"


@dataclass
class Check:
    area: str
    status: str  # ok, warn, fail, info
    message: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def distribution(name: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(name)
    return None


def versions() -> dict[str, str | None]:
    """livefuse's and its engine's, media and WebRTC libraries' versions (None: not installed)."""
    found: dict[str, str | None] = {"livefuse": __version__, "python": platform.python_version()}
    for name in ("onnxruntime-gpu", "onnxruntime", "av", "aiortc", "numpy", "opencv-python"):
        found[name] = distribution(name)
    return found


def listed_providers() -> list[str]:
    from livefuse.engine import providers as prov

    return prov.available()


def check_onnxruntime() -> Check:
    gpu, cpu = distribution("onnxruntime-gpu"), distribution("onnxruntime")
    if gpu and cpu:
        return Check(
            "onnxruntime",
            WARN,
            f"both onnxruntime {cpu} and onnxruntime-gpu {gpu} are installed: one shadows the other",
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install "
            "--force-reinstall livefuse (or livefuse[cuda])",
        )
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return Check(
            "onnxruntime", FAIL, f"onnxruntime does not import ({exc})", "pip install --force-reinstall livefuse"
        )
    from livefuse.engine.provider_help import build_cuda_major

    major = build_cuda_major()
    build = f", built for CUDA {major}" if major else ""
    return Check("onnxruntime", OK, f"{'onnxruntime-gpu' if gpu else 'onnxruntime'} {ort.__version__}{build}")


def check_providers(cache_dir: Any = None) -> list[Check]:
    """Each provider onnxruntime lists, opened on a one-node graph: it loads, or why not and the fix."""
    from livefuse.engine import Engine
    from livefuse.engine import providers as prov
    from livefuse.engine.provider_help import label

    checks = []
    listed = listed_providers()
    for provider in [p for p in prov.AUTO_ORDER if p in listed]:
        engine = Engine(provider=prov.short_name(provider), cache_dir=cache_dir)
        try:
            got = engine.resolve_provider()
        except UserError as exc:
            got, why = "", str(exc)
        else:
            why = engine.choice.failures().get(provider, "")
        finally:
            engine.close()
        if got == provider:
            checks.append(Check("provider", OK, f"{label(provider)} loads", data={"provider": provider}))
        else:
            status = FAIL if provider == prov.CPU else WARN
            message, _, fix = (why or f"{label(provider)}: does not load").partition("; ")
            checks.append(Check("provider", status, message, fix, {"provider": provider}))
    gpu_build_here = (sys.platform.startswith("linux") and platform.machine() == "x86_64") or (
        sys.platform == "win32" and platform.machine() == "AMD64"
    )
    if gpu_build_here and "CUDAExecutionProvider" not in listed:
        checks.append(
            Check(
                "provider",
                WARN,
                "CUDA: this onnxruntime build has none (a CPU-only onnxruntime)",
                "pip uninstall -y onnxruntime && pip install --force-reinstall 'livefuse[cuda]'",
            )
        )
    return checks


def check_gpus() -> Check:
    from livefuse.engine.gpus import nvidia_gpus

    gpus = nvidia_gpus()
    if not gpus:
        return Check("gpu", INFO, "no NVIDIA GPU found (nvidia-smi lists none, or is not installed)", data={"gpus": []})
    text = "; ".join(f"{g.index}: {g.name}, {g.memory_mib / 1024:.0f} GiB, driver {g.driver}" for g in gpus)
    return Check("gpu", OK, text, data={"gpus": [g.__dict__ for g in gpus]})


def check_cameras(default_source: str) -> Check:
    from livefuse.devices import cameras

    found = cameras()
    data = {"cameras": [c.__dict__ for c in found], "default_source": default_source}
    if not found:
        if default_source == "webcam":
            return Check(
                "camera",
                FAIL,
                "the default source is the webcam (a /dev/video node exists), but no camera lists a video format",
                "connect a camera, or run with --source demo",
                data,
            )
        return Check("camera", INFO, "none found: `livefuse run` uses the demo source", data=data)
    shown = "; ".join(
        f"{c.spec} {c.name} ({len(c.modes)} modes, e.g. {', '.join(c.modes[:3]) or '?'})" for c in found[:4]
    )
    return Check("camera", OK, shown, data=data)


def check_virtualcam() -> Check:
    from livefuse.errors import OutputError
    from livefuse.sinks.virtualcam import VirtualCamSink, virtualcam_fix

    try:
        sink = VirtualCamSink((64, 64), 30.0)
    except OutputError as exc:
        why = str(exc.__cause__ or exc).split(". ")[0][:160]
        return Check(
            "virtualcam", WARN, f"none usable ({why}); `livefuse run` shows the preview only", virtualcam_fix()
        )
    device = sink.device
    sink.close()
    return Check("virtualcam", OK, f"{device} is usable", data={"device": device})


def check_audio() -> Check:
    from livefuse.devices import audio_devices

    found = audio_devices()
    data = {"audio": [d.__dict__ for d in found]}
    if not found:
        return Check(
            "audio", INFO, "no capture device found: sound comes only from a source that has its own", data=data
        )
    return Check("audio", OK, "; ".join(f"{d.spec} ({d.name})" for d in found[:4]), data=data)


def check_port(host: str, port: int) -> Check:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return Check(
                "port",
                FAIL,
                f"{host}:{port} is not free ({exc.strerror or exc})",
                "stop what uses it, or run with --port N (and `livefuse doctor --port N`)",
            )
    return Check("port", OK, f"{host}:{port} is free")


def check_default_run(preset_name: str | None) -> list[Check]:
    """The default preset built on the `auto` engine, its models loaded: what `livefuse run` does first."""
    from livefuse.engine import Engine
    from livefuse.presets import default_preset, load_preset
    from livefuse.wiring import assemble

    name = preset_name or default_preset()
    try:
        preset = load_preset(name)
        engine = Engine(provider="auto")
        try:
            engine.resolve_provider()
            assemble(preset, engine, (1280, 720), 30.0).chain.close()
        finally:
            engine.close()
    except UserError as exc:
        return [
            Check(
                "preset",
                FAIL,
                f"{name} does not build: {exc}",
                "see `livefuse presets show NAME` and `livefuse models verify`",
            )
        ]
    return [
        Check(
            "preset",
            OK,
            f"{name} builds on {engine.provider.removesuffix('ExecutionProvider')}, its models loaded",
            data={"preset": name, "provider": engine.provider},
        )
    ]


def check_models() -> Check:
    from livefuse.engine.registry import Registry

    try:
        registry = Registry()
        problems = registry.verify(load=False)
    except UserError as exc:
        return Check("models", FAIL, str(exc), "reinstall livefuse (the manifest ships with it)")
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.status] = counts.get(p.status, 0) + 1
    errors = [p for p in problems if p.is_error and not (p.status == "missing" and p.entry.url)]
    ordered = sorted(counts.items(), key=lambda item: item[0] != "ok")
    summary = ", ".join(f"{n} {status.replace('-', ' ')}" for status, n in ordered)
    data = {"models": {p.entry.ref: p.status for p in problems}, "pulled_to": str(registry.models_dir)}
    if errors:
        return Check(
            "models",
            WARN,
            f"{summary}; {errors[0].message}",
            "`livefuse models verify` lists them; `livefuse models pull NAME` fetches one again",
            data,
        )
    return Check(
        "models",
        OK,
        f"{summary} (pulled ones in {registry.models_dir})",
        "" if "not-pulled" not in counts else "`livefuse models pull NAME` fetches one",
        data,
    )


def check_folders() -> Check:
    return Check(
        "folders",
        INFO,
        "\n".join(f"{role}: {path}" for role, path in paths.folders().items()),
        data={role: str(path) for role, path in paths.folders().items()},
    )


def run_checks(host: str = "127.0.0.1", port: int = 8080, preset: str | None = None) -> list[Check]:
    """Every check, in the order they are shown. Engine warnings are folded into the checks, not logged."""
    from livefuse.sources import default_source

    engine_log = logging.getLogger("livefuse.engine")
    level = engine_log.level
    engine_log.setLevel(logging.ERROR)
    try:
        steps: list[Callable[[], Check | list[Check]]] = [
            check_onnxruntime,
            check_providers,
            check_gpus,
            lambda: check_cameras(default_source()),
            check_virtualcam,
            check_audio,
            lambda: check_port(host, port),
            lambda: check_default_run(preset),
            check_models,
            check_folders,
        ]
        checks: list[Check] = []
        for step in steps:
            result = step()
            checks += result if isinstance(result, list) else [result]
        return checks
    finally:
        engine_log.setLevel(level)
