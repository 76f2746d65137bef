"""Model registry: manifest, verify, refusal at load, resumable pull from a local HTTP server, pins, CLI."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from livefuse.commands import models as cli
from livefuse.engine import Engine
from livefuse.engine.manifest import load_manifest
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError, UserError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"
YUNET = SHARED / "face_detection_yunet.onnx"
RETINA = SHARED / "retinaface_mobilenet0.25_640.onnx"
REPO_MANIFEST = Path(__file__).resolve().parents[1] / "models" / "manifest.toml"

pytestmark = pytest.mark.skipif(
    not YUNET.is_file() or not RETINA.is_file(),
    reason=f"real test models not found in {SHARED} (see its README)",
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


ENTRY = """
[[model]]
name = "{name}"
version = "{version}"
file = "{file}"
sha256 = "{sha}"
size = {size}
license = "MIT"
url = "{url}"
origin = "test copy"
non_commercial = {nc}
inputs = [ {{ name = "input", shape = [1, 3, 640, 640], dtype = "float32" }} ]
outputs = [ {{ name = "cls_8", shape = [1, 6400, 1], dtype = "float32" }} ]
[model.preprocess]
color = "BGR"
layout = "NCHW"
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
"""


def entry(
    name: str, version: str, file: str, src: Path, url: str = "", nc: bool = False, digest: str | None = None
) -> str:
    return ENTRY.format(
        name=name,
        version=version,
        file=file,
        sha=digest if digest is not None else sha(src),
        size=src.stat().st_size,
        url=url,
        nc=str(nc).lower(),
    )


class Server:
    """A local HTTP file server with Range support that can drop the first connection half-way."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.drop_first_after: int | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data):
                    self.send_response(416)
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop_first_after is not None:
                    cut, server.drop_first_after = server.drop_first_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server({"/retina.onnx": RETINA.read_bytes(), "/yunet.onnx": YUNET.read_bytes()})
    yield srv
    srv.close()


@pytest.fixture
def setup(tmp_path: Path, server: Server) -> tuple[Registry, Path]:
    repo = tmp_path / "models"
    (repo / "det").mkdir(parents=True)
    shutil.copy(YUNET, repo / "det" / "yunet.onnx")
    manifest = repo / "manifest.toml"
    manifest.write_text(
        entry("yunet", "2023.3.0", "det/yunet.onnx", YUNET)
        + entry("retina", "1.0.0", "retina/retina.onnx", RETINA, url=f"{server.url}/retina.onnx", nc=True)
        + entry("retina", "1.1.0", "retina.onnx", RETINA, url=f"{server.url}/retina.onnx")
        + entry("badhash", "1.0.0", "bad.onnx", RETINA, url=f"{server.url}/retina.onnx", digest="0" * 64)
    )
    return Registry(manifest=manifest, models_dir=tmp_path / "cache", repo_models=repo), tmp_path


def test_repo_manifest_parses() -> None:
    entries = load_manifest(REPO_MANIFEST)
    names = {e.name for e in entries}
    assert {
        "yunet",
        "inswapper_128",
        "inswapper_128_fp16",
        "arcface_w600k_r50",
        "w600k_r50",
        "gfpgan_1.4",
        "gfpgan_1024",
        "gpen_bfr_256",
        "gpen_bfr_512",
        "codeformer",
        "retinaface_mobilenet0.25",
    } <= names
    for e in entries:
        assert all(u.startswith("https://") for u in e.urls), e.ref
        assert e.sha256 or e.sidecar or "NOT verified" in e.origin, e.ref  # unverified hashes are said to be so
    by_name = {e.name: e for e in entries}
    for name in ("inswapper_128", "inswapper_128_fp16", "w600k_r50", "gpen_bfr_256", "gpen_bfr_512", "gfpgan_1024"):
        assert by_name[name].sha256 and len(by_name[name].urls) >= 2, name  # verified, with a fallback mirror
    assert by_name["arcface_w600k_r50"].sidecar == "crc32"


