"""What the engine's GPU options buy, measured on the machine it runs on (a GPU one is the point).

    .venv/bin/python benchmarks/engine_gpu_options.py --provider cuda --json benchmarks/results/gpu-engine-options.json

For the bundled selfie segmenter (fixed shapes, `trt_fp16 = true`) it measures, on `--provider`:
- session start twice with the same engine cache: on TensorRT the second start loads the cached engine;
- run latency (p50/p99) with the session's CUDA graph (on CUDA, where capture works) and without, and
  whether the outputs agree;
- latency with 200 ms gaps between runs (onnxruntime issue 16135), with the keep-warm thread and without.
On the CPU provider (a dry run) it runs the same steps: no CUDA graph, no keep-warm, so the pairs match.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from livefuse.engine import Engine  # noqa: E402
from livefuse.engine.precision import fixed_feeds  # noqa: E402
from livefuse.engine.registry import Registry  # noqa: E402

MODEL = "selfie_segmentation"


def percentiles(samples: list[float]) -> dict[str, Any]:
    return {f"p{q}_ms": round(float(np.percentile(samples, q)), 3) for q in (50, 99)}


def timed_runs(session: Any, feeds: dict[str, np.ndarray], runs: int, gap_s: float = 0.0) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(feeds)
        samples.append((time.perf_counter() - start) * 1000)
        if gap_s:
            time.sleep(gap_s)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--gap-runs", type=int, default=30, help="runs with 200 ms gaps (each costs 0.2 s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    registry = Registry()
    entry = registry.entry(MODEL)
    feeds = fixed_feeds({t.name: (list(t.shape), np.dtype(t.dtype)) for t in entry.inputs}, entry.preprocess)
    result: dict[str, Any] = {"model": MODEL, "requested": args.provider}
    with tempfile.TemporaryDirectory() as cache:
        starts = []
        for _ in range(2):
            begin = time.perf_counter()
            engine = Engine(provider=args.provider, cache_dir=cache, keep_warm_ms=0)
            session = engine.session(MODEL)
            session.run(feeds)
            starts.append(round(time.perf_counter() - begin, 3))
        result.update(provider=session.provider, start_s=starts, cuda_graph=bool(session.cuda_graph))
        with_graph = timed_runs(session, feeds, args.runs)
        reference = {k: np.array(v) for k, v in session.run(feeds).items()}
        plain_engine = Engine(provider=args.provider, cache_dir=cache, keep_warm_ms=0)
        plain_session = plain_engine.session(registry.path(entry))  # by file path: shapes unknown, no CUDA graph
        without = timed_runs(plain_session, feeds, args.runs)
        other = plain_session.run(feeds)
        result["graph"] = percentiles(with_graph)
        result["no_graph"] = percentiles(without)
        result["graph_max_abs_diff"] = max(float(np.max(np.abs(reference[k] - other[k]))) for k in reference)
        for name, warm_ms in (("gaps_keep_warm", 20.0), ("gaps_no_keep_warm", 0.0)):
            gap_engine = Engine(provider=args.provider, cache_dir=cache, keep_warm_ms=warm_ms)
            gap_session = gap_engine.session(MODEL)
            gap_session.run(feeds)
            result[name] = percentiles(timed_runs(gap_session, feeds, args.gap_runs, gap_s=0.2))
            result[name]["keep_warm_running"] = gap_engine.keep_warm.running
            gap_engine.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
