"""Engine: provider fallback, double-buffered IOBinding, copies and the optimised-model cache."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from livefuse.engine import Engine, ModelSession
from livefuse.errors import UserError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"
YUNET = SHARED / "face_detection_yunet.onnx"
RETINA = SHARED / "retinaface_mobilenet0.25_640.onnx"

needs_models = pytest.mark.skipif(
    not YUNET.is_file() or not RETINA.is_file(),
    reason=f"real test models not found in {SHARED} (see its README)",
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def yunet_input(image: np.ndarray, size: int = 320) -> np.ndarray:
    return cv2.resize(image, (size, size)).transpose(2, 0, 1)[None].astype(np.float32)


def retina_input(image: np.ndarray) -> np.ndarray:
    x = cv2.resize(image, (640, 640)).astype(np.float32) - np.array([104, 117, 123], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path)


@needs_models
def test_iobinding_equals_plain_run(tmp_path: Path, astronaut: np.ndarray) -> None:
    bound = Engine("cpu", iobinding=True, cache_dir=tmp_path).session(RETINA)
    plain = Engine("cpu", iobinding=False, cache_dir=tmp_path).session(RETINA)
    x = retina_input(astronaut)
    a, b = bound.run({"input0": x}), plain.run({"input0": x})
    assert list(a) == ["output0", "572", "571"] == bound.output_names
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-5)
    assert a["572"][0, :, 1].max() > 0.99  # it does find the astronaut's face
    # Dynamic input shapes (YuNet) also bind, and a resolution change re-allocates once.
    yb = Engine("cpu", iobinding=True, cache_dir=tmp_path).session(YUNET)
    yp = Engine("cpu", iobinding=False, cache_dir=tmp_path).session(YUNET)
    for size in (320, 320, 480, 320):
        xa = yunet_input(astronaut, size)
        ra, rb = yb.run({"input": xa}), yp.run({"input": xa})
        for name in ra:
            np.testing.assert_allclose(ra[name], rb[name], rtol=1e-5, atol=1e-5)


@needs_models
def test_two_frames_in_flight_do_not_alias(engine: Engine, astronaut: np.ndarray) -> None:
    """Run N's results survive run N+1; garbage in the other set's buffers never leaks into outputs."""
    sess = engine.session(RETINA)
    frames = [
        retina_input(astronaut),
        retina_input(np.ascontiguousarray(astronaut[:, ::-1])),
        retina_input(cv2.GaussianBlur(astronaut, (9, 9), 3)),
    ]
    ref = [
        {
            k: v.copy()
            for k, v in Engine("cpu", iobinding=False, cache_dir=engine.cache_dir)
            .session(RETINA)
            .run({"input0": f})
            .items()
        }
        for f in frames
    ]
    out0 = sess.run({"input0": frames[0]})
    binding = sess._binding
    assert binding is not None
    # Poison everything in the set run 1 will use (its staging inputs and, once allocated, outputs).
    for value in binding.current().inputs.values():
        value.numpy()[...] = np.nan
    out1 = sess.run({"input0": frames[1]})
    for name in out0:  # frame 0's results are untouched by frame 1
        np.testing.assert_array_equal(out0[name], ref[0][name])
        np.testing.assert_array_equal(out1[name], ref[1][name])
        assert not np.shares_memory(out0[name], out1[name])
    # Now both sets have outputs: poison set 0 (next to run) and set 1's staging input with NaN.
    for buf in binding.sets:
        for value in buf.inputs.values():
            value.numpy()[...] = np.nan
    outputs = binding.current().outputs
    assert outputs is not None
    for value in outputs.values():
        value.numpy()[...] = np.nan
    # A non-contiguous input goes through the poisoned staging buffer; results must still be exact.
    strided = np.asfortranarray(frames[2])
    out2 = sess.run({"input0": strided})
    for name in out2:
        np.testing.assert_allclose(out2[name], ref[2][name], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out1[name], ref[1][name])  # still valid while frame 2 ran
        assert np.shares_memory(out2[name], out0[name])  # run 2 reused set 0: no allocation
    # Output buffers are allocated once: the OrtValues of each set stay the same across runs.
    ptrs = [{k: v.data_ptr() for k, v in (b.outputs or {}).items()} for b in binding.sets]
    for f in frames * 2:
        sess.run({"input0": f})
    assert ptrs == [{k: v.data_ptr() for k, v in (b.outputs or {}).items()} for b in binding.sets]


@needs_models
def test_cuda_request_falls_back_to_cpu_with_one_log_line(
    tmp_path: Path, astronaut: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build does not list CUDA")
    try:
        probe = ort.InferenceSession(str(YUNET), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 (any failure means CUDA does not work here)
        probe = None
    if probe is not None and probe.get_providers()[0] == "CUDAExecutionProvider":
        pytest.skip("CUDA really works here: nothing to fall back from")
    caplog.set_level(logging.DEBUG, logger="livefuse.engine")
    engine = Engine(provider="cuda", cache_dir=tmp_path)
    sess = engine.session(YUNET)
    engine.session(RETINA)  # a second session does not warn again
    records = [r for r in caplog.records if r.name == "livefuse.engine"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.WARNING
    assert "cuda" in records[0].getMessage() and "using cpu" in records[0].getMessage()
    assert "\n" not in records[0].getMessage()
    assert sess.provider == "CPUExecutionProvider" == engine.provider
    assert sess.run({"input": yunet_input(astronaut)})["cls_8"].shape == (1, 1600, 1)


def test_unknown_or_unlisted_provider_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown provider 'tpu'"):
        Engine(provider="tpu", cache_dir=tmp_path)
    if "CoreMLExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UserError, match=r"'coreml' is not available.*--provider auto"):
            Engine(provider="coreml", cache_dir=tmp_path)


@needs_models
def test_cpu_chain_makes_no_copies(engine: Engine, astronaut: np.ndarray) -> None:
    """On CPU a frame goes through chained sessions with zero host<->device copies and no staging copy."""
    from livefuse.device.graphs import preprocess

    pre = engine.session(preprocess(size=(640, 640), color="BGR", layout="NCHW", mean=(104, 117, 123)))
    det = engine.session(RETINA)
    for _ in range(3):
        tensor = pre.run({"frame": astronaut})["tensor"]
        out = det.run({"input0": tensor})
        dev = det.run_device({"input0": pre.run_device({"frame": astronaut})["tensor"]})
        np.testing.assert_array_equal(det.download(dev["572"]), out["572"])
    assert engine.copies() == {"h2d": 0, "d2h": 0}
    assert engine._copies.host == 0  # inputs were bound in place, outputs are views


@needs_models
def test_optimised_model_is_cached_and_reused(engine: Engine, astronaut: np.ndarray) -> None:
    first = engine.session(RETINA)
    cached = list((engine.cache_dir / "optimized").glob("*-cpu-*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = Engine("cpu", cache_dir=engine.cache_dir).session(RETINA)  # another engine: loads from the cache
    assert cached[0].stat().st_mtime_ns == stamp
    x = retina_input(astronaut)
    np.testing.assert_allclose(first.run({"input0": x})["571"], second.run({"input0": x})["571"], atol=1e-5)
    cached[0].write_bytes(b"garbage")  # a broken cache entry is rebuilt, not fatal
    third = Engine("cpu", cache_dir=engine.cache_dir).session(RETINA)  # a new engine: its own pool loads it
    np.testing.assert_allclose(third.run({"input0": x})["571"], first.run({"input0": x})["571"], atol=1e-5)


@needs_models
def test_run_time_failure_moves_to_next_provider_once(
    engine: Engine, astronaut: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    sess: ModelSession = engine.session(YUNET)
    sess.provider = "CUDAExecutionProvider"  # pretend the session runs on a GPU that then fails
    binding = sess._binding
    assert binding is not None

    def broken(feeds: object) -> dict[str, object]:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    binding.run = broken  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="livefuse.engine")
    out = sess.run({"input": yunet_input(astronaut)})
    assert out["cls_8"].shape == (1, 1600, 1)
    assert sess.provider == "CPUExecutionProvider"
    msgs = [r.getMessage() for r in caplog.records if r.name == "livefuse.engine"]
    assert len(msgs) == 1 and "failed while running" in msgs[0] and "illegal memory access" in msgs[0]


@needs_models
def test_session_describes_its_io(engine: Engine) -> None:
    sess = engine.session(RETINA)
    assert sess.input_names == ["input0"]
    assert sess.inputs["input0"] == ([1, 3, 640, 640], np.dtype(np.float32))
    assert sess.provider == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="takes inputs"):
        sess.run({"image": np.zeros((1, 3, 640, 640), np.float32)})
    with pytest.raises(ValueError, match="has shape"):
        sess.run({"input0": np.zeros((1, 3, 320, 320), np.float32)})
