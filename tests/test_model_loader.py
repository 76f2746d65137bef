"""One model loader and one path rule for every stage (`engine/loader.py`, through `StageContext`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import onnx
import pytest

from livefuse.engine import Engine
from livefuse.engine import loader as models
from livefuse.engine.graph_builder import FLOAT, GraphBuilder
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError, PresetError
from livefuse.paths import names_a_file, preset_file
from livefuse.presets import resolve_preset
from livefuse.stage import StageContext

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


def context(engine: Engine, preset_dir: Path | None) -> StageContext:
    return StageContext(engine=engine, size=(64, 48), fps=30.0, preset_dir=preset_dir)


def test_one_path_rule_for_everything_a_preset_names(engine: Engine, tmp_path: Path) -> None:
    assert context(engine, tmp_path).file("m.onnx") == preset_file("m.onnx", tmp_path) == tmp_path / "m.onnx"
    assert preset_file("~/m.onnx", tmp_path) == Path("~/m.onnx").expanduser()
    assert preset_file(str(tmp_path / "a" / "m.onnx"), "/elsewhere") == tmp_path / "a" / "m.onnx"
    assert context(engine, None).file("m.onnx") == Path("m.onnx")


def test_one_rule_tells_a_file_from_a_name() -> None:
    assert names_a_file("m.onnx", ".onnx") and names_a_file("dir/m", ".onnx") and not names_a_file("m", ".onnx")
    assert models.is_model_file("a/b") and not models.is_model_file("inswapper_128@1.0.0")
    assert names_a_file("my.toml", ".toml") and not names_a_file("anonymise", ".toml")
    with pytest.raises(PresetError, match="preset file not found"):
        resolve_preset("sub/none")  # a folder in it: a file, not a preset name


def test_a_file_relative_to_the_preset_loads(engine: Engine, tmp_path: Path) -> None:
    preset_dir = tmp_path / "preset"
    preset_dir.mkdir()
    onnx.save(tiny_model(), str(preset_dir / "tiny.onnx"))
    stage = context(engine, preset_dir)
    for session in (
        stage.model("tiny.onnx", default="face_landmark", where="face stage: model"),
        stage.model("tiny.onnx", where="stage 'swap': model"),
    ):
        assert session.run({"x": np.array([2.0], np.float32)})["y"][0] == -2.0


def test_a_missing_file_names_it_and_what_to_do(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as with_default:
        context(engine, tmp_path).model("gone.onnx", default="face_landmark", where="face stage: model")
    assert str(with_default.value) == (
        f"face stage: model = 'gone.onnx': no such file ({tmp_path / 'gone.onnx'}); "
        f"give the path of an .onnx file, or leave it empty to use the "
        f"'face_landmark' model"
    )
    with pytest.raises(ModelError, match=r"stage 'swap': model = 'gone\.onnx': no such file .*`livefuse models list`"):
        context(engine, tmp_path).model("gone.onnx", where="stage 'swap': model")


def test_a_missing_manifest_model_says_how_to_pull_it_and_its_licence(engine: Engine) -> None:
    with pytest.raises(ModelError) as info:
        context(engine, None).model("nc_model", where="stage 'swap': model")
    message = str(info.value)
    assert message.startswith("stage 'swap': model = 'nc_model' needs model 'nc_model': ")
    assert "livefuse models pull nc_model" in message and "non-commercial" in message
    with pytest.raises(ModelError, match=r"2 models are missing:\n  stage 'swap': model .*\n  stage 'swap': other"):
        models.all_models(
            {
                field: partial(models.open_model, engine, "nc_model", where=f"stage 'swap': {field}")
                for field in ("model", "other")
            }
        )


def test_a_bundled_model_is_found_by_name_when_the_manifest_does_not_list_it(engine: Engine) -> None:
    session = models.open_model(engine, "face_landmark")  # this test manifest lists only nc_model
    assert session.source.path is not None and session.source.path.name == "face_landmark.onnx"
    assert models.model_file(engine, "selfie_segmentation").name == "selfie_segmentation.onnx"
    with pytest.raises(ModelError, match=r"neither in models/manifest\.toml nor bundled"):
        models.open_model(engine, "no_such_model")
