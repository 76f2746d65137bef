"""The `colour` graph run by the engine against a step-by-step NumPy reference, and the .cube reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from livefuse.engine import Engine
from livefuse.errors import PresetError
from livefuse.frame import Frame
from livefuse.presets import PRESETS_DIR
from livefuse.stages.base import StageContext
from livefuse.stages.colour import SPEC, ColourStage
from livefuse.stages.cube import identity_cube, load_cube, parse_cube, write_cube

CINEMATIC = PRESETS_DIR / "assets" / "cinematic.cube"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def grade(engine: Engine, image: np.ndarray, preset_dir: Path | None = None, **params: Any) -> np.ndarray:
    full = {p.name: p.default for p in SPEC.params} | params
    stage = ColourStage(full, StageContext(engine=engine, size=image.shape[1::-1], fps=30.0, preset_dir=preset_dir))
    frame = Frame(seq=0, pts=0, capture_ns=0, image=image.copy())
    stage.process(frame)
    return frame.image


def trilinear(lut: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Textbook trilinear lookup of [N(b), N(g), N(r), 3] at rgb in 0..1 ([..., 3]) -> rgb."""
    n = lut.shape[0]
    pos = np.clip(rgb, 0, 1) * (n - 1)
    base = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = pos - base
    out = np.zeros_like(rgb)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = ((frac[..., 0] if dr else 1 - frac[..., 0]) * (frac[..., 1] if dg else 1 - frac[..., 1])
                     * (frac[..., 2] if db else 1 - frac[..., 2]))
                out += w[..., None] * lut[base[..., 2] + db, base[..., 1] + dg, base[..., 0] + dr]
    return out


def reference(image: np.ndarray, lut: np.ndarray | None = None, brightness: float = 0.0, contrast: float = 1.0,
              saturation: float = 1.0, temperature: float = 0.0, lut_strength: float = 1.0) -> np.ndarray:
    """Each documented step in turn, in float64, on RGB in 0..1."""
    x = image[..., ::-1].astype(np.float64) / 255.0
    x = x * np.array([1 + 0.15 * temperature, 1.0, 1 - 0.15 * temperature])
    x = x + 0.3 * brightness
    x = (x - 0.5) * contrast + 0.5
    luma = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    x = np.clip(luma + (x - luma) * saturation, 0, 1)
    if lut is not None:
        x = x + (trilinear(lut.astype(np.float64), x) - x) * lut_strength
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)[..., ::-1]


def test_defaults_change_nothing(engine: Engine, photo: np.ndarray) -> None:
    assert np.array_equal(grade(engine, photo), photo)


@pytest.mark.parametrize("settings", [
    {"brightness": 0.2}, {"contrast": 1.4}, {"saturation": 0.3}, {"temperature": -0.7},
    {"brightness": -0.1, "contrast": 1.2, "saturation": 1.6, "temperature": 0.5},
])
def test_sliders_match_the_reference(engine: Engine, photo: np.ndarray, settings: dict[str, float]) -> None:
    out = grade(engine, photo, **settings)
    want = reference(photo, **settings)
    assert np.abs(out.astype(int) - want).max() <= 1
    assert not np.array_equal(out, photo)


def test_shipped_lut_matches_the_reference(engine: Engine, photo: np.ndarray) -> None:
    out = grade(engine, photo, PRESETS_DIR, lut="assets/cinematic.cube", contrast=1.05, temperature=0.1,
                lut_strength=0.9)
    want = reference(photo, load_cube(CINEMATIC), contrast=1.05, temperature=0.1, lut_strength=0.9)
    assert np.abs(out.astype(int) - want).max() <= 1
    assert np.abs(out.astype(int) - photo).mean() > 3  # it is a visible grade


def test_an_arbitrary_lut_matches_the_reference(engine: Engine, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)  # odd sizes, every kind of colour
    lut = rng.random((5, 5, 5, 3)).astype(np.float32)  # nothing like the identity: a wrong axis shows
    write_cube(tmp_path / "rand.cube", lut)
    out = grade(engine, image, tmp_path, lut="rand.cube")
    want = reference(image, parse_cube((tmp_path / "rand.cube").read_text()))
    assert np.abs(out.astype(int) - want).max() <= 1


def test_live_update_swaps_lut_and_sliders(engine: Engine, photo: np.ndarray) -> None:
    full = {p.name: p.default for p in SPEC.params}
    stage = ColourStage(full, StageContext(engine=engine, size=(512, 512), fps=30.0, preset_dir=PRESETS_DIR))
    stage.update({"lut": "assets/cinematic.cube", "saturation": 0.0})
    frame = Frame(seq=0, pts=0, capture_ns=0, image=photo.copy())
    stage.process(frame)
    assert np.abs(frame.image.astype(int) - reference(photo, load_cube(CINEMATIC), saturation=0.0)).max() <= 1


def test_cube_round_trip_and_identity(tmp_path: Path) -> None:
    ident = identity_cube(9)
    write_cube(tmp_path / "id.cube", ident, title="identity")
    assert np.allclose(load_cube(tmp_path / "id.cube"), ident, atol=1e-6)
    assert np.allclose(trilinear(ident.astype(np.float64), np.array([[0.2, 0.5, 0.9]])), [[0.2, 0.5, 0.9]])


@pytest.mark.parametrize(("text", "message"), [
    ("LUT_1D_SIZE 4\n0 0 0\n", "1D LUTs are not supported"),
    ("LUT_3D_SIZE 2\n0 0 0\n1 1 1\n", "needs 8 data lines, found 2"),
    ("LUT_3D_SIZE 2\n" + "0 0 x\n" * 8, "line 2: expected three numbers"),
    ("0 0 0\n", "no LUT_3D_SIZE"),
    ("LUT_3D_SIZE 2\nDOMAIN_MAX 2 2 2\n" + "0 0 0\n" * 8, "DOMAIN_MAX"),
])
def test_bad_cube_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        parse_cube(text, "look.cube")


def test_missing_lut_names_the_file(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"lut = 'nope\.cube': no such file"):
        grade(engine, np.zeros((8, 8, 3), np.uint8), tmp_path, lut="nope.cube")
