"""The GPU check's driver (run by check.sh): every shipped preset through `livefuse bench` on CUDA and
TensorRT, frames kept on the device, and one JSON per provider in benchmarks/results/gpu-PROVIDER.json.

Per preset: the provider the sessions really got, latency p50/p95/p99 and fps (`livefuse bench`'s
pipelined mode: frames released in real time), stage times, full-frame copies per frame at the device
boundary (uploads, downloads, any a stage forced, by stage) and the engine's host<->device copies, and
GPU memory (nvidia-smi, this process). face-swap, face-swap-enhance and face-swap-talk run on stand-ins
with the real models' inputs and outputs (tests/models_builder.py): their figures are the pipeline's
and the device plumbing's, not inswapper's or GFPGAN's own cost.

`--provider cpu` is the dry run for a machine without a GPU: the same device path, with OrtValues
bound on "cpu", by default on 640x360 frames, 30 of them, written to gpu-dryrun-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # models_builder: the stand-ins the swap and enhance tests use

from livefuse.bench.runner import BenchConfig, run_bench  # noqa: E402
from livefuse.presets import PRESETS_DIR  # noqa: E402

GPU_SIZE, GPU_FRAMES = (1920, 1080), 300
DRY_SIZE, DRY_FRAMES = (640, 360), 30
STANDIN_PRESETS = ("face-swap", "face-swap-enhance", "face-swap-talk")


def standin_models(folder: Path) -> dict[str, Path]:
    """The pulled face models' stand-ins (real names, shapes and dtypes) and a source photo."""
    import models_builder as mb

    return mb.face_standins(folder)


