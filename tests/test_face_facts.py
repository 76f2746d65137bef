"""Face models' size, template, mean and std come from models/manifest.toml, and give the inputs they gave
when they were constants in faces/ (bit for bit)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from livefuse.engine.registry import Registry
from livefuse.errors import ModelError
from livefuse.faces.facts import FaceModelFacts, entry_facts, facts_of, manifest_facts


def session_of(entry: Any) -> Any:
    return SimpleNamespace(source=SimpleNamespace(entry=entry))


def test_the_swapper_and_its_helpers_read_the_manifest() -> None:
    swapper = manifest_facts("inswapper_128")
    assert (swapper.size, swapper.template, swapper.mean, swapper.std) == (128, "arcface_128", (0.0,) * 3, (255.0,) * 3)
    assert manifest_facts("arcface_w600k_r50").size == 112
    assert manifest_facts("arcface_w600k_r50").template == "arcface_112_v2"
    assert manifest_facts("bisenet_resnet_34").size == 512
    assert manifest_facts("gfpgan_1.4").template == "ffhq_512"


def test_normalisation_is_what_the_constants_gave() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.float32)
    swapper = manifest_facts("inswapper_128")
    assert np.array_equal((rgb - swapper.mean_rgb) * swapper.inv_std, rgb * (1.0 / 255.0))
    arcface = manifest_facts("arcface_w600k_r50")
    assert np.array_equal((rgb - arcface.mean_rgb) * arcface.inv_std, (rgb - 127.5) * (1.0 / 127.5))
    gfpgan = manifest_facts("gfpgan_1.4")
    assert np.array_equal(rgb * gfpgan.inv_std - gfpgan.offset, rgb * (1.0 / 127.5) - 1.0)
    bisenet = manifest_facts("bisenet_resnet_34")
    assert np.array_equal(
        np.array([m / 255.0 for m in bisenet.mean], np.float32), np.array([0.485, 0.456, 0.406], np.float32)
    )
    assert np.array_equal(
        np.array([s / 255.0 for s in bisenet.std], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    )
    assert swapper.scalar() == (0.0, 255.0)
    with pytest.raises(ModelError, match="differ by channel"):
        bisenet.scalar()


def test_a_model_given_as_a_file_takes_its_stand_in_facts() -> None:
    assert facts_of(session_of(None), "inswapper_128") == manifest_facts("inswapper_128")


def test_a_manifest_entry_gives_its_own_facts_and_borrows_a_missing_template() -> None:
    registry = Registry()
    fp16 = registry.entry("inswapper_128_fp16")
    assert facts_of(session_of(fp16), "gfpgan_1.4") == entry_facts(fp16)
    bisenet = registry.entry("bisenet_resnet_34")
    borrowed = facts_of(session_of(bisenet), "inswapper_128")
    assert (borrowed.size, borrowed.template) == (512, "arcface_128")


def test_an_entry_without_the_facts_is_named() -> None:
    entry = Registry().entry("inswapper_128")
    broken = SimpleNamespace(ref="x@1.0.0", inputs=entry.inputs, preprocess=None, template=None)
    with pytest.raises(ModelError, match=r"x@1\.0\.0.*preprocess"):
        entry_facts(broken)  # type: ignore[arg-type]
    assert isinstance(facts_of(session_of(broken), "inswapper_128"), FaceModelFacts)
