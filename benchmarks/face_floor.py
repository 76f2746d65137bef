"""How close a face stage can come to half of MediaPipe FaceMesh's time: the step against its network.

Issue 11 asks for livefuse's `face` stage at half the time of MediaPipe's FaceMesh solution, measured
in the same run. Both follow a face the same way, with one run of the FaceMesh network per face per
frame, so neither step can cost less than that run. This script measures, on the 1face clip released
at 30 fps through the same `ReleasedCamera`, in alternating rounds so the host's drift hits all alike:

- `mediapipe`: MediaPipe 0.10.14's whole FaceMesh step (`peers/mediapipe_facemesh.py`);
- `livefuse`: livefuse's face stage with beauty's settings (`peers/livefuse_face.py`);
- `network-tflite`: MediaPipe's own FaceMesh model alone on TFLite/XNNPACK (`peers/facemesh_network.py`);
- `network-onnxruntime`: livefuse's converted FaceMesh alone through livefuse's engine (the same script);
- with `--before TREE` (e.g. a git worktree of an older commit), `livefuse-before`: that tree's face stage,
  run by its own `peers/livefuse_face.py` with PYTHONPATH on the tree, so a change is measured beside
  MediaPipe in the same rounds.

It prints each round's p50 and p95 and each contender's p50 as a fraction of MediaPipe's step in that
round, and writes results/face-floor.json. Each run also records the share of the CPU time the
virtual machine's host took for itself while it ran (steal, from /proc/stat): on a shared host a run
with a high steal share measures the neighbours, not the code.

    .venv/bin/python benchmarks/face_floor.py --rounds 3 [--before TREE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from run_all import FPS, RESULTS, SIZE, log, peers_python, run

PEERS = Path(__file__).resolve().parent / "peers"


def contenders(python_peers: Path, before: Path | None) -> dict[str, list[str]]:
    """Each contender's command, without the clip options and the JSON path."""
    commands = {
        "mediapipe": [str(python_peers), str(PEERS / "mediapipe_facemesh.py")],
        "livefuse": [sys.executable, str(PEERS / "livefuse_face.py"), "--preset", "beauty"],
        "network-tflite": [str(python_peers), str(PEERS / "facemesh_network.py"), "--runtime", "tflite"],
        "network-onnxruntime": [sys.executable, str(PEERS / "facemesh_network.py"), "--runtime", "onnxruntime"],
    }
    if before is not None:
        commands["livefuse-before"] = [
            "env",
            f"PYTHONPATH={before}",
            sys.executable,
            str(before / "benchmarks/peers/livefuse_face.py"),
            "--preset",
            "beauty",
        ]
    return commands


def cpu_ticks() -> tuple[int, int]:
    """(all CPU ticks, stolen ticks) so far, from /proc/stat's first line; (0, 0) where there is none."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    return sum(fields[:8]), fields[7]


def face_ms(path: Path) -> dict[str, float]:
    """The face step's p50 and p95 from a contender's JSON."""
    mode = next(iter(json.loads(path.read_text())["modes"].values()))
    return {k: float(mode["stages_ms"]["face"][k]) for k in ("p50", "p95")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--json", type=Path, default=RESULTS / "face-floor.json")
    parser.add_argument("--before", type=Path, help="also run this code tree's face stage (beauty's settings)")
    args = parser.parse_args()
    from face_clips import write_clips

    python_peers = peers_python()
    if python_peers is None:
        raise SystemExit("face_floor needs benchmarks/.venv-peers (MediaPipe and tflite-runtime)")
    clip = write_clips(RESULTS.parent / "clip", args.frames)["1face"]
    common = [
        "--clip",
        str(clip),
        "--size",
        f"{SIZE[0]}x{SIZE[1]}",
        "--fps",
        f"{FPS:g}",
        "--frames",
        str(args.frames),
        "--max-faces",
        "1",
    ]
    rounds: list[dict[str, dict[str, float]]] = []
    out = RESULTS / "face-floor-round.json"
    for k in range(args.rounds):
        figures: dict[str, dict[str, float]] = {}
        for name, cmd in contenders(python_peers, args.before).items():
            total0, steal0 = cpu_ticks()
            if not run([*cmd, *common, "--json", str(out)], f"round {k + 1} {name}"):
                raise SystemExit(f"{name} failed")
            total1, steal1 = cpu_ticks()
            figures[name] = face_ms(out)
            figures[name]["steal_percent"] = round(100 * (steal1 - steal0) / max(total1 - total0, 1), 1)
        for f in figures.values():
            f["of_mediapipe"] = round(f["p50"] / figures["mediapipe"]["p50"], 3)
        rounds.append(figures)
        log(
            f"round {k + 1}: "
            + ", ".join(
                f"{n} {f['p50']:.2f} ms ({f['of_mediapipe']:.2f}x, steal {f['steal_percent']:.0f} %)"
                for n, f in figures.items()
            )
        )
    out.unlink(missing_ok=True)
    names = list(rounds[0])
    summary = {
        n: {
            "p50_ms": [r[n]["p50"] for r in rounds],
            "p95_ms": [r[n]["p95"] for r in rounds],
            "steal_percent": [r[n]["steal_percent"] for r in rounds],
            "of_mediapipe_median": round(statistics.median(r[n]["of_mediapipe"] for r in rounds), 3),
        }
        for n in names
    }
    args.json.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "clip": clip.name,
                "before": None if args.before is None else str(args.before),
                "rounds": rounds,
                "summary": summary,
            },
            indent=1,
        )
        + "\n"
    )
    print(
        "| contender | p50 ms, by round | p95 ms, by round | p50 / MediaPipe's p50 (median of rounds) "
        "| host steal %, by round |"
    )
    print("|---|---|---|---:|---|")
    for n in names:
        s = summary[n]
        print(
            f"| {n} | {' / '.join(f'{v:.2f}' for v in s['p50_ms'])} | "
            f"{' / '.join(f'{v:.2f}' for v in s['p95_ms'])} | {s['of_mediapipe_median']:.2f} | "
            f"{' / '.join(f'{v:.0f}' for v in s['steal_percent'])} |"
        )


if __name__ == "__main__":
    main()
