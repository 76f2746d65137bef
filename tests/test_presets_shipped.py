"""Every shipped preset validates; each runs on the 1280x720 demo through the real Pipeline, or says which
model to pull.

Pulled models are looked up in an empty models folder, so which presets run does not depend on what
this machine happens to have downloaded: bundled models only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from livefuse.engine import Engine
from livefuse.errors import ModelError
from livefuse.presets import DEFAULT_PRESET, PRESETS_DIR, load_preset, parse_preset
from livefuse.sinks import NullSink
from livefuse.sources.demo import DemoSource
from livefuse.stage import StageContext
from livefuse.wiring import assemble, build_chain

SHIPPED = sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))
MINE = ["anonymise", "background-blur", "background-replace", "colour-cinematic", "debug"]
SIZE = (1280, 720)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("LIVEFUSE_MODELS_DIR", str(tmp_path / "models"))
    return Engine(provider="cpu", cache_dir=tmp_path / "cache")


def test_the_presets_are_shipped() -> None:
    assert set(MINE) <= set(SHIPPED)
    assert DEFAULT_PRESET in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_preset_validates(name: str) -> None:
    preset = load_preset(name)
    assert preset.name == name
    assert preset.description
    assert preset.path.parent == PRESETS_DIR


@pytest.mark.parametrize("name", SHIPPED)
def test_preset_runs_on_the_demo_or_names_the_model_to_pull(name: str, engine: Engine) -> None:
    preset = load_preset(name)
    try:
        assembly = assemble(preset, engine, SIZE, 30.0)
    except ModelError as exc:
        needed = {m for config in preset.stages for m in config.spec.models}
        message = str(exc)
        assert "livefuse models pull" in message, message
        assert any(model in message for model in needed), message
        assert name not in MINE  # the presets of this set run on bundled models alone
        return
    source = DemoSource(SIZE, 30.0, paced=False)
    pipeline = assembly.pipeline(source, [NullSink()], max_frames=6)
    try:
        stats = asyncio.run(pipeline.run())
    finally:
        assembly.chain.close()
    assert stats.stage_errors == {}
    assert stats.frames_processed >= 1
    ran = {name.split(":")[0] for name in stats.stages}  # a stage with steps records "label:step"
    assert ran == {config.label for config in preset.stages}  # every stage really ran


def test_a_preset_needing_a_pulled_detector_says_how_to_pull_it(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "far.toml"
    path.write_text('name = "far"\ndescription = "x"\n[[stages]]\ntype = "face"\ndetector = "retinaface"\n')
    preset = parse_preset(path.read_text(), path)
    context = StageContext(engine=engine, size=SIZE, fps=30.0, preset_dir=tmp_path)
    with pytest.raises(ModelError, match=r"retinaface_mobilenet0.25.*livefuse models pull retinaface_mobilenet0.25"):
        build_chain(preset, context)
