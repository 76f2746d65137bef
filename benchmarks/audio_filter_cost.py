"""What each sound filter costs the picture: `livefuse run` on a 1280x720 clip with stereo speech, preset
background-blur, once per `--audio-filter` a round, rounds interleaved so drift hits every filter alike.

    .venv/bin/python benchmarks/audio_filter_cost.py [--rounds 2] [--seconds 15]

Prints each run's frame rate, drops and frame latency p50/p95/p99 (ms), then the median over rounds per
filter. The clip is tests/av_sync.py's sync clip (spoken markers twice a second), made in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from av_sync import make_clip  # noqa: E402

FILTERS = ("none", "denoise", "deepfilternet")


def run(clip: Path, audio_filter: str, seconds: float, stats: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "livefuse", "run", "--source", f"file:{clip}", "--output", "preview"]
    command += ["--preset", "background-blur", "--audio-filter", audio_filter, "--duration", str(seconds)]
    command += ["--no-auth", "--stats-json", str(stats)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    report = json.loads(stats.read_text())
    return {"fps": report["fps"], "dropped": report["dropped"], **report["latency_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "speech.mp4"
        make_clip(clip, seconds=args.seconds + 5, fps=30, size=(1280, 720), rate=48000, channels=2, spoken=True)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in FILTERS}
        for round_ in range(args.rounds):
            for name in FILTERS:
                got = run(clip, name, args.seconds, Path(folder) / "stats.json")
                runs[name].append(got)
                print(
                    f"round {round_ + 1} {name:13} {got['fps']:5.1f} fps, {got['dropped']:3.0f} dropped, "
                    f"p50 {got['p50']:5.1f} p95 {got['p95']:5.1f} p99 {got['p99']:5.1f} ms",
                    flush=True,
                )
    print("median over rounds:")
    for name, got in runs.items():
        p50, p95, p99 = (statistics.median(r[key] for r in got) for key in ("p50", "p95", "p99"))
        dropped = statistics.median(r["dropped"] for r in got)
        print(f"  {name:13} p50 {p50:5.1f} p95 {p95:5.1f} p99 {p99:5.1f} ms, {dropped:.0f} dropped")


if __name__ == "__main__":
    main()
