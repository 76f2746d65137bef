"""What the remote executor costs: `livefuse bench` with models in-process against models on Triton, same run.

Starts a real tritonserver (PyTriton's, `make triton-env`) on loopback serving the repository that
`livefuse models triton-repo --backend python` writes, then for each preset runs `livefuse bench
--mode pipelined` locally and with `--executor triton://`, alternating, `--rounds` times. Writes
benchmarks/results/triton-cost.json and prints the table: end-to-end latency p50/p99 and the model
stage's time, local against Triton. Not a CI test.

    .venv/bin/python benchmarks/triton_cost.py [--presets background-blur anonymise] [--frames 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from pytriton_server import TritonServer  # noqa: E402

LIVEFUSE = str(ROOT / ".venv" / "bin" / "livefuse")


def bench(preset: str, size: str, frames: int, executor: str, out: Path) -> dict[str, Any]:
    subprocess.run(
        [
            LIVEFUSE,
            "bench",
            "--preset",
            preset,
            "--size",
            size,
            "--frames",
            str(frames),
            "--mode",
            "pipelined",
            "--executor",
            executor,
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["background-blur", "anonymise"])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "triton-cost.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(
            [
                LIVEFUSE,
                "models",
                "triton-repo",
                str(work / "repo"),
                "--backend",
                "python",
                *[a for p in args.presets for a in ("--preset", p)],
            ],
            check=True,
            capture_output=True,
        )
        server = TritonServer(work / "repo", work)
        server.start()
        rows: list[dict[str, Any]] = []
        try:
            for preset in args.presets:
                for round_ in range(args.rounds):
                    for executor in ("local", server.grpc_url):
                        result = bench(preset, args.size, args.frames, executor, work / "bench.json")
                        mode = result["modes"]["pipelined"]
                        rows.append(
                            {
                                "preset": preset,
                                "round": round_,
                                "executor": executor.split(":")[0],
                                "fps": mode["fps"],
                                "dropped": mode["dropped"],
                                "latency_ms": mode["latency_ms"],
                                "stages_ms": mode["stages_ms"],
                            }
                        )
                        print(
                            f"{preset:16} {rows[-1]['executor']:7} round {round_}: fps {mode['fps']:.1f} "
                            f"p50 {mode['latency_ms']['p50']:.1f} ms p99 {mode['latency_ms']['p99']:.1f} ms "
                            f"dropped {mode['dropped']}",
                            flush=True,
                        )
        finally:
            server.stop()
    args.out.write_text(json.dumps({"size": args.size, "frames": args.frames, "rows": rows}, indent=2) + "\n")
    print("\n| preset | executor | p50 ms | p99 ms | fps | dropped |\n|---|---|---|---|---|---|")
    for row in rows:
        lat = row["latency_ms"]
        print(
            f"| {row['preset']} | {row['executor']} (round {row['round']}) | {lat['p50']:.1f} | {lat['p99']:.1f} | "
            f"{row['fps']:.1f} | {row['dropped']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
