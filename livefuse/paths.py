"""Where livefuse finds what it ships and keeps what it makes: one rule for a wheel and for a checkout.

Shipped data (presets, bundled models, their manifest) is package data under `livefuse/_data/` in an
installed wheel, and the top-level `presets/` and `models/` folders in a checkout. The user's folders
follow the platform (platformdirs), each with an override variable:

| folder            | variable                 | default (Linux)                        |
|-------------------|--------------------------|----------------------------------------|
| user presets      | LIVEFUSE_CONFIG_DIR      | ~/.config/livefuse/presets             |
| extra presets     | LIVEFUSE_PRESETS         | (none; a path list, searched first)    |
| pulled models     | LIVEFUSE_MODELS_DIR      | ~/.local/share/livefuse/models         |
| engine caches     | LIVEFUSE_CACHE_DIR       | ~/.cache/livefuse/engine               |
| recordings        | LIVEFUSE_RECORDINGS_DIR  | ~/.local/share/livefuse/recordings     |
| data root         | LIVEFUSE_DATA_DIR        | ~/.local/share/livefuse                |
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "livefuse"
PACKAGE = Path(__file__).resolve().parent
PACKAGE_DATA = PACKAGE / "_data"  # filled by setup.py's build_py in a wheel; absent in a checkout


def shipped(name: str) -> Path:
    """A shipped folder (`presets` or `models`): the wheel's package data, else the checkout's folder."""
    packaged = PACKAGE_DATA / name
    return packaged if packaged.is_dir() else PACKAGE.parent / name


def shipped_presets_dir() -> Path:
    return shipped("presets")


def shipped_models_dir() -> Path:
    """The folder holding manifest.toml and the bundled models (mediapipe/*.onnx)."""
    return shipped("models")


def mediapipe_model(name: str) -> Path:
    """Path of a built-in converted MediaPipe model, e.g. `mediapipe_model("face_landmark")`."""
    return shipped_models_dir() / "mediapipe" / f"{name}.onnx"


def names_a_file(text: str, suffix: str) -> bool:
    """Whether an argument that is a name or a path (a preset, a model) names a file: it ends in `suffix`
    (".toml", ".onnx") or has a folder in it. The one rule for every such argument."""
    return text.endswith(suffix) or "/" in text or os.sep in text


def preset_file(text: str, preset_dir: Path | str | None) -> Path:
    """A file a preset names: `~` expanded, and relative to the preset's folder when not absolute."""
    path = Path(text).expanduser()
    return Path(preset_dir) / path if not path.is_absolute() and preset_dir is not None else path


def _env_dir(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    return _env_dir("LIVEFUSE_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    return _env_dir("LIVEFUSE_DATA_DIR") or Path(platformdirs.user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    return _env_dir("LIVEFUSE_CACHE_DIR") or Path(platformdirs.user_cache_dir(APP, appauthor=False))


def user_presets_dir() -> Path:
    return config_dir() / "presets"


def extra_preset_dirs() -> list[Path]:
    """$LIVEFUSE_PRESETS: folders searched before the user's and the shipped presets."""
    return [Path(p).expanduser() for p in os.environ.get("LIVEFUSE_PRESETS", "").split(os.pathsep) if p]


def models_dir() -> Path:
    """Pulled models: $LIVEFUSE_MODELS_DIR, else the data folder's models/.

    Models pulled before livefuse moved them out of the cache (~/.cache/livefuse/models) are still used
    where the new folder does not exist yet, so nobody downloads them twice.
    """
    env = _env_dir("LIVEFUSE_MODELS_DIR")
    if env is not None:
        return env
    current = data_dir() / "models"
    legacy = Path.home() / ".cache" / APP / "models"
    return legacy if not current.exists() and legacy.is_dir() else current


def engine_cache_dir() -> Path:
    """Optimised models and TensorRT engines: <cache>/engine."""
    return cache_dir() / "engine"


def recordings_dir() -> Path:
    return _env_dir("LIVEFUSE_RECORDINGS_DIR") or data_dir() / "recordings"


def folders() -> dict[str, Path]:
    """Every folder livefuse reads or writes, by role (for `livefuse doctor`)."""
    return {
        "shipped presets": shipped_presets_dir(),
        "user presets": user_presets_dir(),
        "shipped models": shipped_models_dir(),
        "pulled models": models_dir(),
        "engine cache": engine_cache_dir(),
        "recordings": recordings_dir(),
    }
