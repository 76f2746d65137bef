"""Background edge refinement (`edge` = off, fast, fine): the guided filter moves the mask's edge onto the
picture's, the demo's true alpha is matched better, off changes nothing, and both paths agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from livefuse.bench.matte import boundary_fscore, edge_error
from livefuse.engine import Engine
from livefuse.errors import PresetError
from livefuse.frame import Frame
from livefuse.presets import validate_params
from livefuse.sources.demo import DemoSource
from livefuse.stage import StageContext
from livefuse.stages.background.common import BackgroundStage
from livefuse.stages.background.cpu import CpuBackground, person_matte
from livefuse.stages.background.spec import SPEC, make_background
from livefuse.vision.matting import refine_matte

SIZE = (1280, 720)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("engine"))


def make_stage(engine: Engine, path: str = "cpu", **params: Any) -> BackgroundStage:
    full = {p.name: p.default for p in SPEC.params} | params
    return make_background(full, StageContext(engine=engine, size=SIZE, fps=30.0), path=path)


@pytest.mark.parametrize("mode", ["fast", "fine"])
@pytest.mark.parametrize("offset", [3, 6])
@pytest.mark.parametrize("colours", [((40, 40, 40), (220, 220, 220)), ((40, 40, 200), (40, 112, 52))])
def test_the_edge_moves_onto_the_pictures_edge(mode: str, offset: int, colours: tuple[Any, Any]) -> None:
    """A mask made as the segmenter's is (a tenth of the resolution, then blurred) with its edge `offset` px
    off the picture's: the refined edge (0.5) is on the picture's, with a step there, also between two
    colours of about the same brightness (red and green at equal grey)."""
    person, room = colours
    image = np.empty((360, 640, 3), np.uint8)
    image[:, :300] = person
    image[:, 300:] = room
    truth = np.zeros((360, 640), np.float32)
    truth[:, : 300 + offset] = 1.0
    coarse = cv2.resize(truth, (64, 36), interpolation=cv2.INTER_AREA)
    coarse = cv2.GaussianBlur(coarse, (0, 0), 0.7)
    plain = cv2.resize(coarse, (640, 360), interpolation=cv2.INTER_LINEAR)[180]
    refined = refine_matte(image, coarse, mode, 640)
    row = refined[180]
    assert int(np.argmax(plain < 0.5)) == 300 + offset  # the coarse edge really is off
    assert abs(int(np.argmax(row < 0.5)) - 300) <= 1, np.argmax(row < 0.5)
    assert row[298] - row[301] > 3 * (plain[298] - plain[301])  # a step at the picture's edge, not a ramp
    assert np.allclose(refined[:, :240], 1.0, atol=1e-3) and np.allclose(refined[:, 370:], 0.0, atol=1e-3)


def test_on_the_demo_the_edges_match_the_true_alpha_better(engine: Engine) -> None:
    """The demo's composed alpha is the truth: F-score at 2 px up, alpha error near the edge down."""
    source = DemoSource(SIZE, 30.0, paced=False)
    stage = make_stage(engine)
    assert isinstance(stage, CpuBackground)
    scores: dict[str, list[tuple[float, float]]] = {"off": [], "fast": [], "fine": []}
    for i in range(40):
        t = i / 30.0 * 3  # a tenth of a second apart after the first frames: varied poses
        image = source.render(t)
        frame = Frame(i, 0, image)
        stage.segment(frame)
        if i < 30 or frame.person_mask is None:
            continue
        truth = source.alpha(t)
        for edge in scores:
            matte = person_matte(image, frame.person_mask, (0, 0, *SIZE), edge)
            scores[edge].append((boundary_fscore(matte, truth, 2.0), edge_error(matte, truth)))
    stage.close()
    mean = {edge: np.mean(values, axis=0) for edge, values in scores.items()}
    # Measured (benchmarks/edge_refine.py): F@2px 0.29 -> 0.47 (fast), 0.47 (fine); edge error 0.157 -> 0.150.
    assert mean["fast"][0] > mean["off"][0] + 0.05, mean
    assert mean["fine"][0] > mean["off"][0] + 0.1, mean
    assert mean["fine"][1] < mean["off"][1] and mean["fast"][1] < mean["off"][1], mean


def test_edge_off_composites_exactly_as_the_plain_upsampled_mask(engine: Engine) -> None:
    image = DemoSource(SIZE, 30.0, paced=False).render(1.0)
    stage = make_stage(engine, mode="remove", edge="off")
    frame = Frame(0, 0, image.copy())
    stage.segment(frame)  # type: ignore[attr-defined]
    assert frame.person_mask is not None
    full = cv2.resize(frame.person_mask, SIZE, interpolation=cv2.INTER_LINEAR)
    green = np.empty_like(image)
    green[:] = (0x40, 0xB1, 0x00)
    expected = cv2.blendLinear(image, green, full, 1.0 - full)
    stage.composite(frame)  # type: ignore[attr-defined]
    assert np.array_equal(frame.image, expected)
    refined = make_stage(engine, mode="remove", edge="fine")
    again = Frame(0, 0, image.copy())
    refined.process(again)
    assert not np.array_equal(again.image, expected)  # the setting does reach the composite


@pytest.mark.parametrize("edge", ["fast", "fine"])
def test_graph_path_refines_as_the_opencv_path(engine: Engine, edge: str) -> None:
    source = DemoSource(SIZE, 30.0, paced=False)
    clip = [source.render(i / 30.0) for i in range(3)]
    outs = {}
    for path in ("cpu", "graph"):
        stage = make_stage(engine, path=path, edge=edge)
        for i, image in enumerate(clip):
            frame = Frame(i, 0, image.copy())
            stage.process(frame)
        outs[path] = frame.image
        stage.close()
    diff = np.abs(outs["cpu"].astype(np.int16) - outs["graph"].astype(np.int16))
    # Measured: mean 0.06 levels, 99.9th percentile 1; the CPU path fits inside the person's box only, so
    # a few pixels at that box's border differ more.
    assert diff.mean() < 0.3 and np.percentile(diff, 99.9) <= 2, (diff.mean(), np.percentile(diff, 99.9))
    plain = make_stage(engine, path="graph")
    frame = Frame(0, 0, clip[0].copy())
    plain.process(frame)
    assert not np.array_equal(frame.image, outs["graph"])


def test_a_bad_edge_setting_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"edge = 'sharp'.*'off', 'fast', 'fine'"):
        validate_params(SPEC, {"edge": "sharp"}, "stages[1] (background)")


def test_a_hand_drawn_hard_mask_is_measured_along_its_contour() -> None:
    # benchmarks/data/matting's true masks are 0 or 1: no soft pixel to find the edge by
    true = np.zeros((60, 60), np.float32)
    true[15:45, 15:45] = 1.0
    assert edge_error(true, true) == 0.0
    shifted = np.roll(true, 3, axis=1)
    assert 0.0 < edge_error(shifted, true) < 0.2  # the band's error, not NaN, not the whole frame's
    assert boundary_fscore(shifted, true, 2.0) < 0.7 < boundary_fscore(shifted, true, 5.0)
