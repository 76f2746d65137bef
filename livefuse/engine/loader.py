"""How stages get their models: one loader and one path rule, whichever stage asks.

Stages reach it through their context (`StageContext.model`, `StageContext.file`). A model parameter is
either a file or a name:
- a file (`*.onnx`, or anything with a `/`: `paths.names_a_file`) follows the rule of every file a preset
  names (`paths.preset_file`): `~` expanded, relative to the preset's folder;
- a name is a manifest model (`name` or `name@version`), hash-checked through the engine's registry,
  or else a MediaPipe model bundled in models/mediapipe, so a stage keeps working while the manifest
  does not list it.

A model that is not there is a ModelError naming the stage field, the file or model, and the fix: the
pull command, and that the licence is non-commercial where it is. `all_models` reports every missing
model of a stage at once, so one round of pulls fixes a preset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from livefuse.errors import ModelError
from livefuse.paths import mediapipe_model, names_a_file, preset_file

if TYPE_CHECKING:
    from livefuse.engine.core import Engine
    from livefuse.engine.session import Session

T = TypeVar("T")

# Licences of the face models as published (the manifest's `non_commercial` flag wins when present).
NON_COMMERCIAL = frozenset(
    {
        "inswapper_128",
        "inswapper_128_fp16",
        "arcface_w600k_r50",
        "w600k_r50",
        "codeformer",
        "gpen_bfr_256",
        "gpen_bfr_512",
    }
)


def is_model_file(spec: str) -> bool:
    """Whether a model parameter is a file path rather than a model name."""
    return names_a_file(spec, ".onnx")


def _in_manifest(engine: Engine, name: str) -> bool:
    try:
        return bool(engine.registry.versions(name))
    except ModelError:  # no manifest at all: only bundled files can be used
        return False


def _non_commercial(engine: Engine, name: str) -> bool:
    try:
        return bool(engine.registry.entry(name).non_commercial)
    except Exception:  # noqa: BLE001 - no manifest or no entry: fall back to the known licences
        return name in NON_COMMERCIAL


def _not_found(name: str) -> ModelError:
    return ModelError(
        f"model {name!r} is neither in models/manifest.toml nor bundled in models/mediapipe; "
        f"`livefuse models list` shows the models, `livefuse models pull NAME` fetches one"
    )


def open_model(
    engine: Engine, spec: str, *, where: str = "model", preset_dir: Path | str | None = None, default: str = ""
) -> Session:
    """The one loader: a session for `spec` (a file or a name; `default` when empty), or a ModelError.

    `where` names the parameter for messages ("face stage: model", "stage 'swap': arcface_model").
    """
    given = spec or default
    label = f"{where} = {given!r}" if spec else f"{where} (default {given!r})"
    if is_model_file(given):
        path = preset_file(given, preset_dir)
        if not path.is_file():
            alternative = (
                f"or leave it empty to use the {default!r} model"
                if default
                else "or a model name from `livefuse models list`"
            )
            raise ModelError(f"{label}: no such file ({path}); give the path of an .onnx file, {alternative}")
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
        licence = (
            " Note: its licence is non-commercial (research and personal use only)."
            if _non_commercial(engine, name)
            else ""
        )
        raise ModelError(
            f"{label} needs model {name!r}: {why}{pull} (or give the path of an .onnx file).{licence}"
        ) from exc


def all_models(loads: Mapping[str, Callable[[], T]]) -> dict[str, T]:
    """Each load's result by key; when some fail, one ModelError lists every missing model."""
    loaded: dict[str, T] = {}
    problems: list[str] = []
    for key, load in loads.items():
        try:
            loaded[key] = load()
        except ModelError as exc:
            problems.append(str(exc))
    if problems:
        raise ModelError(
            problems[0] if len(problems) == 1 else f"{len(problems)} models are missing:\n  " + "\n  ".join(problems)
        )
    return loaded


def model_file(engine: Engine, name: str) -> Path:
    """The .onnx file `open_model` would load for `name` (hash-checked via the registry when listed there).

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
