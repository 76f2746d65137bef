"""What the privacy scan costs: `livefuse bench` for anonymise at each `privacy_scan`, and the face stage of the
effects (which never run the scan), optionally beside another checkout's code in the same run.

Each case is one `livefuse bench --mode pipelined` (300 frames of the demo released at 30 fps). With `--before
DIR` every case also runs on DIR's livefuse (PYTHONPATH), alternating with this tree's so that both meet the
same machine: the rows then compare like with like.

    .venv/bin/python benchmarks/privacy_cost.py --before /tmp/head --json benchmarks/results/privacy-cost.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_run import ROOT, figures, livefuse_bench

# (label, preset, size, extra TOML for the face stage): the effects' face stages are as their presets have them
CASES = [
    ("anonymise fast 720p", "anonymise", "1280x720", 'privacy_scan = "fast"'),
    ("anonymise thorough 720p", "anonymise", "1280x720", 'privacy_scan = "thorough"'),
    ("anonymise fast 1080p", "anonymise", "1920x1080", 'privacy_scan = "fast"'),
    ("anonymise thorough 1080p", "anonymise", "1920x1080", 'privacy_scan = "thorough"'),
    ("beauty 720p", "beauty", "1280x720", ""),
    ("face-swap's face stage 720p", "debug", "1280x720", "max_faces = 2"),
]


def preset_file(folder: Path, preset: str, extra: str, scan_known: bool) -> Path:
    """The shipped preset with `extra` added to its face stage (dropped where the code knows no privacy_scan)."""
    text = (ROOT / "presets" / f"{preset}.toml").read_text()
    key = extra.split("=")[0].strip()
    lines = [
        line for line in text.splitlines() if not line.startswith("privacy_scan" if not scan_known else key or "\0")
    ]
    if extra and (scan_known or "privacy_scan" not in extra):
        at = lines.index('type = "face"') + 1
        lines.insert(at, extra)
    path = folder / f"{preset}-{abs(hash((extra, scan_known)))}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bench(preset: Path, size: str, frames: int, code: Path | None) -> dict[str, Any]:
    run = figures(livefuse_bench(preset, "--size", size, "--provider", "cpu", frames=frames, code=code))
    return {**run, "face_p50": run["stages_ms"].get("face", {}).get("p50")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another checkout to run beside this one")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--only", default="", help="comma-separated case labels")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for label, preset, size, extra in CASES:
            if args.only and label not in args.only.split(","):
                continue
            row: dict[str, Any] = {"case": label}
            trees = [("after", None, True)] + ([("before", args.before, False)] if args.before else [])
            for name, code, scan_known in trees:
                if name == "before" and "thorough" in label:
                    continue  # the old code has one scan
                row[name] = bench(preset_file(Path(folder), preset, extra, scan_known), size, args.frames, code)
            rows.append(row)
            cells = "  ".join(
                f"{k}: p50 {v['p50']:.1f} p99 {v['p99']:.1f} face {v['face_p50'] or 0:.1f} ms fps {v['fps']:.1f}"
                for k, v in row.items()
                if isinstance(v, dict)
            )
            print(f"{label:30s} {cells}", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "frames": args.frames, "rows": rows},
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
