"""Presets: TOML files naming an ordered chain of stages with their parameters.

```toml
name = "background-blur"
description = "Blur everything but the person."

[[stages]]
type = "background"
mode = "blur"
strength = 0.6
```
Every mistake is reported with the file, the key and what is allowed.
"""

from __future__ import annotations

import logging
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from livefuse.audio.denoise import AUDIO_FILTERS
from livefuse.errors import PresetError
from livefuse.paths import extra_preset_dirs, names_a_file, shipped_presets_dir, user_presets_dir
from livefuse.stage import MAX_LIST_LENGTH, MAX_STRING_LENGTH, Param, StageSpec
from livefuse.stages.registry import stage_types

log = logging.getLogger("livefuse.presets")

PRESETS_DIR = shipped_presets_dir()
DEFAULT_PRESET = "background-blur"


@dataclass
class StageConfig:
    """One validated stage entry of a preset."""

    type: str
    label: str  # unique within the preset: the type, or type#2 for a repeat
    params: dict[str, Any]
    spec: StageSpec


@dataclass
class Preset:
    name: str
    description: str
    path: Path
    stages: list[StageConfig] = field(default_factory=list)
    audio_filter: str | None = None  # one of AUDIO_FILTERS; None: the preset leaves the sound's filter as it is


def preset_dirs() -> list[Path]:
    """Where preset names are looked up: $LIVEFUSE_PRESETS, the user's folder, then the shipped ones."""
    return [*extra_preset_dirs(), user_presets_dir(), PRESETS_DIR]


def default_preset() -> str:
    """The preset `livefuse run` and `livefuse serve` run when given none: DEFAULT_PRESET where it is installed."""
    return DEFAULT_PRESET if DEFAULT_PRESET in available_presets() else "passthrough"


