"""Face swap: paste-back geometry, the stage end to end through a preset and the pipeline, face selection,
run-time source changes and the missing-model error. Uses ONNX stand-ins with the real models' I/O."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import models_builder as mb
import numpy as np
import onnx
import pytest
from conftest import imread
from hand_photos import HAND_ON_CHEEK, THUMB_AND_LITTLE_TIPS, hand_in_front, weight_map
from onnx import numpy_helper

from livefuse.engine import Engine
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError, PresetError, UserError
from livefuse.faces.align import estimate_affine, invert_affine, warp_face
from livefuse.faces.detect import StillFaceFinder
from livefuse.faces.embedding import normalise
from livefuse.faces.models import last_initializer
from livefuse.faces.occlusion import HandOcclusion
from livefuse.faces.paste import box_mask, match_colour, paste_back, paste_region
from livefuse.faces.regions import NAMES, PARTS, contour, keep_region, lip_polygon
from livefuse.frame import Face, Frame
from livefuse.pipeline import Pipeline
from livefuse.presets import PRESETS_DIR, load_preset, parse_preset, validate_params
from livefuse.sources.base import Pacer, Source
from livefuse.sources.demo import DemoSource, astronaut_bgr
from livefuse.stage import StageContext
from livefuse.stages.swap.cpu import SwapStage
from livefuse.stages.swap.spec import SPEC
from livefuse.wiring import build_chain

SIZE = (640, 360)
FPS = 30.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "arcface": mb.save(mb.arcface(), d / "arcface_w600k_r50.onnx"),
        "identity": mb.save(mb.inswapper("identity"), d / "inswapper_identity.onnx"),
        "tint": mb.save(mb.inswapper("tint"), d / "inswapper_tint.onnx"),
        "tint_fp16": mb.save(mb.inswapper("tint", fp16=True), d / "inswapper_tint_fp16.onnx"),
        "parser": mb.save(mb.face_parser(), d / "bisenet_standin.onnx"),
    }


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def finder(engine: Engine) -> StillFaceFinder:
    return StillFaceFinder(engine)


def make_stage(engine: Engine, models: dict[str, Path], swapper: str = "tint", **params: Any) -> SwapStage:
    given = {"model": str(models[swapper]), "arcface_model": str(models["arcface"]), **params}
    return SwapStage(validate_params(SPEC, given, "test"), StageContext(engine=engine, size=SIZE, fps=FPS))


def test_paste_back_of_an_identity_swap_returns_the_input(engine: Engine, finder: StillFaceFinder) -> None:
    """Warp to the 128 crop, paste straight back: exact outside the crop, close inside.

    Measured on DemoSource frames at 640x360 (the face is ~1.3x upscaled into the crop): mean absolute
    error 0.70-0.80 grey levels and 99th percentile 4-5 where the mask is fully on (bounds: 1.0 and 6).
    A face larger than the 128-px crop loses detail instead (1280x720: mean ~1.3, p99 ~8).
    """
    mask = box_mask(128, 0.3)
    for t in (0.0, 2.0):
        image = DemoSource(SIZE, FPS, paced=False).render(t)
        face = finder.largest(image)
        assert face is not None
        crop, matrix = warp_face(image, face.landmarks5, "arcface_128", 128)
        out = image.copy()
        x1, y1, x2, y2 = paste_back(out, crop, mask, matrix)
        diff = np.abs(out.astype(np.int16) - image.astype(np.int16))
        weight = cv2.warpAffine(mask, invert_affine(matrix), SIZE)
        full = weight > 0.999
        assert full.sum() > 2000
        assert diff[full].mean() < 1.0, diff[full].mean()
        assert np.percentile(diff[full], 99) <= 6
        outside = np.ones(image.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        assert np.array_equal(out[outside], image[outside])
        assert np.array_equal(out[weight == 0], image[weight == 0])


def test_identity_swapper_stage_changes_little_and_only_inside(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    stage = make_stage(engine, models, "identity")
    stage.set_source_face(astronaut_bgr())
    image = DemoSource(SIZE, FPS, paced=False).render(0.0)
    face = finder.largest(image)
    assert face is not None
    frame = Frame(0, 0, image.copy(), faces=[face])
    stage.process(frame)
    diff = np.abs(frame.image.astype(np.int16) - image.astype(np.int16))
    _, _, matrix = stage.swapper.swap(image, face.landmarks5, stage._latent)  # type: ignore[arg-type]
    x1, y1, x2, y2 = paste_region(image.shape, 128, matrix)
    assert diff[y1:y2, x1:x2].mean() < 1.5  # identity + colour matching of identical statistics
    diff[y1:y2, x1:x2] = 0
    assert diff.max() == 0


def test_latent_is_the_embedding_through_emap_normalised(engine: Engine, models: dict[str, Path]) -> None:
    stage = make_stage(engine, models, "tint_fp16")
    emap = mb.emap_of(mb.inswapper("tint", fp16=True))
    assert np.array_equal(last_initializer(stage.swapper.session), emap)
    emb = np.random.default_rng(0).normal(size=512).astype(np.float32)
    want = emb @ emap
    assert np.allclose(stage.swapper.latent(emb), want / np.linalg.norm(want), atol=1e-6)


def _preset(tmp_path: Path, models: dict[str, Path], source: Path, swapper: str = "tint") -> Path:
    text = f'''
name = "swap-test"
[[stages]]
type = "face"
landmarks = true
[[stages]]
type = "swap"
model = "{models[swapper]}"
arcface_model = "{models["arcface"]}"
source_image = "{source.name}"
'''
    path = tmp_path / "swap-test.toml"
    path.write_text(text)
    return path


class RenderSource(Source):
    """n DemoSource frames, frame seq -> render(seq / FPS), paced at 15 fps so few are dropped."""

    def __init__(self, n: int) -> None:
        self.demo = DemoSource(SIZE, FPS, paced=False)
        self.description, self.size, self.fps = "demo", SIZE, FPS
        self.n, self.i = n, 0
        self.pacer = Pacer(15.0)

    def read(self) -> np.ndarray | None:
        if self.i >= self.n:
            return None
        self.pacer.wait()
        self.i += 1
        return self.demo.render((self.i - 1) / FPS)

    def close(self) -> None:
        pass


def test_swap_stage_end_to_end_through_preset_and_pipeline(
    tmp_path: Path, engine: Engine, models: dict[str, Path], finder: StillFaceFinder, memory_sink: Any
) -> None:
    """face -> swap built from a preset, run by the Pipeline on DemoSource frames: the face changes, the rest
    of the frame is byte-identical."""
    source = tmp_path / "source.png"
    cv2.imwrite(str(source), astronaut_bgr())
    preset = load_preset(str(_preset(tmp_path, models, source)))
    chain = build_chain(preset, StageContext(engine=engine, size=SIZE, fps=FPS, preset_dir=tmp_path))
    sink = memory_sink()
    asyncio.run(asyncio.wait_for(Pipeline(RenderSource(10), chain, [sink], fps=FPS).run(), 120))
    chain.close()
    assert len(sink.seqs) >= 3 and not chain.stats.stage_errors
    demo = DemoSource(SIZE, FPS, paced=False)
    for seq, out in zip(sink.seqs, sink.images, strict=True):
        original = demo.render(seq / FPS)
        face = finder.largest(original)
        assert face is not None
        _, matrix = warp_face(original, face.landmarks5, "arcface_128", 128)
        x1, y1, x2, y2 = paste_region(original.shape, 128, matrix)
        diff = np.abs(out.astype(np.int16) - original.astype(np.int16))
        core = face.box.astype(int)
        cx, cy = (core[0] + core[2]) // 2, (core[1] + core[3]) // 2
        assert diff[cy - 10 : cy + 10, cx - 10 : cx + 10].mean() > 8  # the face itself was repainted
        margin = 12  # the tracked (smoothed) face may sit a few px from a fresh detection
        diff[max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin] = 0
        assert diff.max() == 0


def test_set_source_face_at_run_time_changes_the_result(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    stage = make_stage(engine, models, "tint")
    image = DemoSource(SIZE, FPS, paced=False).render(0.5)
    face = finder.largest(image)
    assert face is not None
    untouched = Frame(0, 0, image.copy(), faces=[face])
    stage.process(untouched)  # no source yet: passes through
    assert np.array_equal(untouched.image, image)
    outs = []
    for source in (astronaut_bgr(), np.ascontiguousarray(astronaut_bgr()[:, :, ::-1])):
        stage.set_source_face(source)
        frame = Frame(0, 0, image.copy(), faces=[face])
        stage.process(frame)
        outs.append(frame.image)
    assert np.abs(outs[0].astype(np.int16) - outs[1].astype(np.int16)).mean() > 0.05
    with pytest.raises(UserError, match="no face found"):
        stage.set_source_face(np.full((300, 300, 3), 128, np.uint8))


def _two_faces(finder: StillFaceFinder) -> tuple[np.ndarray, list[Face], np.ndarray]:
    """A frame with a large astronaut (left) and a smaller, colour-swapped one (right), and that second look."""
    photo = astronaut_bgr()
    other = np.ascontiguousarray(photo[:, :, ::-1])
    frame = np.full((420, 840, 3), 60, np.uint8)
    frame[:420, :420] = cv2.resize(photo, (420, 420))
    frame[60:360, 480:780] = cv2.resize(other, (300, 300))
    faces: list[Face] = []
    for x0, y0, side in ((0, 0, 420), (480, 60, 300)):  # detect on each photo: BlazeFace wants big faces
        face = finder.largest(np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side]))
        assert face is not None
        shift = np.array([x0, y0], np.float32)
        faces.append(
            Face(
                box=face.box + np.tile(shift, 2),
                score=face.score,
                landmarks5=face.landmarks5 + shift,
                track_id=len(faces) + 1,
            )
        )
    return frame, faces, other


def _changed(before: np.ndarray, after: np.ndarray, face: Face) -> bool:
    x1, y1, x2, y2 = face.box.astype(int)
    return bool(np.abs(after[y1:y2, x1:x2].astype(np.int16) - before[y1:y2, x1:x2].astype(np.int16)).mean() > 2)


@pytest.mark.parametrize(
    ("mode", "expected"), [("all", (True, True)), ("largest", (True, False)), ("similar", (False, True))]
)
def test_face_selection(
    tmp_path: Path,
    engine: Engine,
    models: dict[str, Path],
    finder: StillFaceFinder,
    mode: str,
    expected: tuple[bool, bool],
) -> None:
    image, faces, other = _two_faces(finder)
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), other)
    stage = make_stage(engine, models, "tint", faces=mode, reference_image=str(reference), colour_match=False)
    stage.set_source_face(astronaut_bgr())
    frame = Frame(0, 0, image.copy(), faces=list(faces))
    stage.process(frame)
    assert (_changed(image, frame.image, faces[0]), _changed(image, frame.image, faces[1])) == expected


def test_similar_picks_by_cosine_and_respects_the_threshold(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    image, faces, _ = _two_faces(finder)
    stage = make_stage(engine, models, "tint", faces="similar", colour_match=False)
    stage.set_source_face(astronaut_bgr())
    frame = Frame(0, 0, image.copy(), faces=list(faces))
    stage.process(frame)  # no reference yet: nothing is swapped
    assert np.array_equal(frame.image, image)
    stage.set_reference_face(astronaut_bgr())
    ref = stage._reference
    assert ref is not None
    sims = [float(normalise(stage.arcface.embed(image, f.landmarks5)) @ ref) for f in faces]
    assert sims[0] > sims[1]  # the stand-in recogniser tells the colour-swapped face apart
    frame = Frame(0, 0, image.copy(), faces=list(faces))
    stage.process(frame)
    assert _changed(image, frame.image, faces[0]) and not _changed(image, frame.image, faces[1])
    stage.update({"min_similarity": min(1.0, sims[0] + 0.01)})  # nobody is similar enough now
    frame = Frame(0, 0, image.copy(), faces=list(faces))
    stage.process(frame)
    assert np.array_equal(frame.image, image)


def test_missing_model_names_it_and_the_pull_command(tmp_path: Path, models: dict[str, Path]) -> None:
    empty = Engine(provider="cpu", cache_dir=tmp_path / "cache", registry=Registry(models_dir=tmp_path / "none"))
    context = StageContext(engine=empty, size=SIZE, fps=FPS)
    with pytest.raises(ModelError) as info:
        SwapStage(validate_params(SPEC, {"arcface_model": str(models["arcface"])}, "test"), context)
    message = str(info.value)
    assert "inswapper_128" in message and "livefuse models pull inswapper_128" in message
    assert "non-commercial" in message
    with pytest.raises(ModelError) as both:  # neither pulled: one error lists both, so one round of pulls fixes it
        SwapStage(validate_params(SPEC, {}, "test"), context)
    assert "2 models are missing" in str(both.value)
    assert "models pull inswapper_128" in str(both.value) and "models pull w600k_r50" in str(both.value)
    with pytest.raises(ModelError, match="livefuse models pull w600k_r50"):
        SwapStage(validate_params(SPEC, {"model": str(models["tint"])}, "test"), context)
    with pytest.raises(ModelError, match=r"nowhere\.onnx"):
        SwapStage(validate_params(SPEC, {"model": str(tmp_path / "nowhere.onnx")}, "test"), context)


@pytest.mark.parametrize("name", ["face-swap", "face-swap-enhance", "face-swap-talk"])
def test_shipped_swap_presets_say_which_model_to_pull(tmp_path: Path, name: str) -> None:
    preset = parse_preset((PRESETS_DIR / f"{name}.toml").read_text(), PRESETS_DIR / f"{name}.toml")
    empty = Engine(provider="cpu", cache_dir=tmp_path / "cache", registry=Registry(models_dir=tmp_path / "none"))
    with pytest.raises(ModelError, match=r"livefuse models pull inswapper_128"):
        build_chain(preset, StageContext(engine=empty, size=SIZE, fps=FPS, preset_dir=PRESETS_DIR))


def _polygon_mask(shape: tuple[int, ...], poly: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return mask.astype(bool)


def _swapped_today(stage: SwapStage, image: np.ndarray, face: Face) -> np.ndarray:
    """The swap with no mask settings, composed by hand from the parts it had before they existed."""
    latent = stage._latent
    assert latent is not None
    swapped, crop, matrix = stage.swapper.swap(image, face.landmarks5, latent)
    mask = box_mask(128, 0.3)
    out = image.copy()
    paste_back(out, match_colour(swapped, crop, mask), mask, matrix, 1.0)
    return out


def _processed(stage: SwapStage, image: np.ndarray, face: Face) -> np.ndarray:
    frame = Frame(0, 0, image.copy(), faces=[face])
    stage.process(frame)
    return frame.image


def test_mask_settings_off_are_byte_identical_to_the_plain_swap(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    """Defaults, and every mask setting switched on then off again live: the output is the plain swap's."""
    image = DemoSource(SIZE, FPS, paced=False).render(0.0)
    face = finder.largest(image)
    assert face is not None and face.mesh is not None
    stage = make_stage(engine, models, "tint")
    stage.set_source_face(astronaut_bgr())
    today = _swapped_today(stage, image, face)
    assert np.array_equal(_processed(stage, image, face), today)
    stage.update({"keep_regions": ["eyes", "mouth"], "mask_padding": [10, 5, 0, 5]})
    assert not np.array_equal(_processed(stage, image, face), today)
    stage.update({"keep_regions": [], "mask_padding": [0, 0, 0, 0]})
    assert np.array_equal(_processed(stage, image, face), today)