def test_pull_resumes_after_interruption_and_checks_hash(setup: tuple[Registry, Path], server: Server) -> None:
    reg, tmp = setup
    server.drop_first_after = 700_000  # the first connection dies after 700 kB of 1.7 MB
    out = io.StringIO()
    path = reg.pull("retina@1.0.0", out=out)
    assert path == tmp / "cache" / "retina" / "1.0.0" / "retina.onnx"
    assert sha(path) == sha(RETINA)
    assert not path.with_name("retina.onnx.part").exists()
    assert [r for _, r in server.requests] == [None, "bytes=700000-"]  # resumed, not restarted
    text = out.getvalue()
    assert "licence MIT (NON-COMMERCIAL use only)" in text and "warning: retina is licensed for non-commercial" in text
    assert "interrupted" in text and "sha256 ok" in text
    sess = Engine("cpu", cache_dir=tmp / "engine", registry=reg).session("retina@1.0.0")
    assert sess.provider == "CPUExecutionProvider" and sess.input_names == ["input0"]


def test_pull_resumes_a_part_file_left_by_an_earlier_run(setup: tuple[Registry, Path], server: Server) -> None:
    reg, tmp = setup
    part = tmp / "cache" / "retina" / "1.1.0" / "retina.onnx.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(RETINA.read_bytes()[:123_456])
    reg.pull("retina@1.1.0", out=io.StringIO())
    assert server.requests == [("/retina.onnx", "bytes=123456-")]
    assert sha(part.with_name("retina.onnx")) == sha(RETINA)