def preset_for(name: str, folder: Path, models: dict[str, Path]) -> str:
    """The preset to run: a shipped one by name, or a copy of it on the stand-ins."""
    if name not in STANDIN_PRESETS:
        return name
    text = (PRESETS_DIR / f"{name}.toml").read_text(encoding="utf-8")
    for model in ("inswapper_128", "w600k_r50", "gfpgan_1.4"):
        text = re.sub(rf'= "{re.escape(model)}"', f'= "{models[model].as_posix()}"', text)
    text = re.sub(r'source_image = ""', f'source_image = "{models["source"].as_posix()}"', text)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def gpu_memory_mb() -> dict[str, Any]:
    """This process's and the whole GPU's memory in use, from nvidia-smi (empty where there is none)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    out: dict[str, Any] = {}
    try:
        apps = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        mine = [
            int(float(line.split(",")[1]))
            for line in apps.splitlines()
            if line.strip() and int(line.split(",")[0]) == os.getpid()
        ]
        out["process_mb"] = sum(mine)
        total = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.used,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        name, used, size, driver = (v.strip() for v in total.splitlines()[0].split(","))
        out.update({"gpu": name, "used_mb": int(float(used)), "total_mb": int(float(size)), "driver": driver})
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as exc:
        out["error"] = str(exc)
    return out


def environment(provider: str) -> dict[str, Any]:
    import onnxruntime as ort

    from livefuse.device import pinned

    runtime = pinned.runtime_path()
    return {
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "python": platform.python_version(),
        "machine": platform.node(),
        "requested_provider": provider,
        "cuda_runtime": str(runtime) if runtime else None,
        **gpu_memory_mb(),
    }


def run_one(
    preset: str, provider: str, size: tuple[int, int], frames: int, fps: float, implementation: str
) -> dict[str, Any]:
    config = BenchConfig(
        preset=preset,
        size=size,
        fps=fps,
        frames=frames,
        provider=provider,
        preload=60,
        implementation=implementation,
        warmup=10,
    )
    started = time.monotonic()
    result = run_bench(config, ("pipelined",), isolate=False)
    mode = result["modes"]["pipelined"]
    mode.pop("timeline", None)
    return {
        "provider": mode["provider"],
        "fps": mode["fps"],
        "dropped": mode["dropped"],
        "latency_ms": mode["latency_ms"],
        "stages_ms": mode["stages_ms"],
        "device_frames": mode["device_frames"],
        "copies_per_frame": mode["copies_per_frame"],
        "stage_errors": mode["stage_errors"],
        "gpu_memory": gpu_memory_mb(),
        "wall_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Every shipped preset on CUDA and TensorRT with frames kept on the device; one JSON per "
        "provider in benchmarks/results/. --provider cpu is a dry run for a machine without a GPU: "
        f"by default {DRY_SIZE[0]}x{DRY_SIZE[1]}, {DRY_FRAMES} frames a preset (GPU runs: "
        f"{GPU_SIZE[0]}x{GPU_SIZE[1]}, {GPU_FRAMES} frames), into gpu-dryrun-cpu.json."
    )
    parser.add_argument(
        "--provider",
        action="append",
        choices=("cuda", "tensorrt", "cpu"),
        help="repeatable (default: cuda and tensorrt)",
    )
    parser.add_argument("--size", help="WxH (default 1920x1080; dry run 640x360)")
    parser.add_argument("--frames", type=int, help="frames per preset (default 300; dry run 30)")
    parser.add_argument("--fps", type=float, default=30.0, help="release rate (default 30)")
    parser.add_argument("--preset", action="append", help="repeatable (default: every shipped preset)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=270.0,
        help="stop starting runs after this many seconds, so the check ends within 5 minutes; "
        "runs left out are listed as skipped (default 270)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    providers = args.provider or ["cuda", "tensorrt"]
    presets = args.preset or sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))
    started = time.monotonic()
    failed = False
    with tempfile.TemporaryDirectory(prefix="livefuse-gpu-check-") as tmp:
        folder = Path(tmp)
        models = standin_models(folder)
        for provider in providers:
            dry = provider == "cpu"
            size = tuple(int(v) for v in args.size.split("x")) if args.size else (DRY_SIZE if dry else GPU_SIZE)
            frames = args.frames or (DRY_FRAMES if dry else GPU_FRAMES)
            report: dict[str, Any] = {
                "what": "livefuse GPU check: every shipped preset, frames kept on the device (issue 9)",
                "dry_run": dry,
                "size": list(size),
                "frames": frames,
                "fps_target": args.fps,
                "standins": list(STANDIN_PRESETS),
                "environment": environment(provider),
                "presets": {},
            }
            for name in presets:
                if time.monotonic() - started > args.budget_s:
                    report["presets"][name] = {"skipped": f"time budget of {args.budget_s:g} s spent"}
                    continue
                try:
                    entry = run_one(
                        preset_for(name, folder, models), provider, size, frames, args.fps, "graph" if dry else "auto"
                    )
                except Exception as exc:  # noqa: BLE001 - one preset failing must not hide the others' figures
                    entry = {"error": f"{type(exc).__name__}: {exc}"}
                    failed = True
                else:
                    want = (
                        "CPUExecutionProvider"
                        if dry
                        else {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[provider]
                    )
                    got = entry["provider"]
                    if got not in (want, "none (no stage)"):
                        entry["error"] = f"ran on {got}, not {want}: the provider fell back (see the log above)"
                        failed = True
                    per = (entry["device_frames"] or {}).get("per_frame", {})
                    if per.get("uploads") != 1.0 or per.get("downloads") != 1.0 or per.get("forced_copies"):
                        entry.setdefault("error", f"not one upload and one download per frame: {per}")
                        failed = True
                report["presets"][name] = entry
                print(summary(name, provider, entry), flush=True)
            out = args.out / ("gpu-dryrun-cpu.json" if dry else f"gpu-{provider}.json")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {out}", flush=True)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    return 1 if failed else 0


def summary(name: str, provider: str, entry: dict[str, Any]) -> str:
    if "latency_ms" not in entry:
        return f"{provider:9} {name:20} {entry.get('error') or entry.get('skipped')}"
    lat = entry["latency_ms"]
    per = (entry["device_frames"] or {}).get("per_frame", {})
    gpu = entry["gpu_memory"].get("process_mb", "-")
    line = (
        f"{provider:9} {name:20} p50 {lat['p50']:6.1f} ms  p99 {lat['p99']:6.1f} ms  fps {entry['fps']:5.1f}  "
        f"copies/frame up {per.get('uploads')} down {per.get('downloads')} forced {per.get('forced_copies')}  "
        f"gpu {gpu} MB  on {entry['provider']}"
    )
    return line + (f"  ERROR {entry['error']}" if "error" in entry else "")


if __name__ == "__main__":
    sys.exit(main())
