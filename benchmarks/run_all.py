"""`make bench`: livefuse against its peers on one clip, released in real time; JSON, plots and a table.

1. Writes the clip once (benchmarks/clip/, ignored by git): DemoSource rendered to H.264.
2. Creates benchmarks/.venv-peers for MediaPipe (its wheel pins its own OpenCV and numpy < 2,
   which conflict with livefuse's) unless it is there already.
3. Real-time runs at 30 fps: livefuse background-blur (pipelined and sequential) and passthrough
   (the pipeline's own overhead), then each peer, all reading the same clip released at 30 fps.
4. Capacity runs: the same contenders with frames released at 240 fps from 60 preloaded frames
   (releasing costs no CPU), so the output rate is the most each can do: the throughput figure.
5. Faces: livefuse's `face` stage (beauty's and anonymise's settings) against MediaPipe's FaceMesh on
   one face, three faces and a face that enters mid-clip (benchmarks/face_clips.py), and `livefuse bench`
   end to end for anonymise and beauty. `--faces-only` runs just this part.
6. benchmarks/results/*.json, comparison plots, and results/table.md for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
CLIP_DIR = BENCH / "clip"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_REQUIREMENTS = ["mediapipe==0.10.14", "numpy<2", "tflite-runtime==2.14.0"]
PRESET = "background-blur"
SIZE = (1280, 720)
FPS = 30.0
CAPACITY_FPS = 240.0
PRELOAD = 60

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))  # face_clips


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def make_clip(frames: int) -> Path:
    """The demo source rendered once to an H.264 file: every contender decodes the same frames."""
    import av

    from livefuse.sources.demo import DemoSource

    path = CLIP_DIR / f"demo-{SIZE[0]}x{SIZE[1]}-{FPS:g}fps-{frames}.mp4"
    if path.is_file():
        return path
    CLIP_DIR.mkdir(parents=True, exist_ok=True)
    log(f"writing the clip {path.relative_to(ROOT)} ({frames} frames)")
    demo = DemoSource(SIZE, FPS, paced=False)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"crf": "16", "preset": "medium"}
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(demo.read(), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    tmp.replace(path)
    return path


def peers_python() -> Path | None:
    """benchmarks/.venv-peers' python with MediaPipe installed (created on first use); None if it can't be."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".installed"
    if stamp.is_file() and stamp.read_text().strip() == " ".join(PEERS_REQUIREMENTS):
        return python
    log(f"creating {PEERS_VENV.relative_to(ROOT)} with {', '.join(PEERS_REQUIREMENTS)}")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS_REQUIREMENTS], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        log(f"MediaPipe peer skipped: its virtualenv could not be set up ({exc})")
        return None
    stamp.write_text(" ".join(PEERS_REQUIREMENTS))
    return python


def blur_match() -> tuple[int, float]:
    """(downscale, sigma at that scale) of the background-blur preset, so the peers blur as strongly."""
    from livefuse.presets import load_preset
    from livefuse.stages.background.common import blur_geometry

    preset = load_preset(PRESET)
    params = next(c.params for c in preset.stages if c.type == "background")
    small = (SIZE[0] // int(params["downscale"]), SIZE[1] // int(params["downscale"]))
    (blur_width, _), sigma = blur_geometry(SIZE[0], small, float(params["strength"]))  # the stage's own choice
    return round(SIZE[0] / blur_width), sigma


def run(cmd: list[str], name: str) -> bool:
    log(f"{name}: {' '.join(str(c) for c in cmd)}")
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, cwd=ROOT, env=env)
    if done.returncode != 0:
        log(f"{name} failed with exit code {done.returncode}")
    return done.returncode == 0


def livefuse_cmd(preset: str, clip: Path, out: str, frames: int, fps: float, mode: str, preload: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "livefuse",
        "bench",
        "--preset",
        preset,
        "--source",
        str(clip),
        "--size",
        f"{SIZE[0]}x{SIZE[1]}",
        "--fps",
        f"{fps:g}",
        "--frames",
        str(frames),
        "--mode",
        mode,
        "--preload",
        str(preload),
        "--json",
        str(RESULTS / f"{out}.json"),
        "--plot",
        str(RESULTS / f"{out}.png"),
    ]


