"""`livefuse bench` on two code trees in the same run, alternating (not a CI test).

    .venv/bin/python benchmarks/before_after.py BEFORE_TREE [--presets a,b] [--rounds 2] [--frames 300]

Both trees run in this checkout's venv (PYTHONPATH picks the tree), so library versions and the venv's
own memory footprint are the same; only the code differs. Each round runs every preset on the old tree,
then on this one. Writes `results/before-after.json` with every run's figures and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench_run import ROOT, figures, livefuse_bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="the old code tree (e.g. a git worktree of an older commit)")
    parser.add_argument("--presets", default="background-blur,anonymise,beauty,colour-cinematic")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "before-after.json")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for preset in args.presets.split(","):
            for name, tree in trees.items():
                result = livefuse_bench(preset, frames=args.frames, code=tree)
                row = {"round": round_ + 1, "preset": preset, "tree": name, **figures(result), "raw": result}
                runs.append(row)
                print(
                    f"round {round_ + 1} {preset:18s} {name:6s} fps {row['fps']} p50 {row['p50']} ms "
                    f"p99 {row['p99']} ms dropped {row['dropped']} cpu {row['cpu_percent']} % rss {row['rss_mb']} MB",
                    flush=True,
                )
    args.out.write_text(json.dumps({"before": str(args.before), "frames": args.frames, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
