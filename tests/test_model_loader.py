"""One model loader and one path rule for every stage (`vision/models.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from livefuse.engine import Engine
from livefuse.engine.graph_builder import FLOAT, GraphBuilder
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError
from livefuse.faces import models as face_models
from livefuse.stage import preset_file
from livefuse.vision import models

MANIFEST = """
[[model]]
name = "nc_model"
version = "1.0.0"
file = "nc_model.onnx"
sha256 = "{sha}"
size = 0
license = "research only"
non_commercial = true
url = "https://example.invalid/nc_model.onnx"
origin = "a test entry"
inputs = [ {{ name = "x", shape = [1], dtype = "float32" }} ]
outputs = [ {{ name = "y", shape = [1], dtype = "float32" }} ]
"""


def tiny_model() -> onnx.ModelProto:
    b = GraphBuilder("tiny")
    b.op("Neg", b.input("x", FLOAT, [1]), out="y")
    b.output("y", FLOAT, [1])
    return b.build()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(MANIFEST.format(sha="0" * 64))
    registry = Registry(manifest=manifest, models_dir=tmp_path / "pulled")
    return Engine(provider="cpu", cache_dir=tmp_path / "cache", registry=registry)


def test_one_path_rule_for_everything_a_preset_names(tmp_path: Path) -> None:
    assert models.model_path("m.onnx", tmp_path) == preset_file("m.onnx", tmp_path) == tmp_path / "m.onnx"
    assert models.model_path("~/m.onnx", tmp_path) == Path("~/m.onnx").expanduser()
    assert models.model_path(str(tmp_path / "a" / "m.onnx"), "/elsewhere") == tmp_path / "a" / "m.onnx"
    assert models.model_path("m.onnx", None) == Path("m.onnx")
    # The face stages import the same functions: one loader, not a second copy.
    assert face_models.load_session is models.load_session and face_models.resolve_path is models.model_path
    assert face_models.is_path is models.is_path


def test_a_file_relative_to_the_preset_loads(engine: Engine, tmp_path: Path) -> None:
    preset_dir = tmp_path / "preset"
    preset_dir.mkdir()
    onnx.save(tiny_model(), str(preset_dir / "tiny.onnx"))
    for session in (models.load_model(engine, "face_landmark", "tiny.onnx", preset_dir, where="face stage: model"),
                    models.load_session(engine, "tiny.onnx", stage="swap", field="model", base=preset_dir)):
        assert session.run({"x": np.array([2.0], np.float32)})["y"][0] == -2.0


def test_a_missing_file_names_it_and_what_to_do(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as with_default:
        models.load_model(engine, "face_landmark", "gone.onnx", tmp_path, where="face stage: model")
    assert str(with_default.value) == (f"face stage: model = 'gone.onnx': no such file ({tmp_path / 'gone.onnx'}); "
                                       f"give the path of an .onnx file, or leave it empty to use the "
                                       f"'face_landmark' model")
    with pytest.raises(ModelError, match=r"stage 'swap': model = 'gone\.onnx': no such file .*`livefuse models list`"):
        models.load_session(engine, "gone.onnx", stage="swap", field="model", base=tmp_path)


def test_a_missing_manifest_model_says_how_to_pull_it_and_its_licence(engine: Engine) -> None:
    with pytest.raises(ModelError) as info:
        models.load_session(engine, "nc_model", stage="swap", field="model")
    message = str(info.value)
    assert message.startswith("stage 'swap': model = 'nc_model' needs model 'nc_model': ")
    assert "livefuse models pull nc_model" in message and "non-commercial" in message
    with pytest.raises(ModelError, match=r"2 models are missing:\n  stage 'swap': model .*\n  stage 'swap': other"):
        models.load_sessions(engine, {"model": "nc_model", "other": "nc_model"}, stage="swap")


def test_a_bundled_model_is_found_by_name_when_the_manifest_does_not_list_it(engine: Engine) -> None:
    session = models.load_model(engine, "face_landmark")  # this test manifest lists only nc_model
    assert session.source.path.name == "face_landmark.onnx"
    assert models.model_file(engine, "selfie_segmentation").name == "selfie_segmentation.onnx"
    with pytest.raises(ModelError, match=r"neither in models/manifest\.toml nor bundled"):
        models.load_model(engine, "no_such_model")
