"""The model registry: which file a model name means, its pinned version, and whether the file is intact.

Bundled models (empty `url`) ship with livefuse (models/ in a checkout; see livefuse/paths.py). Pulled
models are stored in the user's data folder ($LIVEFUSE_MODELS_DIR, `livefuse doctor` shows it) as
NAME/VERSION/FILE-basename, next to
any optimised variants (`NAME.fp16.onnx`, `NAME.int8.onnx`, `NAME.slim.onnx`). A model is only ever
loaded after its SHA-256 matched the manifest. The manifest itself is `manifest.py`; fetching files
is `pull.py`. Nothing here imports onnxruntime except `verify`, which loads the files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from livefuse.engine.download import sha256_file
from livefuse.engine.manifest import ModelEntry, load_manifest, semver
from livefuse.engine.pull import pull_model
from livefuse.engine.reasons import first_line
from livefuse.engine.source import ModelSource
from livefuse.errors import ModelError, UserError
from livefuse.paths import models_dir, shipped_models_dir

REPO_MODELS = shipped_models_dir()


def default_models_dir() -> Path:
    """Where pulled models go: $LIVEFUSE_MODELS_DIR or the user's data folder's models/."""
    return models_dir()


@dataclass
class Problem:
    """What `verify` found wrong (or merely absent) for one model."""

    entry: ModelEntry
    status: str  # ok, missing, not-pulled, truncated, corrupt, unloadable, unverified
    path: Path
    message: str

    @property
    def is_error(self) -> bool:
        return self.status in ("missing", "truncated", "corrupt", "unloadable")


class Registry:
    """Resolves model names to verified files; pulls, pins and verifies them."""

    def __init__(
        self, manifest: Path | None = None, models_dir: Path | None = None, repo_models: Path | None = None
    ) -> None:
        # Bundled files are relative to the manifest's folder (models/ in the repository).
        self.manifest = manifest or (repo_models or REPO_MODELS) / "manifest.toml"
        self.repo_models = repo_models or self.manifest.parent
        self.models_dir = models_dir or default_models_dir()
        self.entries = load_manifest(self.manifest)
        self._hashes: dict[tuple[str, int, int, int], str] = {}

    # -- lookup ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted({e.name for e in self.entries})

    def versions(self, name: str) -> list[ModelEntry]:
        """All versions of `name`, newest first."""
        return sorted((e for e in self.entries if e.name == name), key=lambda e: semver(e.version), reverse=True)

    def entry(self, name: str, version: str | None = None) -> ModelEntry:
        """The entry for `name@version`; else the pinned version, the newest present, or the newest."""
        if version is None and "@" in name:
            name, version = name.split("@", 1)
        found = self.versions(name)
        if not found:
            raise ModelError(f"no model named {name!r} in {self.manifest}; `livefuse models list` shows the names")
        if version is None:
            version = self.pins().get(name)
            if version is None:
                present = [e for e in found if self.path(e).is_file()]
                return (present or found)[0]
        for e in found:
            if e.version == version:
                return e
        raise ModelError(
            f"model {name!r} has no version {version!r} in {self.manifest} (it has "
            f"{', '.join(e.version for e in found)})"
        )

    def path(self, entry: ModelEntry) -> Path:
        """Where the file is (or will be): under models/ when bundled, else in the cache dir."""
        if entry.bundled and not entry.optional:
            return self.repo_models / entry.file
        return self.models_dir / entry.name / entry.version / Path(entry.file).name

    def variant_path(self, entry: ModelEntry, variant: str) -> Path:
        """Where `models optimize` writes a variant (fp16, int8, slim) of a model."""
        return self.models_dir / entry.name / entry.version / f"{Path(entry.file).stem}.{variant}.onnx"

    # -- hashes ----------------------------------------------------------------------------------

    def sha256(self, path: Path) -> str:
        """The file's SHA-256 (remembered per path, size, mtime and ctime so a model is hashed once per process;
        ctime too, because a file rewritten with its old size and mtime put back must be hashed again)."""
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key not in self._hashes:
            self._hashes[key] = sha256_file(path)
        return self._hashes[key]

    def record_path(self, entry: ModelEntry) -> Path:
        """The local pin of a pulled file's SHA-256 (`FILE.sha256`: the hash, then how it was vouched for)."""
        path = self.path(entry)
        return path.with_name(path.name + ".sha256")

    def recorded(self, entry: ModelEntry) -> tuple[str, str]:
        """(sha256, how it was vouched for) recorded at pull time; ("", "") when nothing was recorded."""
        side = self.record_path(entry)
        try:
            words = side.read_text().split(maxsplit=1)
        except OSError:
            return "", ""
        return (
            (words[0].lower(), words[1].strip() if len(words) > 1 else "trusted (--allow-unverified)")
            if words
            else ("", "")
        )

    def expected_sha(self, entry: ModelEntry) -> str:
        """The manifest hash, or the hash recorded when the file was pulled (publisher-checked or on trust)."""
        return entry.sha256 or self.recorded(entry)[0]

    def trust(self, entry: ModelEntry) -> str:
        """How a model's bytes are vouched for, for `models list`: verified, publisher .hash or unverified."""
        if entry.sha256:
            return "verified"
        how = self.recorded(entry)[1]
        if how.startswith("crc32"):
            return "verified (.hash)"
        if entry.sidecar:
            return "publisher .hash"
        return "recorded on trust" if how else "unverified"

    def problem(self, entry: ModelEntry) -> Problem:
        """Whether the file is present and intact (size and hash; loading is checked by `verify`)."""
        path = self.path(entry)
        pull_fix = (
            f"run `livefuse models pull {entry.ref}`"
            if entry.url
            else f"restore it with `git checkout -- models/{entry.file}`"
            if not entry.optional
            else f"add it with `livefuse models pull {entry.ref} --from FILE`"
        )
        if not path.is_file():
            status = "not-pulled" if (entry.url or entry.optional) else "missing"
            if entry.url and self.pins().get(entry.name) == entry.version:
                status = "missing"
            return Problem(entry, status, path, f"{entry.ref}: {path} is missing; {pull_fix}")
        size = path.stat().st_size
        want = self.expected_sha(entry)
        if entry.size and size < entry.size:
            return Problem(
                entry,
                "truncated",
                path,
                f"{entry.ref}: {path} is truncated ({size} of {entry.size} bytes); delete it and {pull_fix}",
            )
        actual = self.sha256(path)
        if not want:
            return Problem(
                entry,
                "unverified",
                path,
                f"{entry.ref}: the manifest has no sha256 for {path} (actual {actual}); check the file and pin it",
            )
        if actual != want:
            return Problem(
                entry,
                "corrupt",
                path,
                f"{entry.ref}: {path} has sha256 {actual}, expected {want} "
                f"(size {size}, expected {entry.size}); delete it and "
                f"{pull_fix}",
            )
        return Problem(entry, "ok", path, f"{entry.ref}: ok")

    def check(self, entry: ModelEntry) -> Path:
        """The verified file of `entry`, or a ModelError saying what is wrong and how to fix it."""
        found = self.problem(entry)
        if found.status == "ok":
            return found.path
        if found.status in ("not-pulled", "missing"):
            raise ModelError(f"model {found.message}")
        if found.status == "unverified":
            raise ModelError(f"model {found.message}; it is not loaded unverified")
        raise ModelError(f"model {found.message}; it is not loaded")

    def source(self, spec: str) -> ModelSource:
        """What the engine loads for `name` or `name@version`: the verified file and its FP16 variant."""
        entry = self.entry(spec)
        path = self.check(entry)
        fp16: Path | None = None
        if self.versions(f"{entry.name}_fp16"):
            cand = self.entry(f"{entry.name}_fp16")
            if self.problem(cand).status == "ok":
                fp16 = self.path(cand)
        if fp16 is None and self.variant_path(entry, "fp16").is_file():
            fp16 = self.variant_path(entry, "fp16")
        return ModelSource(
            label=entry.ref,
            path=path,
            fp16_path=fp16,
            key=self.expected_sha(entry),
            fixed_shapes=entry.fixed_shapes,
            trt_fp16=entry.trt_fp16,
            entry=entry,
        )

    # -- pins ------------------------------------------------------------------------------------

    def pins(self) -> dict[str, str]:
        """Pinned versions (name -> version), stored in the cache dir."""
        f = self.models_dir / "pins.json"
        try:
            return dict(json.loads(f.read_text()))
        except (OSError, ValueError):
            return {}

    def use(self, spec: str) -> ModelEntry:
        """Pin `name@version` (it must be present and intact); rolling back is pinning the older one."""
        if "@" not in spec:
            raise UserError(
                f"`models use` needs NAME@VERSION, got {spec!r}; `livefuse models info {spec}` lists the versions"
            )
        entry = self.entry(spec)
        self.check(entry)
        pins = self.pins()
        pins[entry.name] = entry.version
        self.models_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.models_dir / f"pins.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.models_dir / "pins.json")
        return entry

    # -- verify ----------------------------------------------------------------------------------

    def verify(self, load: bool = True) -> list[Problem]:
        """The state of every model; present files are also loaded in onnxruntime (CPU)."""
        found = []
        for entry in sorted(self.entries, key=lambda e: (e.name, semver(e.version))):
            p = self.problem(entry)
            if p.status == "ok" and load:
                why = _load_error(p.path)
                if why:
                    p = Problem(
                        entry,
                        "unloadable",
                        p.path,
                        f"{entry.ref}: {p.path} does not load in onnxruntime ({why}); re-download or re-export it",
                    )
            found.append(p)
        return found

    # -- pull ------------------------------------------------------------------------------------

    def pull(
        self,
        spec: str,
        out: IO[str] | None = None,
        allow_unverified: bool = False,
        from_file: Path | None = None,
        retries: int = 3,
        timeout: float = 30.0,
    ) -> Path:
        """Download or import a model, check it and move it into place (see `engine/pull.py`)."""
        return pull_model(self, spec, out, allow_unverified, from_file, retries, timeout)


def _load_error(path: Path) -> str:
    """Why onnxruntime cannot load `path` on CPU ('' when it loads)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises several exception types)
        return first_line(exc, 300)
    return ""
