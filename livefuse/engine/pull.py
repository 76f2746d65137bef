"""`livefuse models pull`: fetch or import a model file, check it against what vouches for it, store it.

The check is the manifest's SHA-256, else the publisher's `.hash` sidecar (then the measured SHA-256
is recorded next to the file and checked from then on), else, with --allow-unverified only, nothing.
A file another entry already holds with the same bytes is linked, not downloaded again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Protocol

from livefuse.engine.download import (
    CHUNK,
    MirrorFailed,
    Wanted,
    crc32_file,
    fetch,
    read_sidecar,
    sha256_file,
    sidecar_url,
)
from livefuse.engine.manifest import ModelEntry
from livefuse.errors import ModelError, UserError


class Status(Protocol):
    status: str


class Registry(Protocol):
    """What a pull needs of the registry (`registry.Registry`): entries, where files go, their state."""

    manifest: Path
    entries: list[ModelEntry]

    def entry(self, name: str, version: str | None = None) -> ModelEntry: ...

    def path(self, entry: ModelEntry) -> Path: ...

    def record_path(self, entry: ModelEntry) -> Path: ...

    def expected_sha(self, entry: ModelEntry) -> str: ...

    def problem(self, entry: ModelEntry) -> Status: ...


def pull_model(
    registry: Registry,
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
    entry = registry.entry(spec)
    dest = registry.path(entry)
    if entry.bundled and not entry.optional:
        raise UserError(f"{entry.ref} is bundled in models/ (no url to pull from); `livefuse models verify` checks it")
    if dest.is_file() and registry.problem(entry).status == "ok":
        print(f"{entry.ref} is already present: {dest}", file=out)
        return dest
    if not entry.vouched and not allow_unverified:
        raise ModelError(
            f"{entry.ref} has no sha256 in {registry.manifest} and its publisher offers no checksum file, so a "
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
        actual, how = _check_import(entry, part, timeout)
    else:
        if not entry.url:
            raise UserError(f"{entry.ref} has no url; add it with `livefuse models pull {entry.ref} --from FILE`")
        crc = _publisher_crc(entry, timeout) if entry.sidecar else ""
        same = _same_file(registry, entry, crc)
        if same is not None:
            print(
                f"{entry.ref}: the same file is already here as {same.ref} ({registry.path(same)}); no second download",
                file=out,
            )
            _link_or_copy(registry.path(same), part)
            actual, how = _check_import(entry, part, timeout, crc)
        else:
            got = fetch(want, entry.urls, part, out, retries, timeout)
            actual, how = got.sha256, got.vouched
    if how == "sha256":
        pass
    elif how:
        registry.record_path(entry).write_text(f"{actual} {how}\n")
        print(f"{entry.ref}: checked against the publisher's checksum ({how}); recorded sha256 {actual}", file=out)
    else:
        print(
            f"warning: {entry.ref} is unverified; recorded sha256 {actual} (size {part.stat().st_size}); "
            f"add it to {registry.manifest}",
            file=out,
        )
        registry.record_path(entry).write_text(f"{actual} trusted (--allow-unverified)\n")
    with part.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    print(f"{entry.ref}: sha256 ok, stored at {dest}", file=out)
    return dest


def _check_import(entry: ModelEntry, part: Path, timeout: float, crc: str = "") -> tuple[str, str]:
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
            raise ModelError(
                f"{entry.ref}: none of its publisher's checksum files could be read "
                f"({', '.join(sidecar_url(u) for u in entry.urls)}); try again later"
            )
        have = crc32_file(part)
        if have != crc:
            part.unlink()
            raise ModelError(
                f"{entry.ref}: the file has CRC32 {have}, but the publisher's checksum says {crc} "
                f"(sha256 {actual}); it was deleted and will not be used"
            )
        return actual, f"crc32 {have}"
    return actual, ""


def _same_file(registry: Registry, entry: ModelEntry, crc: str) -> ModelEntry | None:
    """Another entry whose intact pulled file has exactly the bytes `entry` wants (one download, two names).

    With a known SHA-256 only entries expected to hold that hash are looked at; with the publisher's
    CRC32 only, every intact pulled file of a matching size (when known) is checked against it.
    """
    for other in registry.entries:
        if other.ref == entry.ref or not (other.url or other.optional):
            continue
        path = registry.path(other)
        if not path.is_file() or (entry.size and path.stat().st_size != entry.size):
            continue
        if entry.sha256:
            if registry.expected_sha(other) == entry.sha256 and registry.problem(other).status == "ok":
                return other
        elif crc and registry.problem(other).status == "ok" and crc32_file(path) == crc:
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
        while chunk := fi.read(CHUNK):
            fo.write(chunk)
