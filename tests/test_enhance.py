"""Face enhance: FFHQ alignment and paste-back of identity restorers, strength blending, CodeFormer's
fidelity input, template choice and the missing-model error. ONNX stand-ins with the real models' I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import models_builder as mb
import numpy as np
import pytest

from livefuse.engine import Engine
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError
from livefuse.faces.align import invert_affine
from livefuse.faces.detect import StillFaceFinder
from livefuse.faces.paste import box_mask
from livefuse.frame import Face, Frame
from livefuse.presets import validate_params
from livefuse.sources.demo import DemoSource
from livefuse.stages.base import StageContext
from livefuse.stages.enhance import SPEC, EnhanceStage, model_template

SIZE = (640, 360)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    out = {name: mb.save(mb.enhancer(name), d / f"{name}.onnx") for name in mb.ENHANCERS}
    out["flat"] = mb.save(mb.enhancer("gfpgan_1.4", "flat"), d / "flat.onnx")
    return out


@pytest.fixture(scope="module")
def scene(engine: Engine) -> tuple[np.ndarray, Face]:
    image = DemoSource(SIZE, 30.0, paced=False).render(0.0)
    face = StillFaceFinder(engine).largest(image)
    assert face is not None
    return image, face


def make_stage(engine: Engine, model: Path | str, **params: Any) -> EnhanceStage:
    return EnhanceStage(validate_params(SPEC, {"model": str(model), **params}, "test"),
                        StageContext(engine=engine, size=SIZE, fps=30.0))


def _full_weight(stage: EnhanceStage, image: np.ndarray, face: Face) -> np.ndarray:
    _, matrix = stage.enhancer.enhance(image, face.landmarks5)
    mask = box_mask(stage.enhancer.size, stage.params["mask_blur"])
    return cv2.warpAffine(mask, invert_affine(matrix), SIZE)


@pytest.mark.parametrize("name", list(mb.ENHANCERS))
def test_identity_enhancer_returns_the_input(engine: Engine, models: dict[str, Path], scene: tuple[np.ndarray, Face],
                                             name: str) -> None:
    """Align to FFHQ 512 (scaled to 256 for GPEN 256), restore with an identity model, paste back at strength 1:
    where the mask is full the mean error is 0.08 grey levels (0.15 for GPEN 256) and the 99th percentile 1;
    the test allows a mean of 0.5 and p99 of 2. Where the mask is 0 the frame is byte-identical."""
    image, face = scene
    stage = make_stage(engine, models[name], strength=1.0, template="ffhq_512")
    assert stage.enhancer.size == mb.ENHANCERS[name]
    frame = Frame(0, 0, 0, image.copy(), faces=[face])
    stage.process(frame)
    weight = _full_weight(stage, image, face)
    diff = np.abs(frame.image.astype(np.int16) - image.astype(np.int16))
    assert (weight > 0.999).sum() > 3000
    assert diff[weight > 0.999].mean() < 0.5, diff[weight > 0.999].mean()
    assert np.percentile(diff[weight > 0.999], 99) <= 2
    assert np.array_equal(frame.image[weight == 0], image[weight == 0])


def test_strength_zero_leaves_the_frame_unchanged(engine: Engine, models: dict[str, Path],
                                                  scene: tuple[np.ndarray, Face]) -> None:
    image, face = scene
    stage = make_stage(engine, models["flat"], strength=0.0)
    frame = Frame(0, 0, 0, image.copy(), faces=[face])
    stage.process(frame)
    assert np.array_equal(frame.image, image)


def test_strength_blends_the_restored_face(engine: Engine, models: dict[str, Path],
                                           scene: tuple[np.ndarray, Face]) -> None:
    """A model that returns mid-grey, at strength 0.5: the face lands halfway between itself and grey."""
    image, face = scene
    stage = make_stage(engine, models["flat"], strength=1.0)
    full = _full_weight(stage, image, face) > 0.999
    stage.update({"strength": 0.5})
    frame = Frame(0, 0, 0, image.copy(), faces=[face])
    stage.process(frame)
    want = image.astype(np.float32) * 0.5 + 128 * 0.5
    assert np.abs(frame.image[full] - want[full]).max() <= 1.0


def test_codeformer_gets_its_fidelity_weight(engine: Engine, models: dict[str, Path]) -> None:
    stage = make_stage(engine, models["codeformer"], fidelity=0.7)
    weight = stage.enhancer._weight()
    assert weight.dtype == np.float64 and weight.shape == (1,) and weight[0] == pytest.approx(0.7)
    stage.update({"fidelity": 0.2})
    assert stage.enhancer._weight()[0] == pytest.approx(0.2)


def test_template_follows_the_manifest(engine: Engine) -> None:
    assert model_template(engine, "gpen_bfr_256", "auto") == "arcface_128"  # FaceFusion aligns GPEN 256 so
    assert model_template(engine, "gfpgan_1.4", "auto") == "ffhq_512"
    assert model_template(engine, "some/file.onnx", "auto") == "ffhq_512"
    assert model_template(engine, "gfpgan_1.4", "arcface_128") == "arcface_128"


@pytest.mark.parametrize(("name", "non_commercial"), [("gfpgan_1.4", False), ("codeformer", True),
                                                      ("gpen_bfr_512", True)])
def test_missing_model_names_it_and_the_pull_command(tmp_path: Path, name: str, non_commercial: bool) -> None:
    empty = Engine(provider="cpu", cache_dir=tmp_path / "cache", registry=Registry(models_dir=tmp_path / "none"))
    with pytest.raises(ModelError) as info:
        make_stage(empty, name)
    message = str(info.value)
    assert f"livefuse models pull {name}" in message and "enhance" in message
    assert ("non-commercial" in message) == non_commercial
