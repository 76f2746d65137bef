"""Fetching a model file: mirrors in order, resumable Range requests, size, SHA-256 and publisher checks.

Every mirror of a manifest entry serves the same bytes, so a `.part` file left by one mirror is resumed
from the next. What comes down is only accepted when it matches what someone vouches for: the
manifest's SHA-256, or, where only the publisher's own checksum exists, the CRC32 in the `.hash`
sidecar FaceFusion publishes next to each file of its releases (FaceFusion's `hash_helper` compares
`format(zlib.crc32(content), '08x')` with that file's stripped text). Nothing here imports onnxruntime.
"""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from livefuse.errors import ModelError

CHUNK = 1 << 20
SIDECAR_KINDS = ("crc32",)  # FaceFusion's <name>.hash: eight lower-case hex digits of the file's CRC32


@dataclass(frozen=True)
class Wanted:
    """What a download must turn out to be (empty/zero: not known beforehand)."""

    label: str
    size: int = 0
    sha256: str = ""
    sidecar: str = ""  # "" or one of SIDECAR_KINDS


@dataclass(frozen=True)
class Fetched:
    """A verified download: its SHA-256, and how it was vouched for."""

    url: str
    sha256: str
    size: int
    vouched: str  # "sha256" (the manifest's), "crc32 <hex> from <sidecar url>", or "" (unverified)


class MirrorFailed(Exception):
    """One mirror could not deliver verified bytes; the next is tried."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def crc32_file(path: Path) -> str:
    """The file's CRC32 as FaceFusion writes it in its `.hash` files (eight lower-case hex digits)."""
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return format(crc & 0xFFFFFFFF, "08x")


def sidecar_url(url: str) -> str:
    """The publisher's `.hash` next to `url` in the same release: `dir/name.onnx` -> `dir/name.hash`."""
    head, _, tail = url.rpartition("/")
    stem = tail.rsplit(".", 1)[0] if "." in tail else tail
    return f"{head}/{stem}.hash"


def read_sidecar(url: str, timeout: float) -> str:
    """The CRC32 a `.hash` sidecar holds, or MirrorFailed saying why it cannot be read."""
    hash_url = sidecar_url(url)
    try:
        with urllib.request.urlopen(_request(hash_url), timeout=timeout) as resp:
            text = resp.read(256).decode("ascii", "replace").strip().lower()
    except urllib.error.HTTPError as exc:
        raise MirrorFailed(f"its checksum file {hash_url} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise MirrorFailed(f"its checksum file {hash_url} could not be fetched ({exc})") from exc
    if len(text) != 8 or any(c not in "0123456789abcdef" for c in text):
        raise MirrorFailed(f"its checksum file {hash_url} holds {text[:40]!r}, not an 8-digit CRC32")
    return str(text)


def fetch(
    want: Wanted, urls: tuple[str, ...], part: Path, out: IO[str], retries: int = 3, timeout: float = 30.0
) -> Fetched:
    """Download into `part` from the first mirror that delivers verified bytes; ModelError when none does.

    A mirror that is down or keeps dropping is left for the next (the `.part` is kept and resumed there);
    a mirror whose bytes fail a check has them deleted, so the next starts clean.
    """
    failures: list[str] = []
    for url in urls:
        try:
            expected_crc = read_sidecar(url, timeout) if want.sidecar else ""
            _download(want, url, part, out, retries, timeout)
            return _check(want, url, part, expected_crc)
        except MirrorFailed as exc:
            failures.append(f"{url}: {exc}")
            if len(urls) > 1:
                print(
                    f"{want.label}: {url} failed ({exc}); trying the next mirror"
                    if url != urls[-1]
                    else f"{want.label}: {url} failed ({exc})",
                    file=out,
                )
    kept = part.stat().st_size if part.exists() else 0
    resume = f"; {kept} bytes are kept in {part}: run the same pull again to resume" if kept else ""
    raise ModelError(
        f"{want.label}: no mirror delivered a verified file ({len(urls)} tried):\n  " + "\n  ".join(failures) + resume
    )


def _check(want: Wanted, url: str, part: Path, expected_crc: str) -> Fetched:
    size = part.stat().st_size
    if want.size and size != want.size:
        part.unlink()
        raise MirrorFailed(f"it sent {size} bytes, expected {want.size}; deleted")
    actual = sha256_file(part)
    if want.sha256 and actual != want.sha256:
        part.unlink()
        raise MirrorFailed(
            f"downloaded file has sha256 {actual}, expected {want.sha256} ({size} bytes); it was deleted "
            f"and will not be used"
        )
    if expected_crc:
        crc = crc32_file(part)
        if crc != expected_crc:
            part.unlink()
            raise MirrorFailed(
                f"downloaded file has CRC32 {crc}, but the publisher's {sidecar_url(url)} says "
                f"{expected_crc} (sha256 {actual}, {size} bytes); it was deleted and will not be used"
            )
        return Fetched(url, actual, size, f"crc32 {crc} from {sidecar_url(url)}")
    return Fetched(url, actual, size, "sha256" if want.sha256 else "")


def _request(url: str, start: int = 0) -> urllib.request.Request:
    request = urllib.request.Request(url, headers={"User-Agent": "livefuse"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return request


def _download(want: Wanted, url: str, part: Path, out: IO[str], retries: int, timeout: float) -> None:
    """Fetch `url` into `part`, resuming with Range requests after an interruption."""
    tty = out.isatty()
    last_error: Exception | None = None
    for _attempt in range(retries):
        have = part.stat().st_size if part.exists() else 0
        if want.size and have == want.size:
            return
        if want.size and have > want.size:
            part.unlink()
            have = 0
        try:
            with urllib.request.urlopen(_request(url, have), timeout=timeout) as resp:
                if have and resp.status != 206:  # the server ignored Range: start again
                    have = 0
                length = int(resp.headers.get("Content-Length", 0) or 0)
                total = want.size or (have + length)
                with part.open("ab" if have else "wb") as f:
                    done, start = have, time.monotonic()
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        if tty:
                            _progress(out, want.label, done, total, have, start)
                if tty:
                    print(file=out)
                complete = not length or done >= have + length  # the server sent all it announced
                if (want.size and done >= want.size) or (not want.size and complete):
                    return
                if complete:  # a whole file, but not the one wanted: nothing here to resume
                    part.unlink()
                    raise MirrorFailed(f"it sent {done} bytes, expected {want.size}; deleted")
                last_error = OSError(f"connection closed after {done} of {total} bytes")
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # nothing left to fetch
                return
            raise MirrorFailed(f"HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            last_error = exc
        if tty:
            print(file=out)
        print(f"{want.label}: download interrupted ({last_error}); resuming", file=out)
    raise MirrorFailed(f"failed after {retries} attempts ({last_error})")


def _progress(out: IO[str], name: str, done: int, total: int, resumed: int, start: float) -> None:
    rate = (done - resumed) / max(time.monotonic() - start, 1e-6) / 1e6
    pct = f"{100 * done / total:5.1f}%" if total else "     "
    out.write(f"\r{name}: {pct} {done / 1e6:8.1f}/{total / 1e6:.1f} MB {rate:6.1f} MB/s")
    out.flush()
