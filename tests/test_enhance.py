"""Face enhance: FFHQ alignment and paste-back of identity restorers, strength blending, CodeFormer's
fidelity input, template choice and the missing-model error. ONNX stand-ins with the real models' I/O."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import models_builder as mb
import numpy as np
import pytest
from conftest import imread
from hand_photos import FACES, hand_in_front

from livefuse.engine import Engine
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError
from livefuse.faces.align import TEMPLATES, invert_affine
from livefuse.faces.carry import Carrier, Job
from livefuse.faces.detect import StillFaceFinder
from livefuse.faces.occlusion import HandOcclusion
from livefuse.faces.paste import box_mask
from livefuse.frame import Face, Frame
from livefuse.presets import validate_params
from livefuse.sources.demo import DemoSource
from livefuse.stage import StageContext
from livefuse.stages.enhance.cpu import EnhanceStage, model_template
from livefuse.stages.enhance.spec import SPEC

SIZE = (640, 360)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    out = {name: mb.save(mb.enhancer(name), d / f"{name}.onnx") for name in mb.ENHANCERS}
    out["flat"] = mb.save(mb.enhancer("gfpgan_1.4", "flat"), d / "flat.onnx")
    out["sharpen"] = mb.save(mb.enhancer("gfpgan_1.4", "sharpen"), d / "sharpen.onnx")
    out["slow"] = mb.save(mb.enhancer("gfpgan_1.4", "slow", convs=2), d / "slow.onnx")
    return out


@pytest.fixture(scope="module")
def scene(engine: Engine) -> tuple[np.ndarray, Face]:
    image = DemoSource(SIZE, 30.0, paced=False).render(0.0)
    face = StillFaceFinder(engine).largest(image)
    assert face is not None
    return image, face


def make_stage(engine: Engine, model: Path | str, **params: Any) -> EnhanceStage:
    """In line on every frame unless told (auto would pick by this machine's speed)."""
    params.setdefault("every", 1)
    return EnhanceStage(
        validate_params(SPEC, {"model": str(model), **params}, "test"), StageContext(engine=engine, size=SIZE, fps=30.0)
    )


def _full_weight(stage: EnhanceStage, image: np.ndarray, face: Face) -> np.ndarray:
    _, matrix = stage.enhancer.enhance(image, face.landmarks5)
    mask = box_mask(stage.enhancer.size, stage.params["mask_blur"])
    return cv2.warpAffine(mask, invert_affine(matrix), SIZE)


@pytest.mark.parametrize("name", list(mb.ENHANCERS))
def test_identity_enhancer_returns_the_input(
    engine: Engine, models: dict[str, Path], scene: tuple[np.ndarray, Face], name: str
) -> None:
    """Align to FFHQ 512 (scaled to 256 for GPEN 256), restore with an identity model, paste back at strength 1:
    where the mask is full the mean error is 0.08 grey levels (0.15 for GPEN 256) and the 99th percentile 1;
    the test allows a mean of 0.5 and p99 of 2. Where the mask is 0 the frame is byte-identical."""
    image, face = scene
    stage = make_stage(engine, models[name], strength=1.0, template="ffhq_512")
    assert stage.enhancer.size == mb.ENHANCERS[name]
    frame = Frame(0, 0, image.copy(), faces=[face])
    stage.process(frame)
    weight = _full_weight(stage, image, face)
    diff = np.abs(frame.image.astype(np.int16) - image.astype(np.int16))
    assert (weight > 0.999).sum() > 3000
    assert diff[weight > 0.999].mean() < 0.5, diff[weight > 0.999].mean()
    assert np.percentile(diff[weight > 0.999], 99) <= 2
    assert np.array_equal(frame.image[weight == 0], image[weight == 0])


def test_strength_zero_leaves_the_frame_unchanged(
    engine: Engine, models: dict[str, Path], scene: tuple[np.ndarray, Face]
) -> None:
    image, face = scene
    stage = make_stage(engine, models["flat"], strength=0.0)
    frame = Frame(0, 0, image.copy(), faces=[face])
    stage.process(frame)
    assert np.array_equal(frame.image, image)


def test_strength_blends_the_restored_face(
    engine: Engine, models: dict[str, Path], scene: tuple[np.ndarray, Face]
) -> None:
    """A model that returns mid-grey, at strength 0.5: the face lands halfway between itself and grey."""
    image, face = scene
    stage = make_stage(engine, models["flat"], strength=1.0)
    full = _full_weight(stage, image, face) > 0.999
    stage.update({"strength": 0.5})
    frame = Frame(0, 0, image.copy(), faces=[face])
    stage.process(frame)
    want = image.astype(np.float32) * 0.5 + 128 * 0.5
    assert np.abs(frame.image[full] - want[full]).max() <= 1.0


def test_codeformer_gets_its_fidelity_weight(engine: Engine, models: dict[str, Path]) -> None:
    stage = make_stage(engine, models["codeformer"], fidelity=0.7)
    weight = stage.enhancer.weight_feed()
    assert weight.dtype == np.float64 and weight.shape == (1,) and weight[0] == pytest.approx(0.7)
    stage.update({"fidelity": 0.2})
    assert stage.enhancer.weight_feed()[0] == pytest.approx(0.2)


def test_template_follows_the_manifest(engine: Engine) -> None:
    assert model_template(engine, "gpen_bfr_256", "auto") == "arcface_128"  # FaceFusion aligns GPEN 256 so
    assert model_template(engine, "gfpgan_1.4", "auto") == "ffhq_512"
    assert model_template(engine, "some/file.onnx", "auto") == "ffhq_512"
    assert model_template(engine, "gfpgan_1.4", "arcface_128") == "arcface_128"


@pytest.mark.parametrize(
    ("name", "non_commercial"), [("gfpgan_1.4", False), ("codeformer", True), ("gpen_bfr_512", True)]
)
def test_missing_model_names_it_and_the_pull_command(tmp_path: Path, name: str, non_commercial: bool) -> None:
    empty = Engine(provider="cpu", cache_dir=tmp_path / "cache", registry=Registry(models_dir=tmp_path / "none"))
    with pytest.raises(ModelError) as info:
        make_stage(empty, name)
    message = str(info.value)
    assert f"livefuse models pull {name}" in message and "enhance" in message
    assert ("non-commercial" in message) == non_commercial


def _moving(engine: Engine, frames: int) -> list[tuple[np.ndarray, Face]]:
    """The demo's moving face, one frame in three (0.1 s apart), with its landmarks."""
    source, finder = DemoSource(SIZE, 30.0, paced=False), StillFaceFinder(engine)
    out = []
    for i in range(frames):
        image = source.render(1.0 + i * 0.1)
        face = finder.largest(image)
        assert face is not None
        out.append((image, Face(box=face.box, score=face.score, landmarks5=face.landmarks5, track_id=1)))
    return out


def _wait_idle(stage: EnhanceStage) -> None:
    carrier = stage._carrier
    assert carrier is not None
    deadline = time.monotonic() + 10.0
    while not carrier.idle() and time.monotonic() < deadline:
        time.sleep(0.002)


def test_carried_detail_follows_a_moving_face(engine: Engine, models: dict[str, Path]) -> None:
    """every = 4 on the demo's moving face (frames 0.1 s apart, so 4 frames are 0.4 s of motion), the restorer
    an unsharp mask whose detail depends on the face: where the restored face is pasted in full, the carried
    frames differ from restoring every frame by at most 3 levels on average (p99 at most 20); the frames
    where a run landed are equal to it."""
    scenes = _moving(engine, 12)
    fresh, carried = make_stage(engine, models["sharpen"], every=1), make_stage(engine, models["sharpen"], every=4)
    means, p99s = [], []
    try:
        for i, (image, face) in enumerate(scenes):
            want, got = Frame(i, 0, image.copy(), faces=[face]), Frame(i, 0, image.copy(), faces=[face])
            fresh.process(want)
            carried.process(got)
            _wait_idle(carried)  # the test waits for each run, so which frame it carries from is known
            if i == 0:
                assert np.array_equal(got.image, image)  # frames never wait: nothing to carry yet
                continue
            full = _full_weight(fresh, image, face) > 0.999
            diff = np.abs(want.image.astype(np.int16) - got.image.astype(np.int16)).max(2)[full]
            if i % 4 == 1:  # the run asked for on the previous frame: its own detail, one frame on
                assert diff.mean() <= 3.0
            means.append(float(diff.mean()))
            p99s.append(float(np.percentile(diff, 99)))
    finally:
        carried.close()
    assert max(means) <= 3.0, means
    assert max(p99s) <= 20, (means, p99s)
    assert np.mean(means) > 0.05  # it is carried, not fresh: the face moved


def test_frames_never_wait_for_a_slow_restorer(engine: Engine, models: dict[str, Path]) -> None:
    """A restorer that takes ~125 ms on this CPU (four frame budgets at 30 fps): with every = 4 no frame takes a
    run's time; auto measures one in-line run, then runs it one frame in >= 4, off the frames' path."""
    image, face = DemoSource(SIZE, 30.0, paced=False).render(0.0), None
    face = StillFaceFinder(engine).largest(image)
    assert face is not None
    stage = make_stage(engine, models["slow"], every=0)
    try:
        assert stage.every() == 1  # auto, not timed yet
        stage.process(Frame(0, 0, image.copy(), faces=[face]))
        run = stage._inline_cost
        assert run is not None and run > 2 / 30
        assert stage.every() >= 4
        took = []
        for i in range(1, 13):
            start = time.perf_counter()
            stage.process(Frame(i, 0, image.copy(), faces=[face]))
            took.append(time.perf_counter() - start)
        assert max(took) < 0.5 * run, (max(took), run)
        _wait_idle(stage)
        assert stage._carrier is not None and stage._carrier.cost is not None
    finally:
        stage.close()


def test_a_turned_face_gets_no_stale_layer() -> None:
    """The carrier hands out a face's layer only while its five points (in aligned space) and its place in the
    frame stay near those the layer was made from."""
    carrier = Carrier(lambda crop: crop, 512)
    try:
        points = TEMPLATES["ffhq_512"] * 512.0
        box = np.array([100.0, 100.0, 300.0, 300.0])
        carrier.submit(Job({7: np.zeros((512, 512, 3), np.uint8)}, {7: points}, {7: box}))
        deadline = time.monotonic() + 5.0
        while not carrier.idle() and time.monotonic() < deadline:
            time.sleep(0.002)
        assert carrier.layer(7, points + 4.0, box + 10.0) is not None  # a small move: carried
        turned = points.copy()
        turned[2, 0] += 0.03 * 512  # the nose 15 px off: the head turned
        assert carrier.layer(7, turned, box) is None
        assert carrier.layer(7, points, box + 60.0) is None  # moved 0.3 of its size in the frame
        assert carrier.layer(8, points, box) is None
    finally:
        carrier.close()


def test_hands_in_front_of_a_face_are_not_restored(engine: Engine, models: dict[str, Path]) -> None:
    """occlusion = "hands" on the tests' real hand in front of a real face, with the flat restorer (mid grey,
    an obvious change): where the hand model's feathered hull is full the hand is the input's within 2
    levels; everywhere the hull does not reach the output is the occlusion-off output, exactly."""
    photo = imread(FACES)
    face = StillFaceFinder(engine).largest(photo)
    assert face is not None
    image, hand, _ = hand_in_front(photo, face)
    given = {"model": str(models["flat"]), "occlusion": "hands", "every": 1}
    stage = EnhanceStage(
        validate_params(SPEC, given, "test"),
        StageContext(engine=engine, size=(photo.shape[1], photo.shape[0]), fps=30.0),
    )
    on = Frame(0, 0, image.copy(), faces=[face])
    stage.process(on)
    stage.update({"occlusion": "off"})
    off = Frame(0, 0, image.copy(), faces=[face])
    stage.process(off)
    regions = HandOcclusion(engine).regions(image, [face])
    assert len(regions) == 1
    weight = np.zeros(image.shape[:2], np.float32)
    x1, y1, x2, y2 = regions[0].box
    weight[y1:y2, x1:x2] = regions[0].weight[..., 0]
    kept = hand & (weight >= 1.0)
    assert kept.sum() > 3000
    assert np.abs(off.image.astype(np.int16) - image.astype(np.int16))[kept].mean() > 8  # off: painted over
    assert np.abs(on.image.astype(np.int16) - image.astype(np.int16))[kept].max() <= 2
    assert np.array_equal(on.image[weight == 0], off.image[weight == 0])