def peer_cmds(
    python_peers: Path | None, clip: Path, frames: int, fps: float, preload: int, tag: str
) -> dict[str, list[str]]:
    downscale, sigma = blur_match()
    common = [
        "--clip",
        str(clip),
        "--size",
        f"{SIZE[0]}x{SIZE[1]}",
        "--fps",
        f"{fps:g}",
        "--frames",
        str(frames),
        "--downscale",
        str(downscale),
        "--blur-sigma",
        f"{sigma:.3f}",
        "--preload",
        str(preload),
    ]
    cmds = {}
    if python_peers is not None:
        cmds["mediapipe"] = [str(python_peers), "benchmarks/peers/mediapipe_blur.py", *common]
        cmds["mediapipe-docs"] = [*cmds["mediapipe"], "--blur", "docs"]  # the docs' own (55, 55) blur
    cmds["opencv-ort"] = [sys.executable, "benchmarks/peers/opencv_ort.py", *common]
    cmds["aiortc"] = [sys.executable, "benchmarks/peers/aiortc_track.py", *common]
    return {name: [*cmd, "--json", str(RESULTS / f"peer-{name}{tag}.json")] for name, cmd in cmds.items()}


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def contenders(tag: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, mode result) of every contender of one set of runs, livefuse first."""
    rows: list[tuple[str, dict[str, Any]]] = []
    ours = load(f"livefuse-{PRESET}{tag}")
    if ours:
        rows += [(f"livefuse {mode}", m) for mode, m in ours["modes"].items()]
    for peer in ("mediapipe", "mediapipe-docs", "opencv-ort", "aiortc"):
        result = load(f"peer-{peer}{tag}")
        if result:
            blur = ", docs blur" if result.get("blur") == "docs" else ""
            rows += [(f"{result['peer']} ({mode}{blur})", m) for mode, m in result["modes"].items()]
    return rows


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        "| contender | fps | dropped | p50 ms | p95 ms | p99 ms | max ms | CPU % | peak RSS MB | stages p50/p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, m in rows:
        lat = m["latency_ms"]
        stages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in m["stages_ms"].items())
        lines.append(
            f"| {label} | {m['fps']:.1f} | {m['dropped']} ({m['dropped_percent']:.1f}%) | {lat['p50']:.1f} | "
            f"{lat['p95']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} | {m['cpu_percent']:.0f} | "
            f"{m['rss_mb']:.0f} | {stages} |"
        )
    return "\n".join(lines)


FACE_CLIPS = {"1face": 1, "3faces": 3, "enters": 1}  # clip -> faces to look for
FACE_PRESETS = ("beauty", "anonymise")


def face_runs(python_peers: Path | None, frames: int) -> bool:
    """The face stage against MediaPipe FaceMesh on each face clip, then anonymise and beauty end to end."""
    from face_clips import write_clips

    clips = write_clips(CLIP_DIR, frames)
    ok = True
    for name, faces in FACE_CLIPS.items():
        common = [
            "--clip",
            str(clips[name]),
            "--size",
            f"{SIZE[0]}x{SIZE[1]}",
            "--fps",
            f"{FPS:g}",
            "--frames",
            str(frames),
            "--max-faces",
            str(faces),
        ]
        for preset in FACE_PRESETS:
            ok &= run(
                [
                    sys.executable,
                    "benchmarks/peers/livefuse_face.py",
                    *common,
                    "--preset",
                    preset,
                    "--json",
                    str(RESULTS / f"face-{name}-livefuse-{preset}.json"),
                ],
                f"face {name} {preset}",
            )
        if python_peers is not None:
            ok &= run(
                [
                    str(python_peers),
                    "benchmarks/peers/mediapipe_facemesh.py",
                    *common,
                    "--json",
                    str(RESULTS / f"face-{name}-mediapipe.json"),
                ],
                f"face {name} mediapipe",
            )
    for preset in FACE_PRESETS:
        ok &= run(livefuse_cmd(preset, make_clip(frames), f"livefuse-{preset}", frames, FPS, "both", 0), preset)
    return ok


def face_table() -> str:
    """Face stage against FaceMesh per clip, and the face presets end to end."""
    lines = [
        "| clip | contender | p50 ms | p95 ms | faces per frame | frames without a face | dropped |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in FACE_CLIPS:
        for who in [f"livefuse-{p}" for p in FACE_PRESETS] + ["mediapipe"]:
            result = load(f"face-{name}-{who}")
            if not result:
                continue
            m = next(iter(result["modes"].values()))
            face, faces = m["stages_ms"]["face"], result["faces"]
            lines.append(
                f"| {name} | {result['peer']} | {face['p50']:.1f} | {face['p95']:.1f} | "
                f"{faces['per_frame']:.2f} | {faces['frames_without']} of {faces['frames']} | "
                f"{m['dropped']} |"
            )
    lines += [
        "",
        "| preset | mode | fps | dropped | p50 ms | p95 ms | p99 ms | stages p50/p95 ms |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for preset in FACE_PRESETS:
        result = load(f"livefuse-{preset}")
        for mode, m in (result or {}).get("modes", {}).items():
            lat = m["latency_ms"]
            stages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in m["stages_ms"].items())
            lines.append(
                f"| {preset} | {mode} | {m['fps']:.1f} | {m['dropped']} | {lat['p50']:.1f} | "
                f"{lat['p95']:.1f} | {lat['p99']:.1f} | {stages} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames released per real-time run (default 600)")
    parser.add_argument("--capacity-frames", type=int, default=600, help="frames per capacity run (default 600)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--faces-only", action="store_true", help="only the face stage and face presets")
    parser.add_argument("--face-frames", type=int, default=300, help="frames per face run (default 300)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.frames)
    python_peers = None if args.no_peers else peers_python()
    if args.faces_only:
        ok = face_runs(python_peers, args.face_frames)
        text = f"### Faces: livefuse's face stage and MediaPipe FaceMesh, released at {FPS:g} fps\n\n{face_table()}\n"
        (RESULTS / "table-faces.md").write_text(text)
        print(text)
        return 0 if ok else 1
    started = time.time()
    ok = True
    # Real time: what a viewer sees at 30 fps.
    ok &= run(livefuse_cmd(PRESET, clip, f"livefuse-{PRESET}", args.frames, FPS, "both", 0), "livefuse")
    ok &= run(livefuse_cmd("passthrough", clip, "livefuse-passthrough", args.frames, FPS, "both", 0), "overhead")
    if not args.no_peers:
        for name, cmd in peer_cmds(python_peers, clip, args.frames, FPS, 0, "").items():
            ok &= run(cmd, name)
    # Capacity: frames released faster than anyone can take them; the output rate is the throughput.
    ok &= run(
        livefuse_cmd(PRESET, clip, f"livefuse-{PRESET}-capacity", args.capacity_frames, CAPACITY_FPS, "both", PRELOAD),
        "livefuse capacity",
    )
    if not args.no_peers:
        for name, cmd in peer_cmds(
            python_peers, clip, args.capacity_frames, CAPACITY_FPS, PRELOAD, "-capacity"
        ).items():
            ok &= run(cmd, f"{name} capacity")
    ok &= face_runs(python_peers, args.face_frames)

    from livefuse.bench.plot import plot_latency

    realtime, capacity = contenders(""), contenders("-capacity")
    title = f"{PRESET} {SIZE[0]}x{SIZE[1]}"
    if realtime:
        plot_latency(realtime, RESULTS / "comparison.png", f"{title}, released at {FPS:g} fps")
    if capacity:
        plot_latency(capacity, RESULTS / "comparison-capacity.png", f"{title}, released at {CAPACITY_FPS:g} fps")
    by_label = dict(capacity)
    ours = by_label.get("livefuse pipelined")
    mp_label = next((label for label in by_label if label.startswith("mediapipe") and "docs" not in label), None)
    mp_docs = next((label for label in by_label if label.startswith("mediapipe") and "docs" in label), None)
    summary = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
            "gpu": "none",
        },
        "wall_s": round(time.time() - started, 1),
        "realtime": {
            label: {k: m[k] for k in ("fps", "dropped", "latency_ms", "cpu_percent", "rss_mb")} for label, m in realtime
        },
        "capacity_fps": {label: m["fps"] for label, m in capacity},
    }
    if ours and mp_label:
        summary["throughput_vs_mediapipe"] = round(ours["fps"] / by_label[mp_label]["fps"], 2)
    if ours and mp_docs:
        summary["throughput_vs_mediapipe_docs_blur"] = round(ours["fps"] / by_label[mp_docs]["fps"], 2)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = (
        f"### Real time: released at {FPS:g} fps\n\n{table(realtime)}\n\n"
        f"### Capacity: released at {CAPACITY_FPS:g} fps from {PRELOAD} preloaded frames\n\n{table(capacity)}\n"
    )
    if "throughput_vs_mediapipe" in summary:
        text += f"\nlivefuse pipelined / MediaPipe throughput (capacity): x{summary['throughput_vs_mediapipe']}"
        if "throughput_vs_mediapipe_docs_blur" in summary:
            text += f" (x{summary['throughput_vs_mediapipe_docs_blur']} against its docs' blur)"
        text += "\n"
    faces = f"### Faces: livefuse's face stage and MediaPipe FaceMesh, released at {FPS:g} fps\n\n{face_table()}\n"
    (RESULTS / "table-faces.md").write_text(faces)
    text += f"\n{faces}"
    (RESULTS / "table.md").write_text(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
