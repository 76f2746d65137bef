"""How stages get their models: a manifest name, a bundled MediaPipe file, or a file the preset names.

Going through the engine's registry means a pulled model is hash-checked and a missing one fails with
`livefuse models pull NAME`; the bundled MediaPipe models are also found by path so a stage keeps
working while the manifest does not list them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livefuse.errors import ModelError
from livefuse.stages.base import preset_file
from livefuse.vision.geometry import mediapipe_model


def _in_manifest(engine: Any, name: str) -> bool:
    try:
        return bool(engine.registry.versions(name))
    except ModelError:  # no manifest at all: only bundled files can be used
        return False


def load_model(engine: Any, name: str, override: str = "", preset_dir: Path | None = None,
               where: str = "model") -> Any:
    """A ModelSession for `override` (a file path) when given, else the manifest name or bundled file."""
    if override:
        path = preset_file(override, preset_dir)
        if not path.is_file():
            raise ModelError(f"{where} = {override!r}: no such file ({path}); give the path of an .onnx file, "
                             f"or leave it empty to use the {name!r} model")
        return engine.session(path)
    if _in_manifest(engine, name):
        return engine.session(name)
    bundled = mediapipe_model(name)
    if bundled.is_file():
        return engine.session(bundled)
    raise ModelError(f"model {name!r} is neither in models/manifest.toml nor bundled in models/mediapipe; "
                     f"`livefuse models list` shows the models, `livefuse models pull NAME` fetches one")


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
    raise ModelError(f"model {name!r} is neither in models/manifest.toml nor bundled in models/mediapipe; "
                     f"`livefuse models list` shows the models, `livefuse models pull NAME` fetches one")
