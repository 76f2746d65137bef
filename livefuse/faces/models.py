"""Loading the face models a stage names: a manifest name (pulled on the user's machine) or a file path.

A missing model is a ModelError that names the model, the stage field, the pull command and, where it
applies, that the model's licence is non-commercial, so a preset fails before streaming with the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from livefuse.errors import ModelError

# Licences of the face models as published (the manifest's `non_commercial` flag wins when present).
NON_COMMERCIAL = frozenset({"inswapper_128", "inswapper_128_fp16", "arcface_w600k_r50", "w600k_r50", "codeformer",
                            "gpen_bfr_256", "gpen_bfr_512"})


def is_path(spec: str) -> bool:
    """Whether a model parameter is a file path rather than a manifest name."""
    return spec.endswith(".onnx") or os.sep in spec or "/" in spec


def resolve_path(spec: str, base: Any = None) -> Path:
    """A model or image path, relative to the preset's folder when one is given."""
    path = Path(spec).expanduser()
    if not path.is_absolute() and base is not None and (Path(base) / path).exists():
        path = Path(base) / path
    return path


def _non_commercial(engine: Any, name: str) -> bool:
    try:
        return bool(engine.registry.entry(name).non_commercial)
    except Exception:  # noqa: BLE001 - no manifest or no entry: fall back to the known licences
        return name.split("@", 1)[0] in NON_COMMERCIAL


def load_session(engine: Any, spec: str, *, stage: str, field: str, base: Any = None) -> Any:
    """An engine session for `spec` (manifest name or .onnx path), or a ModelError saying how to get it."""
    if is_path(spec):
        path = resolve_path(spec, base)
        if not path.is_file():
            raise ModelError(f"stage {stage!r}: {field} = {spec!r}: file {path} does not exist; give the path of an "
                             f".onnx file, or a model name from `livefuse models list`")
        return engine.session(path)
    name = spec.split("@", 1)[0]
    try:
        return engine.session(spec)
    except ModelError as exc:
        why = str(exc).rstrip(".")
        pull = "" if "models pull" in why else f"; get it with `livefuse models pull {name}`"
        licence = (" Note: its licence is non-commercial (research and personal use only)."
                   if _non_commercial(engine, name) else "")
        raise ModelError(f"stage {stage!r} needs model {name!r} ({field} = {spec!r}): {why}{pull} (or set {field} "
                         f"to the path of an .onnx file).{licence}") from exc


def load_sessions(engine: Any, specs: dict[str, str], *, stage: str, base: Any = None) -> dict[str, Any]:
    """Sessions for several model fields; when some are missing, one ModelError lists every one of them."""
    sessions: dict[str, Any] = {}
    problems: list[str] = []
    for field, spec in specs.items():
        try:
            sessions[field] = load_session(engine, spec, stage=stage, field=field, base=base)
        except ModelError as exc:
            problems.append(str(exc))
    if problems:
        raise ModelError(problems[0] if len(problems) == 1 else
                         f"{len(problems)} models are missing:\n  " + "\n  ".join(problems))
    return sessions


def last_initializer(session: Any) -> np.ndarray:
    """The last initializer of a session's ONNX graph as float32 (inswapper keeps its `emap` there)."""
    source = session.source
    if source.path is not None:
        model = onnx.load(str(source.path), load_external_data=False)
    elif source.data is not None:
        model = onnx.load_from_string(source.data)
    else:  # pragma: no cover - every ModelSource has one or the other
        raise ModelError(f"{source.label}: cannot read its graph")
    if not model.graph.initializer:
        raise ModelError(f"{source.label} has no initializers; it is not an inswapper model (expected a 512x512 "
                         f"emap matrix as the last initializer)")
    return numpy_helper.to_array(model.graph.initializer[-1]).astype(np.float32)
