"""The model registry: models/manifest.toml, pulled-model cache, version pins, hash checks.

Bundled models (empty `url`) live under models/ in the repository. Pulled models are stored in the
cache dir ($LIVEFUSE_MODELS_DIR or ~/.cache/livefuse/models) as NAME/VERSION/FILE-basename, next to
any optimised variants (`NAME.fp16.onnx`, `NAME.int8.onnx`, `NAME.slim.onnx`). A model is only ever
loaded after its SHA-256 matched the manifest.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from livefuse.engine.download import (
    CHUNK,
    SIDECAR_KINDS,
    MirrorFailed,
    Wanted,
    crc32_file,
    fetch,
    read_sidecar,
    sha256_file,
    sidecar_url,
)
from livefuse.errors import ModelError, UserError

if TYPE_CHECKING:  # the session module imports onnxruntime; `models list` must stay light
    from livefuse.engine.session import ModelSource

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
VARIANTS = ("fp16", "int8", "slim")
_CHUNK = CHUNK


def default_models_dir() -> Path:
    """Where pulled models go: $LIVEFUSE_MODELS_DIR or ~/.cache/livefuse/models."""
    env = os.environ.get("LIVEFUSE_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "livefuse" / "models"


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
            if u and not (
                u.startswith("https://") or re.match(r"http://(127\.0\.0\.1|localhost|\[::1\])[:/]", u)
            ):
                raise ModelError(
                    f"{where}: url {u!r} must be a pinned https:// URL (plain http only on loopback "
                    f"mirrors), or empty when bundled"
                )
        sidecar = str(raw.get("sidecar", ""))
        if sidecar and sidecar not in SIDECAR_KINDS:
            raise ModelError(f"{where}: sidecar {sidecar!r} is not one of {', '.join(SIDECAR_KINDS)}")
        pre = raw.get("preprocess")
        known = {*required, "non_commercial", "template", "optional", "preprocess", "mirrors", "sidecar"}
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
                extra={k: v for k, v in raw.items() if k not in known},
            )
        )
    return entries


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
        self._hashes: dict[tuple[str, int, int], str] = {}

    # -- lookup ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted({e.name for e in self.entries})

    def versions(self, name: str) -> list[ModelEntry]:
        """All versions of `name`, newest first."""
        return sorted(
            (e for e in self.entries if e.name == name), key=lambda e: semver(e.version), reverse=True
        )

    def entry(self, name: str, version: str | None = None) -> ModelEntry:
        """The entry for `name@version`; else the pinned version, the newest present, or the newest."""
        if version is None and "@" in name:
            name, version = name.split("@", 1)
        found = self.versions(name)
        if not found:
            raise ModelError(
                f"no model named {name!r} in {self.manifest}; `livefuse models list` shows the names"
            )
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
        """The file's SHA-256 (remembered per path, size and mtime so a model is hashed once per process)."""
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = _sha_file(path)
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
        return (words[0].lower(), words[1].strip() if len(words) > 1 else "trusted (--allow-unverified)") \
            if words else ("", "")

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
                f"{entry.ref}: the manifest has no sha256 for {path} "
                f"(actual {actual}); check the file and pin it",
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
        from livefuse.engine.session import ModelSource

        entry = self.entry(spec)
        path = self.check(entry)
        fp16: Path | None = None
        if self.versions(f"{entry.name}_fp16"):
            cand = self.entry(f"{entry.name}_fp16")
            if self.problem(cand).status == "ok":
                fp16 = self.path(cand)
        if fp16 is None and self.variant_path(entry, "fp16").is_file():
            fp16 = self.variant_path(entry, "fp16")
        return ModelSource(label=entry.ref, path=path, fp16_path=fp16, key=self.expected_sha(entry))

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
                f"`models use` needs NAME@VERSION, got {spec!r}; `livefuse models info "
                f"{spec}` lists the versions"
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
                        f"{entry.ref}: {p.path} does not load in "
                        f"onnxruntime ({why}); re-download or re-export it",
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
        """Download (mirrors in order, resuming a .part file) or import a model, check it, move it into place.

        The check is the manifest's SHA-256, else the publisher's `.hash` sidecar (then the measured
        SHA-256 is recorded and checked from then on), else, with `allow_unverified` only, nothing.
        """
        out = out or sys.stderr
        entry = self.entry(spec)
        dest = self.path(entry)
        if entry.bundled and not entry.optional:
            raise UserError(
                f"{entry.ref} is bundled in models/ (no url to pull from); `livefuse models verify` checks it"
            )
        if dest.is_file() and self.problem(entry).status == "ok":
            print(f"{entry.ref} is already present: {dest}", file=out)
            return dest
        if not entry.vouched and not allow_unverified:
            raise ModelError(
                f"{entry.ref} has no sha256 in {self.manifest} and its publisher offers no checksum file, so a "
                f"download cannot be checked; add the published hash, or pass --allow-unverified to trust "
                f"this download (its hash is recorded and checked from then on)"
            )
        note = " (NON-COMMERCIAL use only)" if entry.non_commercial else ""
        print(f"{entry.ref}: licence {entry.license}{note}; origin: {entry.origin}", file=out)
        if entry.non_commercial:
            print(
                f"warning: {entry.name} is licensed for non-commercial use only; do not use it in a "
                f"commercial product or stream",
                file=out,
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        want = Wanted(entry.ref, entry.size, entry.sha256, entry.sidecar)
        if from_file is not None:
            _copy(from_file, part)
            actual, how = self._check_import(entry, part, timeout)
        else:
            if not entry.url:
                raise UserError(
                    f"{entry.ref} has no url; add it with `livefuse models pull {entry.ref} --from FILE`"
                )
            crc = _publisher_crc(entry, timeout) if entry.sidecar else ""
            same = self._same_file(entry, crc)
            if same is not None:
                print(f"{entry.ref}: the same file is already here as {same.ref} ({self.path(same)}); "
                      f"no second download", file=out)
                _link_or_copy(self.path(same), part)
                actual, how = self._check_import(entry, part, timeout, crc)
            else:
                got = fetch(want, entry.urls, part, out, retries, timeout)
                actual, how = got.sha256, got.vouched
        if how == "sha256":
            pass
        elif how:
            self.record_path(entry).write_text(f"{actual} {how}\n")
            print(f"{entry.ref}: checked against the publisher's checksum ({how}); recorded sha256 {actual}",
                  file=out)
        else:
            print(
                f"warning: {entry.ref} is unverified; recorded sha256 {actual} (size {part.stat().st_size}); "
                f"add it to {self.manifest}",
                file=out,
            )
            self.record_path(entry).write_text(f"{actual} trusted (--allow-unverified)\n")
        with part.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
        print(f"{entry.ref}: sha256 ok, stored at {dest}", file=out)
        return dest

    def _check_import(self, entry: ModelEntry, part: Path, timeout: float, crc: str = "") -> tuple[str, str]:
        """(sha256, how vouched: "sha256", "crc32 ...", or "" when unverified) of a copied file; bad: deleted."""
        size = part.stat().st_size
        actual = sha256_file(part)
        if entry.sha256:
            if actual != entry.sha256 or (entry.size and size != entry.size):
                part.unlink()
                raise ModelError(
                    f"{entry.ref}: the file has sha256 {actual}, expected {entry.sha256} ({size} bytes, "
                    f"expected {entry.size}); it was deleted and will not be used"
                )
            return actual, "sha256"
        if entry.sidecar:
            crc = crc or _publisher_crc(entry, timeout)
            if not crc:
                part.unlink()
                raise ModelError(f"{entry.ref}: none of its publisher's checksum files could be read "
                                 f"({', '.join(sidecar_url(u) for u in entry.urls)}); try again later")
            have = crc32_file(part)
            if have != crc:
                part.unlink()
                raise ModelError(
                    f"{entry.ref}: the file has CRC32 {have}, but the publisher's checksum says {crc} "
                    f"(sha256 {actual}); it was deleted and will not be used"
                )
            return actual, f"crc32 {have}"
        return actual, ""

    def _same_file(self, entry: ModelEntry, crc: str) -> ModelEntry | None:
        """Another entry whose intact pulled file has exactly the bytes `entry` wants (one download, two names).

        With a known SHA-256 only entries expected to hold that hash are looked at; with the publisher's
        CRC32 only, every intact pulled file of a matching size (when known) is checked against it.
        """
        for other in self.entries:
            if other.ref == entry.ref or not (other.url or other.optional):
                continue
            path = self.path(other)
            if not path.is_file() or (entry.size and path.stat().st_size != entry.size):
                continue
            if entry.sha256:
                if self.expected_sha(other) == entry.sha256 and self.problem(other).status == "ok":
                    return other
            elif crc and self.problem(other).status == "ok" and crc32_file(path) == crc:
                return other
        return None


def _publisher_crc(entry: ModelEntry, timeout: float) -> str:
    """The CRC32 in the first readable `.hash` sidecar of the entry's mirrors ('' when none answers)."""
    for url in entry.urls:
        try:
            return read_sidecar(url, timeout)
        except MirrorFailed:
            continue
    return ""


def _sha_file(path: Path) -> str:
    return sha256_file(path)


def _link_or_copy(src: Path, dst: Path) -> None:
    """`dst` with the bytes of `src`: a hard link where the filesystem allows, else a copy."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        _copy(src, dst)


def _copy(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise UserError(f"--from {src}: no such file")
    with src.open("rb") as fi, dst.open("wb") as fo:
        while chunk := fi.read(_CHUNK):
            fo.write(chunk)


def _load_error(path: Path) -> str:
    """Why onnxruntime cannot load `path` on CPU ('' when it loads)."""
    import onnxruntime as ort

    from livefuse.engine.session import first_line

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises several exception types)
        return first_line(exc, 300)
    return ""
