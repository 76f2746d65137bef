"""How stages get their models: one loader and one path rule, whichever stage asks; the face models' names.

A model parameter is either a file or a name:
- a file (`*.onnx`, or anything with a `/`) follows the rule of every file a preset names
  (`livefuse.stage.preset_file`): `~` expanded, relative to the preset's folder;
- a name is a manifest model (`name` or `name@version`), hash-checked through the engine's registry,
  or else a MediaPipe model bundled in models/mediapipe, so a stage keeps working while the manifest
  does not list it.

A model that is not there is a ModelError naming the stage field, the file or model, and the fix: the
pull command, and that the licence is non-commercial where it is. `load_sessions` reports every
missing model of a stage at once, so one round of pulls fixes a preset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from livefuse.errors import ModelError
from livefuse.stage import preset_file
from livefuse.vision.geometry import mediapipe_model

# The face models by name: the face stage loads them, and faces/ finds the largest face of a still with them.
DETECTOR_MODELS = {
    "blazeface": "face_detection_short",
    "blazeface_full": "face_detection_full",
    "yunet": "yunet",
    "retinaface": "retinaface_mobilenet0.25",
}
WIDE_MODEL = "face_detection_full_wide"  # full range with a 192x128 input: the whole-frame pass on wide frames
LANDMARK_MODEL = "face_landmark"
SCAN_MODEL = "yunet"  # the privacy scan's detector: another family than BlazeFace (bundled, MIT)

# Licences of the face models as published (the manifest's `non_commercial` flag wins when present).
NON_COMMERCIAL = frozenset({"inswapper_128", "inswapper_128_fp16", "arcface_w600k_r50", "w600k_r50", "codeformer",
                            "gpen_bfr_256", "gpen_bfr_512"})


def is_path(spec: str) -> bool:
    """Whether a model parameter is a file path rather than a model name."""
    return spec.endswith(".onnx") or os.sep in spec or "/" in spec


def model_path(spec: str, preset_dir: Path | str | None) -> Path:
    """The file a model (or image) parameter names: the one path rule for what a preset names."""
    return preset_file(spec, preset_dir)


def _in_manifest(engine: Any, name: str) -> bool:
    try:
        return bool(engine.registry.versions(name))
    except ModelError:  # no manifest at all: only bundled files can be used
        return False


def _non_commercial(engine: Any, name: str) -> bool:
    try:
        return bool(engine.registry.entry(name).non_commercial)
    except Exception:  # noqa: BLE001 - no manifest or no entry: fall back to the known licences
        return name in NON_COMMERCIAL


def _not_found(name: str) -> ModelError:
    return ModelError(f"model {name!r} is neither in models/manifest.toml nor bundled in models/mediapipe; "
                      f"`livefuse models list` shows the models, `livefuse models pull NAME` fetches one")


def open_model(engine: Any, spec: str, *, where: str, preset_dir: Path | str | None = None,
               default: str = "") -> Any:
    """The one loader: a session for `spec` (a file or a name; `default` when empty), or a ModelError.

    `where` names the parameter for messages ("face stage: model", "stage 'swap': arcface_model").
    """
    given = spec or default
    label = f"{where} = {given!r}" if spec else f"{where} (default {given!r})"
    if is_path(given):
        path = model_path(given, preset_dir)
        if not path.is_file():
            alternative = (f"or leave it empty to use the {default!r} model" if default else
                           "or a model name from `livefuse models list`")
            raise ModelError(f"{label}: no such file ({path}); give the path of an .onnx file, "
                             f"{alternative}")
        return engine.session(path)
    name = given.split("@", 1)[0]
    if not _in_manifest(engine, name):
        bundled = mediapipe_model(name)
        if bundled.is_file():
            return engine.session(bundled)
        raise _not_found(name)
    try:
        return engine.session(given)
    except ModelError as exc:
        why = str(exc).rstrip(".")
        pull = "" if "models pull" in why else f"; get it with `livefuse models pull {name}`"
        licence = (" Note: its licence is non-commercial (research and personal use only)."
                   if _non_commercial(engine, name) else "")
        raise ModelError(f"{label} needs model {name!r}: {why}{pull} (or give the path of an .onnx "
                         f"file).{licence}") from exc


def load_model(engine: Any, name: str, override: str = "", preset_dir: Path | None = None,
               where: str = "model") -> Any:
    """A session for `override` (a file or name) when given, else for the model `name`."""
    return open_model(engine, override, where=where, preset_dir=preset_dir, default=name)


def load_session(engine: Any, spec: str, *, stage: str, field: str, base: Any = None) -> Any:
    """A session for a stage's model field `field` = `spec`."""
    return open_model(engine, spec, where=f"stage {stage!r}: {field}", preset_dir=base)


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


def model_file(engine: Any, name: str) -> Path:
    """The .onnx file `load_model` would load for `name` (hash-checked via the registry when listed there).

    For stages that fuse a model into a graph of their own instead of running it as a session.
    """
    if _in_manifest(engine, name):
        path = engine.registry.source(name).path
        if path is not None:
            return Path(path)
    bundled = mediapipe_model(name)
    if bundled.is_file():
        return bundled
    raise _not_found(name)