def test_mask_padding_keeps_the_padded_band_original(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    """mask_padding = [40, 0, 0, 0]: the top of the crop (the forehead) is the input's, exactly, where the
    plain swap had painted it (within 1 level: the feather's tail); below the padding the swap is unchanged."""
    image = DemoSource(SIZE, FPS, paced=False).render(0.0)
    face = finder.largest(image)
    assert face is not None
    stage = make_stage(engine, models, "tint", mask_padding=[40, 0, 0, 0], colour_match=False)
    stage.set_source_face(astronaut_bgr())
    out = _processed(stage, image, face)
    stage.update({"mask_padding": [0, 0, 0, 0]})
    plain = _processed(stage, image, face)
    _, _, matrix = stage.swapper.swap(image, face.landmarks5, stage._latent)  # type: ignore[arg-type]
    padded = cv2.warpAffine(box_mask(128, 0.3, (40, 0, 0, 0)), invert_affine(matrix), SIZE)
    full = cv2.warpAffine(box_mask(128, 0.3), invert_affine(matrix), SIZE)
    band = (padded < 1e-3) & (full > 0.999)
    assert band.sum() > 300
    assert np.abs(out.astype(np.int16) - image.astype(np.int16))[band].max() <= 1
    assert np.abs(plain.astype(np.int16) - image.astype(np.int16))[band].mean() > 8  # the swap had painted it
    both = (padded > 0.999) & (full > 0.999)
    assert both.sum() > 1000 and np.array_equal(out[both], plain[both])


def _part_mask(mesh: np.ndarray, part: str, shape: tuple[int, ...], grow: float = 0.0) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    for points, _, hull in PARTS[part]:
        cv2.fillPoly(mask, [np.round(contour(mesh, points, grow, hull)).astype(np.int32)], 1)
    return mask.astype(bool)


def test_keep_regions_keep_exactly_the_parts_asked(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    """Each of eyes, brows, mouth and nose alone: that part (grown by keep_grow) is the input's within 2
    levels, the other parts stay swapped, and outside the kept region's box the output is the plain swap's."""
    image = DemoSource(SIZE, FPS, paced=False).render(0.0)
    face = finder.largest(image)
    assert face is not None and face.mesh is not None
    stage = make_stage(engine, models, "tint", keep_grow=0.3)
    stage.set_source_face(astronaut_bgr())
    plain = _processed(stage, image, face)
    for part in NAMES:
        stage.update({"keep_regions": [part]})
        out = _processed(stage, image, face)
        to_input = np.abs(out.astype(np.int16) - image.astype(np.int16))
        kept = _part_mask(face.mesh, part, image.shape, 0.3)
        assert kept.sum() > 80, part
        assert to_input[kept].max() <= 2, part
        assert np.abs(plain.astype(np.int16) - image.astype(np.int16))[kept].mean() > 8, part  # swap repainted it
        region = keep_region(face.mesh, [part], 0.3, 0.5, image.shape)
        assert region is not None
        weight = np.zeros(image.shape[:2], np.float32)
        x1, y1, x2, y2 = region.box
        weight[y1:y2, x1:x2] = region.weight[..., 0]
        assert np.array_equal(out[weight == 0], plain[weight == 0]), part
        assert ((weight > 0.05) & (weight < 0.95)).sum() > 100, part  # feathered: a soft edge, not a cut
        for other in NAMES:
            elsewhere = _part_mask(face.mesh, other, image.shape) & (weight == 0)
            if other != part and elsewhere.sum() > 50:
                assert to_input[elsewhere].mean() > 8, (part, other)  # still swapped


def test_keep_regions_mouth_is_the_former_mouth_mask(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    """keep_regions = ["mouth"] at keep_grow 0.5: the lips grown by half are the input's (face-swap-talk)."""
    image = DemoSource(SIZE, FPS, paced=False).render(0.0)
    face = finder.largest(image)
    assert face is not None and face.mesh is not None
    stage = make_stage(engine, models, "tint", keep_regions=["mouth"], keep_grow=0.5)
    stage.set_source_face(astronaut_bgr())
    to_input = np.abs(_processed(stage, image, face).astype(np.int16) - image.astype(np.int16))
    lips = _polygon_mask(image.shape, lip_polygon(face.mesh))
    grown = _polygon_mask(image.shape, lip_polygon(face.mesh, 0.5))
    assert grown.sum() > 1.8 * lips.sum() > 270 and to_input[grown].max() <= 2


def test_a_preset_from_before_keep_regions_still_loads_its_mouth_mask(caplog: pytest.LogCaptureFixture) -> None:
    """mouth_mask and mouth_feather (replaced by keep_regions' "mouth", keep_grow and keep_feather) are read as
    what they now say, with a warning naming both; a bad value is refused under the key it now goes to."""
    got = validate_params(SPEC, {"mouth_mask": 0.4, "mouth_feather": 0.3, "keep_regions": ["eyes"]}, "stages[2]")
    assert got["keep_regions"] == ["eyes", "mouth"] and got["keep_grow"] == 0.4 and got["keep_feather"] == 0.3
    assert "mouth_mask" not in got and "mouth_feather" not in got
    assert 'stages[2]: mouth_mask = 0.4 is read as keep_regions with "mouth" and keep_grow = 0.4' in caplog.text
    assert "mouth_feather is read as keep_feather = 0.3" in caplog.text and "update the preset" in caplog.text
    assert validate_params(SPEC, {"mouth_mask": 0.0}, "stages[2]")["keep_regions"] == []
    with pytest.raises(PresetError, match=r"keep_grow = 3"):
        validate_params(SPEC, {"mouth_mask": 3}, "stages[2]")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("keep_regions", ["ears"]),
        ("keep_regions", ["eyes", "eyes"]),
        ("keep_regions", "mouth"),
        ("mask_padding", [10, 0, 0]),
        ("mask_padding", [60, 0, 0, 0]),
        ("mask_padding", [True, 0, 0, 0]),
        ("mask_padding", ["10", 0, 0, 0]),
        ("occlusion", "gloves"),
    ],
)
def test_bad_mask_settings_name_the_field_and_what_is_allowed(field: str, value: Any) -> None:
    with pytest.raises(PresetError, match=rf"{field} = .* expected (a list of|one of)"):
        validate_params(SPEC, {field: value}, "stages[1]")


def test_keep_regions_are_live_and_need_the_mesh(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder, caplog: pytest.LogCaptureFixture
) -> None:
    params = {p.name: p for p in SPEC.params}
    assert all(params[name].live for name in ("keep_regions", "keep_grow", "keep_feather", "mask_padding", "occlusion"))
    image = DemoSource(SIZE, FPS, paced=False).render(0.0)
    face = finder.largest(image)
    assert face is not None
    bare = Face(box=face.box, score=face.score, landmarks5=face.landmarks5, track_id=1)  # no mesh
    stage = make_stage(engine, models, "tint", keep_regions=["mouth", "eyes"])
    stage.set_source_face(astronaut_bgr())
    with_mask = _processed(stage, image, bare)
    stage.update({"keep_regions": []})
    assert np.array_equal(with_mask, _processed(stage, image, bare))  # nothing to keep: the swapped parts stay
    assert "landmarks = true" in caplog.text


DATA = Path(__file__).resolve().parent / "data"


def _hands_and_off(
    engine: Engine, models: dict[str, Path], image: np.ndarray, face: Face
) -> tuple[np.ndarray, np.ndarray]:
    """The stand-in swap of this face with occlusion = "hands", then with occlusion switched off live."""
    stage = make_stage(engine, models, "tint", occlusion="hands")
    stage.set_source_face(astronaut_bgr())
    out = _processed(stage, image, face)
    stage.update({"occlusion": "off"})
    return out, _processed(stage, image, face)


def _repainted(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Where a swap changed the picture by more than 8 levels."""
    return np.abs(out.astype(np.int16) - image.astype(np.int16)).max(2) > 8


def test_hand_in_front_of_a_face_keeps_its_pixels(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    """occlusion = "hands" on a real hand in front of a real face. The hand models' landmarks lie on the hand
    (their hull is >= 85% hand pixels); the hand's pixels where the feathered hull is full are the input's
    within 2 levels; the fist and thumb (the hand beyond 0.3 of its size from the wrist; the forearm is not
    the hand model's) are >= 90% fully kept and >= 97% at least partly; everywhere the hull does not reach,
    the output is the occlusion-off swap's, exactly."""
    photo = imread(DATA / "mediapipe_two_faces.jpg")
    face = finder.largest(photo)
    assert face is not None
    image, hand, wrist = hand_in_front(photo, face)
    out, off = _hands_and_off(engine, models, image, face)
    occlusion = HandOcclusion(engine)
    found = occlusion.hands(image, [face])
    assert len(found) == 1
    points = found[0]
    hull = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(hull, [np.round(cv2.convexHull(points.astype(np.float32))[:, 0]).astype(np.int32)], 1)
    assert (hand & (hull > 0)).sum() >= 0.85 * hull.sum()
    weight = weight_map(occlusion.regions(image, [face]), image.shape)
    swapped = _repainted(off, image)
    assert (hand & swapped).sum() > 2000  # the plain swap paints over the hand: the complaint
    kept = hand & (weight >= 1.0)
    assert np.abs(out.astype(np.int16) - image.astype(np.int16))[kept].max() <= 2
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    size = float(np.ptp(points, axis=0).max())
    fist = hand & (np.hypot(xx - wrist[0], yy - wrist[1]) > 0.3 * size) & (xx <= wrist[0])
    assert fist.sum() > 5000
    assert (fist & (weight >= 1.0)).sum() >= 0.9 * fist.sum()
    assert (fist & (weight > 0)).sum() >= 0.97 * fist.sum()
    assert np.array_equal(out[weight == 0], off[weight == 0])  # the rest of the face is swapped as before
    assert (swapped & (weight == 0)).sum() > 5000


def test_real_photo_of_a_hand_on_a_face_keeps_the_hand(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    """occlusion = "hands" on a real photo (not a composite) of a hand on a face: a woman's "call" gesture,
    the folded fingers over her jaw, the little finger under her chin (tests/data/README.md). The hand
    models find the one hand, its thumb and little fingertips where they are in the photo, its full hull
    over part of the face box; where the hull is full the output is the input within 2 levels, where it
    does not reach the output is the occlusion-off swap's exactly; and the plain swap did repaint most of
    the hull's part of the face (what the test would catch if occlusion did nothing)."""
    image = imread(HAND_ON_CHEEK)
    face = finder.largest(image)
    assert face is not None
    out, off = _hands_and_off(engine, models, image, face)
    occlusion = HandOcclusion(engine)
    found = occlusion.hands(image, [face])
    assert len(found) == 1
    tips = found[0][[4, 20]]
    assert np.hypot(*(tips - np.array(THUMB_AND_LITTLE_TIPS)).T).max() < 10  # on the real thumb and little finger
    weight = weight_map(occlusion.regions(image, [face]), image.shape)
    x1, y1, x2, y2 = face.box.astype(int)
    on_face = np.zeros(image.shape[:2], bool)
    on_face[y1:y2, x1:x2] = True
    kept = weight >= 1.0
    assert (kept & on_face).sum() > 1000  # the hand is in front of the face, not beside it
    swapped = _repainted(off, image)
    assert (swapped & kept).sum() > 2000  # the plain swap paints over the hand: the complaint
    assert (swapped & kept & on_face).sum() >= 0.5 * (kept & on_face).sum()
    assert np.abs(out.astype(np.int16) - image.astype(np.int16))[kept].max() <= 2
    assert np.array_equal(out[weight == 0], off[weight == 0])  # the rest of the face is swapped as before
    assert (swapped & (weight == 0)).sum() > 5000


PARSER_PARTS = {"eyes": (4, 5), "brows": (2, 3), "mouth": (11, 12, 13), "nose": (10,)}


def _where_classes(classes: tuple[int, ...], matrix: np.ndarray, shape: tuple[int, ...], erode: int) -> np.ndarray:
    """The frame pixels whose place in the aligned 128-px crop is (well) inside the stand-in parser's `classes`."""
    grid = np.isin(mb.parser_classes(), classes).astype(np.uint8)
    crop = cv2.resize(grid, (128, 128), interpolation=cv2.INTER_NEAREST)
    if erode:
        crop = cv2.erode(crop, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return cv2.warpAffine(crop, invert_affine(matrix), (shape[1], shape[0]), flags=cv2.INTER_NEAREST) > 0


def test_parser_paints_only_the_face_classes_and_keeps_exactly_the_parts_asked(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    """occlusion = "parser" with a stand-in parser of BiSeNet's signature (a fixed face layout on the aligned
    crop): the hair it reports keeps the input's pixels exactly where the plain swap painted them; each part
    in keep_regions is the input's within 2 levels (3 crop pixels in from its edges: the mask's blur rounds
    its corners), and the parts not asked stay swapped."""
    photo = imread(DATA / "mediapipe_two_faces.jpg")
    face = finder.largest(photo)
    assert face is not None
    stage = make_stage(engine, models, "tint", occlusion="parser", parser_model=str(models["parser"]))
    stage.set_source_face(astronaut_bgr())
    out = _processed(stage, photo, face)
    _, _, matrix = stage.swapper.swap(photo, face.landmarks5, stage._latent)  # type: ignore[arg-type]
    stage.update({"occlusion": "off"})
    plain = _processed(stage, photo, face)
    to_input = np.abs(out.astype(np.int16) - photo.astype(np.int16)).max(2)
    hair = _where_classes((17,), matrix, photo.shape, 3) & (
        cv2.warpAffine(box_mask(128, 0.3), invert_affine(matrix), (photo.shape[1], photo.shape[0])) > 0.999
    )
    assert hair.sum() > 500
    assert to_input[hair].max() == 0
    assert np.abs(plain.astype(np.int16) - photo.astype(np.int16)).max(2)[hair].mean() > 8
    stage.update({"occlusion": "parser"})
    for part, classes in PARSER_PARTS.items():
        stage.update({"keep_regions": [part]})
        kept = np.abs(_processed(stage, photo, face).astype(np.int16) - photo.astype(np.int16)).max(2)
        inside = _where_classes(classes, matrix, photo.shape, 3)  # FaceFusion's blur rounds the parts' corners
        assert inside.sum() > 100, part
        assert kept[inside].max() <= 2, part
        for other, other_classes in PARSER_PARTS.items():
            if other != part:
                centre = _where_classes(other_classes, matrix, photo.shape, 4)
                assert kept[centre].mean() > 8, (part, other)  # still swapped


def test_parser_model_missing_is_one_clear_error_and_changes_nothing(
    engine: Engine, models: dict[str, Path], tmp_path: Path
) -> None:
    missing = str(tmp_path / "nowhere.onnx")
    with pytest.raises(ModelError, match="parser_model"):
        make_stage(engine, models, "tint", occlusion="parser", parser_model=missing)
    stage = make_stage(engine, models, "tint", parser_model=missing)
    with pytest.raises(ModelError, match="parser_model"):
        stage.update({"occlusion": "both"})
    assert stage.params["occlusion"] == "off" and not stage.uses_parser()


@pytest.mark.parametrize("boost", [256, 512])
def test_pixel_boost_swaps_interleaved_tiles_and_puts_them_back(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder, boost: int
) -> None:
    """Pixel boost: the identity stand-in gives back the boosted crop exactly (every tile's pixels return to
    their places); the tint stand-in, whose output is half its tile plus a ramp across the tile, reassembles
    into that function of the whole boosted crop (its ramp at the boosted size) within 2 levels: no seam,
    no tile out of place."""
    photo = imread(DATA / "mediapipe_two_faces.jpg")
    face = finder.largest(photo)
    assert face is not None
    identity = make_stage(engine, models, "identity")
    identity.set_source_face(astronaut_bgr())
    swapped, crop, matrix = identity.swapper.swap(photo, face.landmarks5, identity._latent, boost)  # type: ignore[arg-type]
    assert swapped.shape == crop.shape == (boost, boost, 3)
    assert np.array_equal(swapped, crop)
    assert np.allclose(matrix, estimate_affine(face.landmarks5, "arcface_128", boost))

    tint = make_stage(engine, models, "tint")
    tint.set_source_face(astronaut_bgr())
    latent = tint._latent
    assert latent is not None
    swapped, crop, _ = tint.swapper.swap(photo, face.landmarks5, latent, boost)
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(models["tint"])).graph.initializer}
    colour = 1.0 / (1.0 + np.exp(-(latent @ weights["tint_w"])[0]))  # RGB
    ramp = np.linspace(0.0, 1.0, boost, dtype=np.float32)[None, :, None]
    want = 0.5 * cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) + 0.5 * 255.0 * colour * ramp
    got = cv2.cvtColor(swapped, cv2.COLOR_BGR2RGB).astype(np.float32)
    assert np.abs(got - want).max() <= 2.0, np.abs(got - want).max()


def test_pixel_boost_in_the_stage_is_live_and_touches_only_the_face(
    engine: Engine, models: dict[str, Path], finder: StillFaceFinder
) -> None:
    photo = imread(DATA / "mediapipe_two_faces.jpg")
    face = finder.largest(photo)
    assert face is not None
    stage = make_stage(engine, models, "tint")
    stage.set_source_face(astronaut_bgr())
    plain = _processed(stage, photo, face)
    stage.update({"pixel_boost": 256})
    assert stage.mask.shape == (256, 256)
    boosted = _processed(stage, photo, face)
    x1, y1, x2, y2 = paste_region(photo.shape, 128, estimate_affine(face.landmarks5, "arcface_128", 128))
    outside = np.ones(photo.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(boosted[outside], photo[outside])
    diff = np.abs(boosted.astype(np.int16) - plain.astype(np.int16))
    assert 0 < diff.mean() and np.abs(boosted.astype(np.int16) - photo.astype(np.int16))[y1:y2, x1:x2].mean() > 8
    stage.update({"pixel_boost": 128})
    assert np.array_equal(_processed(stage, photo, face), plain)
    with pytest.raises(PresetError, match="pixel_boost"):
        validate_params(SPEC, {"pixel_boost": 384}, "stages[1]")