def available_presets() -> dict[str, Path]:
    """Preset name -> file, earlier folders shadowing later ones."""
    found: dict[str, Path] = {}
    for folder in reversed(preset_dirs()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.toml"))})
    return dict(sorted(found.items()))


def resolve_preset(name_or_path: str) -> Path:
    """A preset name or a path to a .toml file -> the file."""
    path = Path(name_or_path)
    if names_a_file(name_or_path, ".toml"):
        if not path.is_file():
            raise PresetError(f"preset file not found: {path}")
        return path
    presets = available_presets()
    if name_or_path not in presets:
        raise PresetError(
            f"unknown preset {name_or_path!r}. Available: {', '.join(presets) or 'none'} "
            "(or give a path to a .toml file; `livefuse presets list` shows them)"
        )
    return presets[name_or_path]


def _finite(value: Any) -> bool:
    """A number that is neither NaN nor infinite (and fits a float: JSON and TOML allow huge integers)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _plain_item(value: Any, max_length: int, depth: int = 0) -> bool:
    """A list element presets may hold: a finite number, a short string, a boolean, or one level of those."""
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return _finite(value)
    if isinstance(value, str):
        return len(value) <= max_length
    if isinstance(value, list) and depth == 0:
        return len(value) <= MAX_LIST_LENGTH and all(_plain_item(v, max_length, 1) for v in value)
    return False


def _numbers_within(value: list[Any], param: Param) -> bool:
    """`param.length` numbers (no booleans), each within the parameter's min and max."""
    return len(value) == param.length and all(
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and _finite(v)
        and (param.min is None or v >= param.min)
        and (param.max is None or v <= param.max)
        for v in value
    )


def shown(value: Any) -> str:
    """A value as messages quote it: a long string or list cut short, so the message stays one line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def _check_value(param: Param, value: Any, where: str) -> Any:
    """The value converted to the parameter's type, or a PresetError saying what is allowed."""
    expected = param.describe()
    refused = PresetError(f"{where}: {param.name} = {shown(value)} is not allowed; expected {expected}")
    if param.type is bool:
        if not isinstance(value, bool):
            raise refused
        return value
    if param.type in (int, float):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or not _finite(value):  # NaN and infinities compare false with every bound
            raise refused
        if param.type is int and isinstance(value, float) and not value.is_integer():
            raise refused
        if (param.min is not None and value < param.min) or (param.max is not None and value > param.max):
            raise PresetError(f"{where}: {param.name} = {shown(value)} is out of range; expected {expected}")
        value = param.type(value)
    elif param.type is list:
        if (
            not isinstance(value, list)
            or len(value) > MAX_LIST_LENGTH
            or not all(_plain_item(v, param.max_length) for v in value)
        ):
            raise refused
        if param.items is not None and (
            any(v not in param.items for v in value) or len(set(map(str, value))) < len(value)
        ):
            raise refused
        if param.length is not None and not _numbers_within(value, param):
            raise refused
    elif param.type is str:
        if not isinstance(value, str) or len(value) > param.max_length or "\x00" in value:
            raise refused
    elif not isinstance(value, param.type):
        raise refused
    if param.choices is not None and value not in param.choices:
        raise refused
    return value


def check_api_file(param: Param, value: str, root: Path, where: str) -> str:
    """A file parameter given over the control API: only a file inside the preset's folder `root`.

    The API is the untrusted entry, so the check is made on the text alone (no absolute path, no `~`,
    no `..`) and then on where it resolves (a link inside the folder may not lead out of it): a path
    outside is refused with the same message whether or not it exists, so nothing outside can be
    reached or probed. A preset file on disk is the user's own and may name any file (`preset_file`).
    """
    if not value:
        return value  # "" means no file
    refused = PresetError(
        f"{where}: {param.name} = {shown(value)} is not allowed over the API; name a file "
        f"inside the preset's folder, relative to it (no absolute path, '~' or '..')"
    )
    text = PurePosixPath(value.replace("\\", "/"))
    if text.is_absolute() or value.startswith("~") or ".." in text.parts or PureWindowsPath(value).drive:
        raise refused
    base = root.resolve()
    if not (base / text).resolve().is_relative_to(base):
        raise refused
    return value


def validate_params(
    spec: StageSpec,
    given: dict[str, Any],
    where: str,
    *,
    partial: bool = False,
    live_only: bool = False,
    files_under: Path | None = None,
) -> dict[str, Any]:
    """Check a stage's parameters; returns them with defaults filled in (unless `partial`).

    `files_under` is set for untrusted input (the control API): file parameters must then name a file
    inside that folder (`check_api_file`).
    """
    known = {p.name: p for p in spec.params}
    upgraded = spec.upgrade(given) if spec.upgrade is not None else None
    if upgraded is not None:
        given, said = upgraded
        log.warning("%s: %s (update the preset to say so)", where, said)
    for key in given:
        if key not in known:
            allowed = ", ".join(known) or "no parameters"
            raise PresetError(f"{where}: unknown key {shown(key)} for stage {spec.type!r}; allowed: {allowed}")
        if live_only and not known[key].live:
            raise PresetError(f"{where}: {key!r} cannot change while streaming; switch presets instead")
    result = {} if partial else {p.name: p.default for p in spec.params}
    for key, value in given.items():
        checked = _check_value(known[key], value, where)
        if files_under is not None and known[key].kind == "file":
            checked = check_api_file(known[key], checked, files_under, where)
        result[key] = checked
    return result


def parse_preset(text: str, path: Path) -> Preset:
    """Validate a preset's TOML text (path is used in messages and to name it)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: malformed TOML: {exc}") from exc
    for key in data:
        if key not in ("name", "description", "stages", "audio_filter"):
            raise PresetError(
                f"{path}: unknown top-level key {shown(key)}; allowed: name, description, stages, audio_filter"
            )
    stages = data.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        raise PresetError(f"{path}: 'stages' must be an array of tables ([[stages]] entries)")
    types = stage_types()
    for key in ("name", "description"):
        if key in data and (not isinstance(data[key], str) or len(data[key]) > MAX_STRING_LENGTH):
            raise PresetError(
                f"{path}: {key} = {shown(data[key])} is not allowed; expected a string of at most "
                f"{MAX_STRING_LENGTH} characters"
            )
    audio_filter = data.get("audio_filter")
    if audio_filter is not None and audio_filter not in AUDIO_FILTERS:
        raise PresetError(
            f"{path}: audio_filter = {shown(audio_filter)} is not allowed; expected one of "
            f"{', '.join(repr(f) for f in AUDIO_FILTERS)} "
            "(denoise: RNNoise on the sound; deepfilternet: DeepFilterNet 3)"
        )
    preset = Preset(str(data.get("name", path.stem)), str(data.get("description", "")), path, audio_filter=audio_filter)
    counts: dict[str, int] = {}
    for index, entry in enumerate(stages, start=1):
        where = f"{path}: stages[{index}]"
        entry = dict(entry)
        kind = entry.pop("type", None)
        if kind is None:
            raise PresetError(f"{where}: missing key 'type'; one of: {', '.join(sorted(types))}")
        if not isinstance(kind, str) or kind not in types:
            raise PresetError(f"{where}: unknown stage type {shown(kind)}; one of: {', '.join(sorted(types))}")
        where = f"{where} ({kind})"
        counts[kind] = counts.get(kind, 0) + 1
        label = kind if counts[kind] == 1 else f"{kind}#{counts[kind]}"
        params = validate_params(types[kind], entry, where)
        preset.stages.append(StageConfig(kind, label, params, types[kind]))
    return preset


def load_preset(name_or_path: str) -> Preset:
    """Find, read and validate a preset by name or path."""
    path = resolve_preset(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"cannot read preset {path}: {exc}") from exc
    return parse_preset(text, path)
