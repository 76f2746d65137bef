"""`models optimize`: simplified, FP16 and INT8 variants of a real detector, compared with FP32.

Measured on skimage's astronaut with RetinaFace MobileNet-0.25 (2-core CPU, onnxruntime 1.31):
- slim: bit-identical outputs;
- FP16 (keep_io_types): max |Δscore| 1.8e-3, max |Δloc| 0.074, max |Δlandmark| 0.14 (encoded units);
  at the face anchor |Δscore| < 1e-6 and |Δloc| 1.3e-3;
- INT8 (QDQ, per-tensor: the opset-9 graph cannot be lifted to 13 for per-channel; 6 calibration images):
  face score 0.996 vs 1.000, |Δloc| 0.10 at the face anchor, mean |Δscore| over 16800 anchors ~1e-3,
  max 0.14 on background anchors.
The asserted tolerances leave about 2x headroom over these figures.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from livefuse.commands import models as cli
from livefuse.engine import Engine
from livefuse.engine.optimize import image_tensor, metadata
from livefuse.engine.registry import Registry
from livefuse.errors import UserError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"
RETINA = SHARED / "retinaface_mobilenet0.25_640.onnx"

pytestmark = pytest.mark.skipif(not RETINA.is_file(), reason=f"real test model not found in {SHARED}")

MANIFEST = """[[model]]
name = "retina"
version = "1.0.0"
file = "retina.onnx"
sha256 = "{sha}"
size = {size}
license = "MIT"
url = ""
origin = "test copy"
inputs = [ {{ name = "input0", shape = [1, 3, 640, 640], dtype = "float32" }} ]
outputs = [ {{ name = "output0", shape = [1, 16800, 4], dtype = "float32" }} ]
[model.preprocess]
color = "BGR"
layout = "NCHW"
mean = [104.0, 117.0, 123.0]
std = [1.0, 1.0, 1.0]
"""


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, Path, dict[str, Path]]:
    data = pytest.importorskip("skimage.data")
    tmp = tmp_path_factory.mktemp("opt")
    repo = tmp / "models"
    repo.mkdir()
    shutil.copy(RETINA, repo / "retina.onnx")
    (repo / "manifest.toml").write_text(
        MANIFEST.format(sha=hashlib.sha256(RETINA.read_bytes()).hexdigest(), size=RETINA.stat().st_size)
    )
    cal = tmp / "calibration"
    cal.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry"):
        img = getattr(data, name)()
        cv2.imwrite(str(cal / f"{name}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    args = ["models", "--manifest", str(repo / "manifest.toml"), "--models-dir", str(tmp / "cache")]
    assert cli.main([*args, "optimize", "retina", "--simplify", "--fp16", "--int8", "--calibration", str(cal)]) == 0
    reg = Registry(manifest=repo / "manifest.toml", models_dir=tmp / "cache")
    entry = reg.entry("retina")
    return reg, tmp, {v: reg.variant_path(entry, v) for v in ("slim", "fp16", "int8")}


@pytest.fixture(scope="module")
def outputs(variants: tuple[Registry, Path, dict[str, Path]]) -> dict[str, dict[str, np.ndarray]]:
    from skimage import data

    reg, tmp, paths = variants
    engine = Engine("cpu", cache_dir=tmp / "engine")
    preprocess = reg.entry("retina").preprocess
    assert preprocess is not None
    x = image_tensor(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (1, 3, 640, 640), preprocess)
    result = {
        "fp32": {k: v.copy() for k, v in engine.session(reg.path(reg.entry("retina"))).run({"input0": x}).items()}
    }
    for name, path in paths.items():
        sess = engine.session(path)
        assert sess.input_names == ["input0"] and sess.inputs["input0"][1] == np.float32  # FP32 I/O kept
        result[name] = {k: v.copy() for k, v in sess.run({"input0": x}).items()}
    return result


def test_slim_is_exact(outputs: dict[str, dict[str, np.ndarray]]) -> None:
    for k, v in outputs["fp32"].items():
        np.testing.assert_allclose(outputs["slim"][k], v, atol=1e-5)


def test_fp16_within_tolerance(outputs: dict[str, dict[str, np.ndarray]]) -> None:
    ref, got = outputs["fp32"], outputs["fp16"]
    face = int(ref["572"][0, :, 1].argmax())
    assert np.abs(got["572"] - ref["572"]).max() < 5e-3
    assert np.abs(got["output0"] - ref["output0"]).max() < 0.15
    assert np.abs(got["571"] - ref["571"]).max() < 0.3
    assert abs(got["572"][0, face, 1] - ref["572"][0, face, 1]) < 1e-3
    assert np.abs(got["output0"][0, face] - ref["output0"][0, face]).max() < 5e-3


def test_int8_within_tolerance(outputs: dict[str, dict[str, np.ndarray]]) -> None:
    ref, got = outputs["fp32"], outputs["int8"]
    face = int(ref["572"][0, :, 1].argmax())
    assert got["572"][0, face, 1] > 0.98
    assert np.abs(got["output0"][0, face] - ref["output0"][0, face]).max() < 0.25
    assert np.abs(got["572"] - ref["572"]).mean() < 5e-3
    assert np.abs(got["572"] - ref["572"]).max() < 0.3


def test_variants_carry_metadata_shown_by_info(
    variants: tuple[Registry, Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    reg, _, paths = variants
    for variant, path in paths.items():
        meta = metadata(path)
        assert meta["livefuse.source"].startswith("retina@1.0.0 sha256:")
        assert meta["livefuse.variant"] == variant and meta["livefuse.date"][:2] == "20"
    assert "quantize_static" in metadata(paths["int8"])["livefuse.tool"]
    assert "float16" in metadata(paths["fp16"])["livefuse.tool"]
    assert (
        cli.main(["models", "--manifest", str(reg.manifest), "--models-dir", str(reg.models_dir), "info", "retina"])
        == 0
    )
    out = capsys.readouterr().out
    assert "variant int8:" in out and "livefuse.tool = onnxslim" in out


def test_engine_prefers_fp16_on_gpus_only(variants: tuple[Registry, Path, dict[str, Path]]) -> None:
    reg, _, paths = variants
    source = reg.source("retina")
    assert source.fp16_path == paths["fp16"]
    assert source.variant_for("CUDAExecutionProvider")[0] == paths["fp16"]
    assert source.variant_for("CPUExecutionProvider")[0] == reg.path(reg.entry("retina"))


def test_optimize_argument_errors(variants: tuple[Registry, Path, dict[str, Path]], tmp_path: Path) -> None:
    from livefuse.engine.optimize import optimize

    reg, _, _ = variants
    with pytest.raises(UserError, match="--calibration"):
        optimize(reg, "retina", int8=True)
    with pytest.raises(UserError, match="no images"):
        optimize(reg, "retina", int8=True, calibration=tmp_path)
    with pytest.raises(UserError, match="at least one"):
        optimize(reg, "retina")
