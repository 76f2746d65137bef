"""One model run on onnxruntime's CPU provider, as livefuse opens it: median and p95 of timed runs.

For comparing two versions of a model in the same run, e.g. FaceMesh before and after
tools/prelu_rewrite.py (the file before it is in git):

    git show 2122c60:models/mediapipe/face_landmark.onnx > /tmp/face_landmark-prelu.onnx
    .venv/bin/python benchmarks/model_speed.py /tmp/face_landmark-prelu.onnx models/mediapipe/face_landmark.onnx

Each model gets one intra-op thread (what `engine.session_open` gives it on this 2-core machine), full
graph optimisation, random inputs of its declared shape, 20 warm-up runs; the models take turns, round by
round, so load changes hit them alike. The outputs of the first two models are compared too.

Runs go back to back unless `--gap-ms` puts an idle pause before each, as a stream gives a model one
run a frame (33 ms at 30 fps): a core that has idled meets the model's weights and buffers cold, and
that run is the one a frame pays for.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def random_input(rng: np.random.Generator, value: ort.NodeArg) -> np.ndarray:
    """Random values of the input's declared shape: pixels for a uint8 input, 0..1 for a float one."""
    shape = [d if isinstance(d, int) else 1 for d in value.shape]
    if value.type == "tensor(uint8)":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.random(shape, np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gap-ms", type=float, default=0.0, help="idle this long before each timed run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sessions = [open_session(p, args.threads) for p in args.models]
    rng = np.random.default_rng(0)
    feeds = []
    for s in sessions:
        feeds.append({i.name: random_input(rng, i) for i in s.get_inputs()})
    signatures = [[(i.name, i.type) for i in s.get_inputs()] for s in sessions]
    if len(sessions) >= 2 and signatures[0] == signatures[1]:
        a, b = sessions[0].run(None, feeds[0]), sessions[1].run(None, feeds[0])
        diffs = [float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)]
        print(f"outputs, {args.models[0].name} against {args.models[1].name}: max abs difference {diffs}")
    times: list[list[float]] = [[] for _ in sessions]
    for s, feed in zip(sessions, feeds, strict=True):
        for _ in range(20):
            s.run(None, feed)
    for _ in range(args.rounds):
        for k, (s, feed) in enumerate(zip(sessions, feeds, strict=True)):
            for _ in range(args.runs // args.rounds):
                if args.gap_ms:
                    time.sleep(args.gap_ms / 1e3)
                t = time.perf_counter()
                s.run(None, feed)
                times[k].append((time.perf_counter() - t) * 1e3)
    result = {}
    for path, ts in zip(args.models, times, strict=True):
        p50, p95 = statistics.median(ts), float(np.percentile(ts, 95))
        result[str(path)] = {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "runs": len(ts), "gap_ms": args.gap_ms}
        print(
            f"{path}: p50 {p50:.2f} ms, p95 {p95:.2f} ms ({len(ts)} runs, {args.threads} thread, "
            f"{args.gap_ms:g} ms idle before each)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
