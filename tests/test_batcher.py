"""Cross-stream batching: requests from several threads run as one batch, and each gets its own result back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from livefuse.engine.batch_axis import with_dynamic_batch
from livefuse.engine.batcher import Batcher

MODEL = Path(__file__).resolve().parents[1] / "models" / "mediapipe" / "selfie_segmentation.onnx"
STREAMS, FRAMES = 4, 5


@pytest.fixture(scope="module")
def segmenter() -> ort.InferenceSession:
    """The real selfie segmenter, with the free batch axis engine/batch_axis.py gives it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    model = with_dynamic_batch(onnx.load(str(MODEL)))
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_batch(session: ort.InferenceSession) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(None, feeds), strict=True))


def test_batched_equals_unbatched_and_results_go_back_to_their_own_streams(segmenter: ort.InferenceSession) -> None:
    run = run_batch(segmenter)
    batcher = Batcher(run, max_batch=STREAMS, max_delay_ms=50.0)  # a long delay: the streams surely meet
    name = segmenter.get_inputs()[0].name
    shape = [1, *segmenter.get_inputs()[0].shape[1:]]
    rng = np.random.default_rng(7)
    inputs = [[rng.random(shape, dtype=np.float32) for _ in range(FRAMES)] for _ in range(STREAMS)]
    got: list[list[dict[str, np.ndarray]]] = [[] for _ in range(STREAMS)]
    start = threading.Barrier(STREAMS)

    def stream(index: int) -> None:
        start.wait()
        for feed in inputs[index]:
            got[index].append({k: v.copy() for k, v in batcher.run({name: feed}).items()})

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(STREAMS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    worst = 0.0
    for index in range(STREAMS):
        assert len(got[index]) == FRAMES
        for feed, result in zip(inputs[index], got[index], strict=True):
            alone = run({name: feed})  # the same model, one item at a time
            for key, value in alone.items():
                assert result[key].shape == value.shape
                worst = max(worst, float(np.abs(result[key] - value).max()))
    figures = batcher.figures()
    print(
        f"batched vs alone: max difference {worst:.2e}; batches by size {figures['batches']}; "
        f"queue delay {figures['queue_delay_ms']}"
    )
    assert worst <= 1e-4
    sizes = batcher.sizes()
    assert sum(size * count for size, count in sizes.items()) == STREAMS * FRAMES
    assert max(sizes) > 1, f"no batch of more than one request formed: {sizes}"


def test_a_lone_stream_waits_at_most_the_delay_and_errors_reach_every_caller(segmenter: ort.InferenceSession) -> None:
    batcher = Batcher(run_batch(segmenter), max_batch=8, max_delay_ms=2.0)
    name = segmenter.get_inputs()[0].name
    shape = [1, *segmenter.get_inputs()[0].shape[1:]]
    for _ in range(3):
        batcher.run({name: np.zeros(shape, np.float32)})
    assert batcher.sizes() == {1: 3}
    assert batcher.delay()["max"] < 500  # never waits for a fuller batch: 2 ms, plus scheduling

    def failing(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError("model failed")

    broken = Batcher(failing, max_batch=2, max_delay_ms=20.0)
    errors: list[str] = []

    def call() -> None:
        try:
            broken.run({name: np.zeros(shape, np.float32)})
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == ["model failed", "model failed"]
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(failing, max_batch=0)


def test_streams_of_one_engine_batch_through_the_shared_session(tmp_path: Path) -> None:
    """Batching on: several streams' sessions for a fixed-batch-1 model (MediaPipe's segmenter) share one
    onnxruntime session with a free batch axis, and each gets what the model alone gives it."""
    from livefuse.engine import Engine

    alone = Engine(provider="cpu", cache_dir=tmp_path).session(MODEL)  # not batched: the reference (and cached)
    engine = Engine(provider="cpu", cache_dir=tmp_path)  # the same cache: the batched model must not be mistaken
    engine.pool.enable_batching(max_batch=STREAMS, max_delay_ms=50.0)
    sessions = [engine.for_session(f"s{i}").session(MODEL) for i in range(STREAMS)]
    assert len({id(s.session) for s in sessions}) == 1 and alone.session is not sessions[0].session
    assert isinstance(sessions[0].session.get_inputs()[0].shape[0], str)  # loaded with a free batch axis
    name = alone.input_names[0]
    rng = np.random.default_rng(3)
    inputs = [[rng.random([1, 256, 256, 3], dtype=np.float32) for _ in range(FRAMES)] for _ in range(STREAMS)]
    got: list[list[dict[str, np.ndarray]]] = [[] for _ in range(STREAMS)]
    start = threading.Barrier(STREAMS)

    def stream(index: int) -> None:
        start.wait()
        for feed in inputs[index]:
            got[index].append({k: v.copy() for k, v in sessions[index].run({name: feed}).items()})

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(STREAMS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    worst = max(
        float(np.abs(result[key] - value).max())
        for index in range(STREAMS)
        for feed, result in zip(inputs[index], got[index], strict=True)
        for key, value in alone.run({name: feed}).items()
    )
    [batcher] = engine.pool.batchers()
    print(f"engine batching: max difference {worst:.2e}; {batcher.figures()}")
    assert worst <= 1e-4
    assert max(batcher.sizes()) > 1 and sum(k * v for k, v in batcher.sizes().items()) == STREAMS * FRAMES
