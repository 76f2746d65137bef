"""A model file changed on disk while the daemon runs: loading it again is refused, the running chain goes on."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import onnx
import pytest
from browser_fixtures import daemons_fixture, http_json

from livefuse.engine.registry import Registry

__all__ = ["daemons_fixture"]  # the `daemons` fixture

SHARED_RETINAFACE = Path(__file__).resolve().parents[2] / "shared" / "models" / "retinaface_mobilenet0.25_640.onnx"

pytestmark = pytest.mark.skipif(not SHARED_RETINAFACE.is_file(), reason="needs ../shared/models (RetinaFace)")


def tamper_keeping_size_and_mtime(path: Path) -> None:
    """Change one weight of the model in place: it still loads, it just computes something else. Size and
    mtime are put back, as a copy that preserves timestamps would leave them."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    biggest = max(onnx.load(str(path)).graph.initializer, key=lambda t: len(t.raw_data))
    offset = data.find(biggest.raw_data)
    assert offset > 0
    data[offset + len(biggest.raw_data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    onnx.load(str(path))  # still a valid model


@pytest.mark.slow
def test_a_model_changed_on_disk_is_refused_with_both_hashes_and_the_chain_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daemons: type
) -> None:
    models = tmp_path / "models"
    entry = Registry(models_dir=models).entry("retinaface_mobilenet0.25")  # pulled (yunet is bundled)
    model = models / entry.name / entry.version / Path(entry.file).name
    model.parent.mkdir(parents=True)
    shutil.copy(SHARED_RETINAFACE, model)
    presets = tmp_path / "presets"
    presets.mkdir()
    for name, score in (("faces-a", 0.5), ("faces-b", 0.6)):
        (presets / f"{name}.toml").write_text(
            f'name = "{name}"\n[[stages]]\ntype = "face"\ndetector = "retinaface"\nmin_score = {score}\n'
        )
    monkeypatch.setenv("LIVEFUSE_MODELS_DIR", str(models))
    monkeypatch.setenv("LIVEFUSE_PRESETS", str(presets))

    daemon = daemons("faces-a", size=(160, 120), fps=10.0).start()  # the model loaded and checked: it is intact
    assert http_json("GET", daemon.url + "/api/status")[1]["preset"] == "faces-a"
    tamper_keeping_size_and_mtime(model)
    altered = hashlib.sha256(model.read_bytes()).hexdigest()
    assert altered != entry.sha256

    before = http_json("GET", daemon.url + "/api/status")[1]["stats"]["frames_out"]
    status, body = http_json("PUT", daemon.url + "/api/preset", {"name": "faces-b"})
    print(f"\nPUT /api/preset -> {status}: {body['error']}")
    assert status == 400, body
    assert altered in body["error"] and entry.sha256 in body["error"], body  # both hashes, named
    assert "retinaface_mobilenet0.25" in body["error"]
    time.sleep(1.5)
    after = http_json("GET", daemon.url + "/api/status")[1]
    # the running chain (its model loaded before the change) goes on
    assert after["preset"] == "faces-a"
    assert after["stats"]["frames_out"] >= before + 8, (before, after["stats"]["frames_out"])
    assert not after["stats"]["stage_errors"], after["stats"]["stage_errors"]
    daemon.stop()
