"""models/manifest.toml: what livefuse knows about each model, parsed and checked field by field.

Each `[[model]]` becomes a `ModelEntry`; a bad entry is a ModelError naming the entry and the field.
Nothing here touches the files themselves (see `registry.py`) or the network (`pull.py`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livefuse.engine.download import SIDECAR_KINDS
from livefuse.engine.shapes import all_fixed
from livefuse.errors import ModelError

FP16_TOLERANCE = 0.01  # of the FP32 output's largest magnitude, unless an entry sets trt_fp16_tolerance


def semver(version: str) -> tuple[int, ...]:
    """'1.10.2' -> (1, 10, 2), for ordering versions (pre-release suffixes are ignored)."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("-")[0].split("+")[0])[:3])


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str


@dataclass(frozen=True)
class Preprocess:
    color: str = "RGB"
    layout: str = "NCHW"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ModelEntry:
    """One [[model]] of the manifest."""

    name: str
    version: str
    file: str
    sha256: str
    size: int
    license: str
    url: str
    origin: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    non_commercial: bool = False
    template: str | None = None
    optional: bool = False  # url-less model the user adds (export/--from); missing is not an error
    preprocess: Preprocess | None = None
    mirrors: tuple[str, ...] = ()  # more urls serving the same bytes, tried in order after `url`
    sidecar: str = ""  # "crc32": the publisher's <name>.hash next to each url vouches for the file
    trt_fp16: bool = False  # TensorRT may build it in FP16: its FP16 accuracy check passes (engine/precision.py)
    trt_fp16_tolerance: float = FP16_TOLERANCE
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors) if self.url else ()

    @property
    def vouched(self) -> bool:
        """Whether a download can be checked: a known SHA-256 or a publisher's checksum file."""
        return bool(self.sha256 or self.sidecar)

    @property
    def bundled(self) -> bool:
        return not self.url

    @property
    def fixed_shapes(self) -> bool:
        """Whether every input and output has a fixed shape (the condition for a CUDA graph)."""
        return all_fixed(t.shape for t in (*self.inputs, *self.outputs))


def _tensors(raw: Any, where: str) -> tuple[TensorSpec, ...]:
    try:
        return tuple(TensorSpec(str(t["name"]), tuple(t["shape"]), str(t["dtype"])) for t in raw)
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{where}: each tensor needs name, shape and dtype ({exc})") from exc


def load_manifest(path: Path) -> list[ModelEntry]:
    """Parse and check the manifest; a bad entry is a ModelError naming the entry and field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"model manifest {path} does not exist; restore models/manifest.toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model manifest {path} is not valid TOML: {exc}") from exc
    entries: list[ModelEntry] = []
    required = ("name", "version", "file", "sha256", "size", "license", "url", "origin", "inputs", "outputs")
    for i, raw in enumerate(data.get("model", [])):
        where = f"{path}: [[model]] #{i + 1} ({raw.get('name', '?')})"
        missing = [k for k in required if k not in raw]
        if missing:
            raise ModelError(f"{where} lacks {', '.join(missing)}; add them (see models/README.md)")
        sha = str(raw["sha256"]).lower()
        if sha and not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ModelError(f"{where}: sha256 {raw['sha256']!r} is not 64 hex digits")
        if not semver(str(raw["version"])):
            raise ModelError(f"{where}: version {raw['version']!r} is not a semantic version like 1.2.3")
        url = str(raw["url"])
        mirrors = raw.get("mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
            raise ModelError(f"{where}: mirrors must be a list of URL strings")
        if mirrors and not url:
            raise ModelError(f"{where}: mirrors need a url first (a bundled model has neither)")
        for u in (url, *mirrors):
            if u and not (u.startswith("https://") or re.match(r"http://(127\.0\.0\.1|localhost|\[::1\])[:/]", u)):
                raise ModelError(
                    f"{where}: url {u!r} must be a pinned https:// URL (plain http only on loopback "
                    f"mirrors), or empty when bundled"
                )
        sidecar = str(raw.get("sidecar", ""))
        if sidecar and sidecar not in SIDECAR_KINDS:
            raise ModelError(f"{where}: sidecar {sidecar!r} is not one of {', '.join(SIDECAR_KINDS)}")
        pre = raw.get("preprocess")
        trt_fp16 = raw.get("trt_fp16", False)
        tolerance = raw.get("trt_fp16_tolerance", FP16_TOLERANCE)
        if not isinstance(trt_fp16, bool):
            raise ModelError(f"{where}: trt_fp16 must be true or false")
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 < tolerance < 1:
            raise ModelError(
                f"{where}: trt_fp16_tolerance must be a number between 0 and 1 (a share of the "
                f"output's largest magnitude)"
            )
        known = {
            *required,
            "non_commercial",
            "template",
            "optional",
            "preprocess",
            "mirrors",
            "sidecar",
            "trt_fp16",
            "trt_fp16_tolerance",
        }
        entries.append(
            ModelEntry(
                name=str(raw["name"]),
                version=str(raw["version"]),
                file=str(raw["file"]),
                sha256=sha,
                size=int(raw["size"]),
                license=str(raw["license"]),
                url=url,
                origin=str(raw["origin"]),
                inputs=_tensors(raw["inputs"], where),
                outputs=_tensors(raw["outputs"], where),
                non_commercial=bool(raw.get("non_commercial", False)),
                template=raw.get("template"),
                optional=bool(raw.get("optional", False)),
                preprocess=Preprocess(
                    color=str(pre.get("color", "RGB")),
                    layout=str(pre.get("layout", "NCHW")),
                    mean=tuple(float(v) for v in pre.get("mean", (0.0, 0.0, 0.0))),
                    std=tuple(float(v) for v in pre.get("std", (1.0, 1.0, 1.0))),
                )
                if pre
                else None,
                mirrors=tuple(mirrors),
                sidecar=sidecar,
                trt_fp16=trt_fp16,
                trt_fp16_tolerance=float(tolerance),
                extra={k: v for k, v in raw.items() if k not in known},
            )
        )
    return entries
