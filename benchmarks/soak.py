"""Soak: `livefuse run` for a long time, watching for leaks, drops and latency drift (not a CI test).

Runs the daemon at 720p30 with background-blur into `null` (the primary output, whose latency is
measured) plus an H.264 recording, plus `preview` with no viewer (it costs nothing then: it only
serves /metrics and /api/status, which is how this script reads the figures during the run).
Every --interval seconds it samples the daemon's RSS, open file descriptors and threads (psutil)
and its counters and latency histogram (/metrics). At the end it writes

- `results/soak.json`: the command, every sample, and a summary: RSS growth after the warm-up,
  fd and thread ranges, drops, and latency p99 per --window seconds;
- `results/soak.png`: the same as a plot (matplotlib, the `bench` extra).

p99 per window comes from the Prometheus histogram (the difference of its cumulative bucket counts
between window ends, interpolated within the bucket as Prometheus' histogram_quantile does), so it is
only as fine as the buckets; beside it is the exact p99 the daemon's own stats line reports at each
window end (over its last 20000 frames, about 11 minutes at 30 fps).

    .venv/bin/python benchmarks/soak.py --duration 1800 [--taskset 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, Any]:
    """The counters and the frame latency histogram from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, Any] = {"buckets": {}, "output_dropped": {}, "output_errors": {}, "output_frames": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "livefuse_frame_latency_seconds_bucket":
                out["buckets"][labels["le"]] = value
            elif name in (
                "livefuse_frames_in_total",
                "livefuse_frames_out_total",
                "livefuse_frames_dropped_total",
                "livefuse_frames_processed_total",
            ):
                out[name.removeprefix("livefuse_").removesuffix("_total")] = value
            elif name in (
                "livefuse_output_dropped_total",
                "livefuse_output_errors_total",
                "livefuse_output_frames_total",
            ):
                out[name.removeprefix("livefuse_").removesuffix("_total")][labels["output"]] = value
    return out


def histogram_quantile(q: float, buckets: dict[str, float]) -> float | None:
    """Prometheus' histogram_quantile on cumulative {le: count}: linear within the bucket, in ms."""
    bounds = sorted(((math.inf if le == "+Inf" else float(le)), count) for le, count in buckets.items())
    total = bounds[-1][1] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if math.isinf(upper):
                return round(lower * 1000, 1)  # above the last finite bucket: its bound is all we know
            inside = count - below
            fraction = (rank - below) / inside if inside > 0 else 1.0
            return round((lower + (upper - lower) * fraction) * 1000, 1)
        lower, below = upper, count
    return None


class StderrReader(threading.Thread):
    """Keeps the daemon's log (to a file) and the latest JSON stats line it printed."""

    def __init__(self, stream: Any, log_path: Path) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.log_path = log_path
        self.latest: dict[str, Any] | None = None

    def run(self) -> None:
        with self.log_path.open("w") as log:
            for line in self.stream:
                if line.startswith('{"stats"'):
                    try:
                        self.latest = json.loads(line)["stats"]
                    except ValueError:
                        pass
                    continue  # every 5 s: the samples keep what matters
                log.write(line)
                log.flush()


def sample(proc: psutil.Process, port: int, started: float, reader: StderrReader) -> dict[str, Any]:
    with proc.oneshot():
        row: dict[str, Any] = {
            "t_s": round(time.monotonic() - started, 1),
            "rss_mb": round(proc.memory_info().rss / 2**20, 2),
            "fds": proc.num_fds(),
            "threads": proc.num_threads(),
            "cpu_s": round(sum(proc.cpu_times()[:2]), 2),
        }
    try:
        row["metrics"] = scrape(port)
    except OSError as exc:
        row["metrics_error"] = str(exc)
    if reader.latest is not None:
        row["stats_latency_ms"] = reader.latest.get("latency_ms")
    return row


def summarise(
    samples: list[dict[str, Any]], warmup_s: float, window_s: float, final: dict[str, Any] | None, fps: float
) -> dict[str, Any]:
    after = [s for s in samples if s["t_s"] >= warmup_s] or samples
    rss = [s["rss_mb"] for s in after]
    times = [s["t_s"] for s in after]
    slope = 0.0
    if len(after) > 2:
        mean_t, mean_r = sum(times) / len(times), sum(rss) / len(rss)
        var = sum((t - mean_t) ** 2 for t in times)
        slope = sum((t - mean_t) * (r - mean_r) for t, r in zip(times, rss, strict=True)) / var if var else 0.0
    windows = []
    with_metrics = [s for s in samples if "metrics" in s]
    edges = with_metrics[:1]
    for s in with_metrics[1:]:
        if s["t_s"] - edges[-1]["t_s"] >= window_s - 1e-6 or s is with_metrics[-1]:
            edges.append(s)
    for start, end in itertools.pairwise(edges):
        delta = {le: end["metrics"]["buckets"].get(le, 0) - count for le, count in start["metrics"]["buckets"].items()}
        frames = end["metrics"].get("frames_out", 0) - start["metrics"].get("frames_out", 0)
        captured = end["metrics"].get("frames_in", 0) - start["metrics"].get("frames_in", 0)
        dropped = end["metrics"].get("frames_dropped", 0) - start["metrics"].get("frames_dropped", 0)
        span = end["t_s"] - start["t_s"]
        windows.append(
            {
                "from_s": start["t_s"],
                "to_s": end["t_s"],
                "frames_out": int(frames),
                "fps": round(frames / span, 2) if span else 0.0,
                "dropped": int(dropped),
                "dropped_pct": round(100 * dropped / captured, 3) if captured else 0.0,
                "p50_ms_hist": histogram_quantile(0.50, delta),
                "p99_ms_hist": histogram_quantile(0.99, delta),
                "p99_ms_stats_line": (end.get("stats_latency_ms") or {}).get("p99"),
            }
        )
    last = with_metrics[-1]["metrics"] if with_metrics else {}
    summary: dict[str, Any] = {
        "duration_s": samples[-1]["t_s"] if samples else 0,
        "warmup_s": warmup_s,
        "rss_mb_at_warmup_end": rss[0] if rss else None,
        "rss_mb_last": rss[-1] if rss else None,
        "rss_growth_after_warmup_mb": round(rss[-1] - rss[0], 2) if rss else None,
        "rss_mb_min_max_after_warmup": [min(rss), max(rss)] if rss else None,
        "rss_slope_mb_per_h_after_warmup": round(slope * 3600, 2),
        "fds_min_max_after_warmup": [min(s["fds"] for s in after), max(s["fds"] for s in after)] if after else None,
        "threads_min_max_after_warmup": (
            [min(s["threads"] for s in after), max(s["threads"] for s in after)] if after else None
        ),
        "frames_in": last.get("frames_in"),
        "frames_out": last.get("frames_out"),
        "dropped": last.get("frames_dropped"),
        "output_dropped": last.get("output_dropped"),
        "output_errors": last.get("output_errors"),
        "dropped_pct": (round(100 * last["frames_dropped"] / last["frames_in"], 3) if last.get("frames_in") else None),
        "expected_frames": round(fps * (samples[-1]["t_s"] if samples else 0)),
        "windows": windows,
    }
    if final is not None:
        summary["final_stats"] = final
    return summary


def plot(samples: list[dict[str, Any]], summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    axes[0].plot(minutes, [s["rss_mb"] for s in samples])
    axes[0].axvline(summary["warmup_s"] / 60, color="grey", linestyle=":", label="end of warm-up")
    axes[0].set_ylabel("RSS (MB)")
    axes[0].legend(loc="lower right")
    axes[1].plot(minutes, [s["fds"] for s in samples], label="open fds")
    axes[1].plot(minutes, [s["threads"] for s in samples], label="threads")
    axes[1].set_ylabel("count")
    axes[1].legend(loc="lower right")
    mids = [(w["from_s"] + w["to_s"]) / 120 for w in summary["windows"]]
    axes[2].step(
        mids,
        [w["p99_ms_hist"] or 0 for w in summary["windows"]],
        where="mid",
        marker="o",
        label="p99 per window (histogram)",
    )
    axes[2].plot(
        mids,
        [w["p99_ms_stats_line"] or 0 for w in summary["windows"]],
        marker="x",
        linestyle="--",
        label="p99, last 20000 frames (stats line)",
    )
    axes[2].step(
        mids,
        [w["p50_ms_hist"] or 0 for w in summary["windows"]],
        where="mid",
        marker=".",
        label="p50 per window (histogram)",
    )
    axes[2].set_ylabel("latency (ms)")
    axes[2].set_ylim(bottom=0)
    axes[2].legend(loc="lower right", fontsize=8)
    with_metrics = [s for s in samples if "metrics" in s]
    axes[3].plot(
        [s["t_s"] / 60 for s in with_metrics],
        [s["metrics"].get("frames_dropped", 0) for s in with_metrics],
        label="dropped (pipeline input)",
    )
    axes[3].set_ylabel("frames dropped (cumulative)")
    axes[3].set_xlabel("minutes")
    axes[3].legend(loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default: 3600)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default: 10)")
    parser.add_argument("--window", type=float, default=300.0, help="latency window in seconds (default: 300)")
    parser.add_argument("--warmup", type=float, default=300.0, help="RSS growth is counted after this (default: 300)")
    parser.add_argument("--preset", default="background-blur")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--taskset", metavar="CPUS", help="pin the daemon with `taskset -c CPUS`")
    parser.add_argument(
        "--recording",
        type=Path,
        default=Path("/tmp/livefuse-soak.mp4"),
        help="the file output (deleted at the end; default: /tmp/livefuse-soak.mp4)",
    )
    parser.add_argument(
        "--recording-options",
        default="",
        help="the recording's quality options, e.g. preset=veryfast (default: the recording defaults)",
    )
    parser.add_argument("--keep-recording", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for soak.json and soak.png")
    parser.add_argument("--name", default="soak", help="file name stem (default: soak)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stats_path = args.out / f"{args.name}-final-stats.json"
    command = [
        sys.executable,
        "-m",
        "livefuse",
        "run",
        "--source",
        "demo",
        "--size",
        args.size,
        "--fps",
        f"{args.fps:g}",
        "--preset",
        args.preset,
        "--output",
        "null",
        "--output",
        f"file:{args.recording}" + (f"?{args.recording_options}" if args.recording_options else ""),
        "--output",
        "preview",
        "--port",
        str(port),
        "--no-auth",
        "--duration",
        f"{args.duration:g}",
        "--stats-json",
        str(stats_path),
        "--log-format",
        "json",
    ]
    if args.taskset:
        command = ["taskset", "-c", args.taskset, *command]
    print("soak:", " ".join(command), flush=True)
    daemon = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    reader = StderrReader(daemon.stderr, args.out / f"{args.name}-daemon.log")
    reader.start()
    proc = psutil.Process(daemon.pid)
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    next_at = started + args.interval
    try:
        while daemon.poll() is None:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += args.interval
            if daemon.poll() is not None:
                break
            try:
                samples.append(sample(proc, port, started, reader))
            except psutil.NoSuchProcess:
                break
            last = samples[-1]
            metrics = last.get("metrics", {})
            print(
                f"{last['t_s']:7.0f} s  rss {last['rss_mb']:7.1f} MB  fds {last['fds']:3d}  "
                f"threads {last['threads']:3d}  in {metrics.get('frames_in', 0):.0f}  "
                f"out {metrics.get('frames_out', 0):.0f}  dropped {metrics.get('frames_dropped', 0):.0f}",
                flush=True,
            )
    except KeyboardInterrupt:
        daemon.terminate()
    daemon.wait(timeout=60)
    reader.join(timeout=5)
    final = json.loads(stats_path.read_text()) if stats_path.is_file() else None
    if not args.keep_recording:
        args.recording.unlink(missing_ok=True)
    summary = summarise(samples, args.warmup, args.window, final, args.fps)
    result = {
        "command": command,
        "exit_code": daemon.returncode,
        "interval_s": args.interval,
        "machine": {
            "platform": platform.platform(),
            "cpus": psutil.cpu_count(),
            "load_avg_at_end": [round(x, 2) for x in psutil.getloadavg()],
        },
        "summary": summary,
        "samples": samples,
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    try:
        plot(
            samples,
            summary,
            args.out / f"{args.name}.png",
            f"livefuse soak: {args.preset} {args.size}@{args.fps:g}, null + file + preview (idle), "
            f"{summary['duration_s'] / 60:.1f} min",
        )
    except ImportError:
        print("soak: no plot: install the bench extra (pip install -e '.[bench]')", file=sys.stderr)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("windows", "final_stats")}, indent=1))
    for w in summary["windows"]:
        print(
            f"  {w['from_s'] / 60:5.1f}-{w['to_s'] / 60:5.1f} min  fps {w['fps']:5.2f}  dropped {w['dropped']:4d}  "
            f"p50 {w['p50_ms_hist']} ms  p99 {w['p99_ms_hist']} ms (stats line p99 {w['p99_ms_stats_line']} ms)"
        )
    return 0 if daemon.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