def test_pull_refuses_a_hash_mismatch(setup: tuple[Registry, Path]) -> None:
    reg, tmp = setup
    with pytest.raises(ModelError) as err:
        reg.pull("badhash", out=io.StringIO())
    msg = str(err.value)
    assert f"sha256 {sha(RETINA)}" in msg and f"expected {'0' * 64}" in msg and "will not be used" in msg
    assert not any((tmp / "cache" / "badhash").rglob("*.onnx*"))  # neither installed nor kept


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_damaged_model_refused_by_verify_and_at_load(
    setup: tuple[Registry, Path], damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, tmp = setup
    target = tmp / "models" / "det" / "yunet.onnx"
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    else:
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    problems = {p.entry.ref: p for p in reg.verify()}
    p = problems["yunet@2023.3.0"]
    assert p.status == ("truncated" if damage == "truncate" else "corrupt") and p.is_error
    assert str(target) in p.message and "git checkout -- models/det/yunet.onnx" in p.message
    with pytest.raises(ModelError, match="it is not loaded") as err:
        Engine("cpu", cache_dir=tmp / "engine", registry=reg).session("yunet")
    assert str(target) in str(err.value)
    if damage == "alter":
        assert f"expected {sha(YUNET)}" in str(err.value)
    rc = cli.main(["models", "--manifest", str(reg.manifest), "--models-dir", str(reg.models_dir), "verify"])
    out = capsys.readouterr()
    assert rc == 1 and ("TRUNCATED" if damage == "truncate" else "CORRUPT") in out.out
    assert "need attention" in out.err


def test_verify_ok_and_loads(setup: tuple[Registry, Path], capsys: pytest.CaptureFixture[str]) -> None:
    reg, _ = setup
    reg.pull("retina@1.1.0", out=io.StringIO())
    status = {p.entry.ref: p.status for p in reg.verify()}
    assert status == {
        "yunet@2023.3.0": "ok",
        "retina@1.1.0": "ok",
        "retina@1.0.0": "not-pulled",
        "badhash@1.0.0": "not-pulled",
    }
    rc = cli.main(["models", "--manifest", str(reg.manifest), "--models-dir", str(reg.models_dir), "verify"])
    assert rc == 0, capsys.readouterr()


def test_verify_reports_a_file_that_does_not_load(setup: tuple[Registry, Path]) -> None:
    reg, tmp = setup
    manifest = reg.manifest
    junk = tmp / "models" / "junk.onnx"
    junk.write_bytes(b"not a model at all" * 100)
    manifest.write_text(manifest.read_text() + entry("junk", "1.0.0", "junk.onnx", junk))
    reg = Registry(manifest=manifest, models_dir=reg.models_dir, repo_models=tmp / "models")
    p = {p.entry.ref: p for p in reg.verify()}["junk@1.0.0"]
    assert p.status == "unloadable" and "does not load in onnxruntime" in p.message


def test_use_pins_and_rolls_back(setup: tuple[Registry, Path], capsys: pytest.CaptureFixture[str]) -> None:
    reg, tmp = setup
    reg.pull("retina@1.0.0", out=io.StringIO())
    reg.pull("retina@1.1.0", out=io.StringIO())
    assert reg.entry("retina").version == "1.1.0"  # newest present
    args = ["models", "--manifest", str(reg.manifest), "--models-dir", str(reg.models_dir)]
    assert cli.main([*args, "use", "retina@1.0.0"]) == 0
    assert "retina now uses 1.0.0" in capsys.readouterr().out
    assert reg.entry("retina").version == "1.0.0"
    engine = Engine("cpu", cache_dir=tmp / "engine", registry=reg)
    assert engine.session("retina").source.label == "retina@1.0.0"
    assert cli.main([*args, "use", "retina@1.1.0"]) == 0
    assert "(was 1.0.0)" in capsys.readouterr().out
    assert engine.session("retina").source.label == "retina@1.1.0"
    assert cli.main([*args, "use", "retina@9.9.9"]) == 2
    assert "has no version '9.9.9'" in capsys.readouterr().err
    assert cli.main([*args, "use", "retina"]) == 2  # a version is required


def test_list_info_and_unknown_names(setup: tuple[Registry, Path], capsys: pytest.CaptureFixture[str]) -> None:
    reg, _ = setup
    args = ["models", "--manifest", str(reg.manifest), "--models-dir", str(reg.models_dir)]
    assert cli.main([*args, "list"]) == 0
    out = capsys.readouterr().out
    assert "yunet" in out and "present" in out and "not pulled" in out and "[non-commercial]" in out
    assert cli.main([*args, "info", "retina"]) == 0
    out = capsys.readouterr().out
    assert "retina@1.1.0" in out and "retina@1.0.0" in out and "input: [1, 3, 640, 640] float32" in out
    assert cli.main([*args, "info", "nope"]) == 2
    assert "no model named 'nope'" in capsys.readouterr().err
    with pytest.raises(ModelError, match="no model named"):
        Engine("cpu", registry=reg).session("nope")


def test_unverified_entries_need_consent(tmp_path: Path, server: Server) -> None:
    repo = tmp_path / "models"
    repo.mkdir()
    (repo / "manifest.toml").write_text(entry("u", "1.0.0", "u.onnx", YUNET, url=f"{server.url}/yunet.onnx", digest=""))
    reg = Registry(manifest=repo / "manifest.toml", models_dir=tmp_path / "cache", repo_models=repo)
    with pytest.raises(ModelError, match="--allow-unverified"):
        reg.pull("u", out=io.StringIO())
    out = io.StringIO()
    path = reg.pull("u", out=out, allow_unverified=True)
    assert f"recorded sha256 {sha(YUNET)}" in out.getvalue()
    assert Engine("cpu", cache_dir=tmp_path / "e", registry=reg).session("u").input_names == ["input"]
    path.write_bytes(path.read_bytes()[:-10])  # tampering is now caught against the recorded hash
    with pytest.raises(ModelError, match="not loaded"):
        Engine("cpu", cache_dir=tmp_path / "e", registry=reg).session("u")


def test_import_from_file_and_bad_manifest(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    repo.mkdir()
    (repo / "manifest.toml").write_text(
        entry("r", "1.0.0", "r.onnx", RETINA).replace('url = ""', 'url = ""\noptional = true')
    )
    reg = Registry(manifest=repo / "manifest.toml", models_dir=tmp_path / "cache", repo_models=repo)
    assert {p.status for p in reg.verify()} == {"not-pulled"}  # optional, not an error
    reg.pull("r", out=io.StringIO(), from_file=RETINA)
    x = np.zeros((1, 3, 640, 640), np.float32)
    assert Engine("cpu", cache_dir=tmp_path / "e", registry=reg).session("r").run({"input0": x})["572"].shape == (
        1,
        16800,
        2,
    )
    with pytest.raises(ModelError, match=r"sha256 .* expected"):
        reg2 = Registry(manifest=repo / "manifest.toml", models_dir=tmp_path / "cache2", repo_models=repo)
        reg2.pull("r", out=io.StringIO(), from_file=YUNET)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[model]]\nname = "x"\nversion = "1.0.0"\n')
    with pytest.raises(ModelError, match=r"lacks file, sha256, size"):
        Registry(manifest=bad)
    bad.write_text(entry("x", "1.0.0", "x.onnx", YUNET, url="http://example.com/x.onnx"))
    with pytest.raises(UserError, match="pinned https"):
        Registry(manifest=bad)


# -- mirrors, publisher checksum files, shared files, licence consent -----------------------------------


def crc32(data: bytes) -> str:
    return format(zlib.crc32(data), "08x")


def dead_url() -> str:
    """A loopback URL nothing listens on (a mirror that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone/retina.onnx"


def mirrored(
    name: str, src: Path, urls: list[str], digest: str | None = None, sidecar: bool = False, nc: bool = False
) -> str:
    text = entry(name, "1.0.0", f"{name}.onnx", src, url=urls[0], nc=nc, digest=digest)
    extra = f"mirrors = {json.dumps(urls[1:])}\n" + ('sidecar = "crc32"\n' if sidecar else "")
    return text.replace('origin = "test copy"\n', f'origin = "test copy"\n{extra}')


def registry(tmp: Path, text: str) -> Registry:
    repo = tmp / "models"
    repo.mkdir(exist_ok=True)
    (repo / "manifest.toml").write_text(text)
    return Registry(manifest=repo / "manifest.toml", models_dir=tmp / "cache", repo_models=repo)


def test_a_mirror_that_is_down_or_serves_other_bytes_falls_through(tmp_path: Path, server: Server) -> None:
    server.files["/wrong/retina.onnx"] = YUNET.read_bytes()
    reg = registry(
        tmp_path, mirrored("m", RETINA, [dead_url(), f"{server.url}/wrong/retina.onnx", f"{server.url}/retina.onnx"])
    )
    out = io.StringIO()
    path = reg.pull("m", out=out, retries=1)
    assert sha(path) == sha(RETINA)
    text = out.getvalue()
    assert text.count("trying the next mirror") == 2
    # the wrong mirror is named with both hashes (its size differs too: the check stops at the size)
    assert f"sent {YUNET.stat().st_size} bytes, expected {RETINA.stat().st_size}" in text
    assert [p for p, _ in server.requests] == ["/wrong/retina.onnx", "/retina.onnx"]
    assert reg.trust(reg.entry("m")) == "verified"


def test_every_mirror_wrong_names_both_hashes_and_keeps_nothing(tmp_path: Path, server: Server) -> None:
    reg = registry(
        tmp_path, mirrored("w", RETINA, [f"{server.url}/retina.onnx", f"{server.url}/retina.onnx"], digest="1" * 64)
    )
    with pytest.raises(ModelError) as err:
        reg.pull("w", out=io.StringIO())
    msg = str(err.value)
    assert msg.count(f"sha256 {sha(RETINA)}, expected {'1' * 64}") == 2 and "no mirror delivered" in msg
    assert not any((tmp_path / "cache").rglob("*.onnx*"))


def test_interrupted_download_resumes_on_the_next_mirror(tmp_path: Path, server: Server) -> None:
    srv2 = Server({"/retina.onnx": RETINA.read_bytes()})
    try:
        server.drop_first_after = 500_000  # the first mirror dies half-way (one attempt each)
        reg = registry(tmp_path, mirrored("r", RETINA, [f"{server.url}/retina.onnx", f"{srv2.url}/retina.onnx"]))
        path = reg.pull("r", out=io.StringIO(), retries=1)
        assert sha(path) == sha(RETINA)
        assert server.requests == [("/retina.onnx", None)]
        assert srv2.requests == [("/retina.onnx", "bytes=500000-")]  # resumed, not restarted
    finally:
        srv2.close()


@pytest.mark.parametrize("good", [True, False])
def test_publisher_hash_sidecar_is_checked_then_the_sha256_recorded(
    tmp_path: Path, server: Server, good: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    data = RETINA.read_bytes()
    server.files["/ff/retina.onnx"] = data
    server.files["/ff/retina.hash"] = (crc32(data) if good else "deadbeef").encode() + b"\n"
    urls = [dead_url(), f"{server.url}/ff/retina.onnx"]  # the first release mirror is down, .hash and all
    reg = registry(tmp_path, mirrored("ff", RETINA, urls, digest="", sidecar=True))
    e = reg.entry("ff")
    assert reg.trust(e) == "publisher .hash"
    if not good:
        with pytest.raises(ModelError) as err:
            reg.pull("ff", out=io.StringIO(), retries=1)
        assert f"CRC32 {crc32(data)}" in str(err.value) and "says deadbeef" in str(err.value)
        assert not any((tmp_path / "cache").rglob("*.onnx*"))
        return
    out = io.StringIO()
    path = reg.pull("ff", out=out, retries=1)  # no --allow-unverified needed: the publisher vouches for it
    assert f"recorded sha256 {sha(RETINA)}" in out.getvalue()
    assert server.requests[0] == ("/ff/retina.hash", None)
    assert reg.recorded(e) == (sha(RETINA), f"crc32 {crc32(data)} from {server.url}/ff/retina.hash")
    assert reg.trust(e) == "verified (.hash)" and reg.problem(e).status == "ok"
    args = ["models", "--manifest", str(reg.manifest), "--models-dir", str(reg.models_dir), "list"]
    assert cli.main(args) == 0 and "verified (.hash)" in capsys.readouterr().out
    path.write_bytes(data[:-1] + b"\0")  # tampering after the pull: caught against the recorded sha256
    assert reg.problem(e).status == "corrupt"


def test_two_names_for_one_file_download_once(tmp_path: Path, server: Server) -> None:
    data = RETINA.read_bytes()
    server.files["/ff/retina.hash"] = crc32(data).encode()
    reg = registry(
        tmp_path,
        mirrored("insight", RETINA, [f"{server.url}/retina.onnx"])
        + mirrored("fusion", RETINA, [f"{server.url}/ff/retina.onnx"], digest="", sidecar=True)
        + mirrored("copy", RETINA, [f"{server.url}/retina.onnx"]),
    )
    reg.pull("insight", out=io.StringIO())
    out = io.StringIO()
    reg.pull("fusion", out=out)  # same bytes, told by the publisher's CRC32: only the .hash is fetched
    reg.pull("copy", out=io.StringIO())  # same sha256 in the manifest: nothing fetched
    assert "no second download" in out.getvalue()
    assert [p for p, _ in server.requests] == ["/retina.onnx", "/ff/retina.hash"]
    assert {p.entry.name: p.status for p in reg.verify(load=False)} == {"insight": "ok", "fusion": "ok", "copy": "ok"}


def test_non_commercial_pull_needs_consent_or_yes(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = registry(tmp_path, mirrored("nc", RETINA, [f"{server.url}/retina.onnx"], nc=True))
    args = ["models", "--manifest", str(reg.manifest), "--models-dir", str(reg.models_dir), "pull", "nc"]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: a script must say --yes
    assert cli.main(args) == 2
    assert "pass --yes" in capsys.readouterr().err and not server.requests
    monkeypatch.setattr("sys.stdin", type("Tty", (io.StringIO,), {"isatty": lambda self: True})("n\n"))
    assert cli.main(args) == 1 and not server.requests  # answered no
    assert cli.main([*args, "--yes"]) == 0
    assert "NON-COMMERCIAL" in capsys.readouterr().err and reg.problem(reg.entry("nc")).status == "ok"


def test_models_list_does_not_load_onnxruntime() -> None:
    code = (
        "import sys; from livefuse.cli import main; rc = main(['models', 'list']); "
        "print('ORT', 'onnxruntime' in sys.modules, rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert "ORT False 0" in done.stdout, done.stdout + done.stderr
    assert "inswapper_128 " in done.stdout and "verified" in done.stdout
