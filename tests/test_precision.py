"""FP16 only where the accuracy check passes: every model that declares `trt_fp16` passes it here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livefuse.engine.graph_builder import FLOAT, GraphBuilder
from livefuse.engine.manifest import Preprocess, load_manifest
from livefuse.engine.precision import check_fp16, compare
from livefuse.engine.registry import Registry
from livefuse.errors import ModelError


def test_every_model_that_declares_fp16_passes_its_check() -> None:
    registry = Registry()
    declared = [e for e in registry.entries if e.trt_fp16]
    assert len(declared) >= 5
    checked = 0
    for entry in declared:
        path = registry.path(entry)
        if not path.is_file():
            continue  # a pulled model that is not here; it is checked where it is
        result = check_fp16(path, entry.trt_fp16_tolerance, entry.preprocess, entry.ref)
        assert result.passed, result.describe()
        checked += 1
    assert checked >= 5  # the bundled models are always here


def test_a_model_that_overflows_in_fp16_fails_the_check() -> None:
    b = GraphBuilder("overflow")
    b.op("MatMul", b.input("x", FLOAT, [1, 4]), b.const(np.full((4, 4), 3.0e4, np.float32)), out="y")
    b.output("y", FLOAT, [1, 4])
    result = check_fp16(b.build(), preprocess=Preprocess(mean=(0, 0, 0), std=(1, 1, 1)))
    assert not result.passed and "FAILS" in result.describe()
    close = compare("m", {"y": np.array([100.0, -50.0])}, {"y": np.array([100.5, -50.0])}, tolerance=0.01)
    assert close.passed and close.error == pytest.approx(0.005)
    assert not compare("m", {"y": np.array([1.0])}, {"y": np.array([1.02])}, tolerance=0.01).passed


def test_the_fp16_flag_is_checked_where_it_enters(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "models" / "manifest.toml").read_text()
    entry = text[text.index('[[model]]\nname = "selfie_segmentation"\n') :].split("\n[[model]]")[0]
    assert "trt_fp16 = true" in entry
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(entry)
    assert load_manifest(manifest)[0].trt_fp16
    for bad, message in (
        ('trt_fp16 = "yes"', "trt_fp16 must be true or false"),
        ("trt_fp16 = true\ntrt_fp16_tolerance = 2", "trt_fp16_tolerance must be a number"),
    ):
        manifest.write_text(entry.replace("trt_fp16 = true", bad, 1))
        with pytest.raises(ModelError, match=message):
            load_manifest(manifest)
