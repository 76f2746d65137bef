"""How many WHIP sessions one daemon filters: fps and glass-to-glass latency for N = 1, 2, 4, ... streams.

Not a CI test. The daemon (`livefuse serve`: sessions only, no stream of its own) runs pinned to
`--daemon-cores`; each client is a process of its own, pinned to `--client-cores` (with `taskset`,
where it exists). A client sends the astronaut at the session size and rate with its frame number
drawn as a code where the filter keeps the picture (the chest), gets its filtered stream back on the
same connection, reads the code and times the frame from handing it to its sender to receiving it
back decoded: glass to glass, the daemon's decode, filter and encode and the network included. To keep
the clients cheap, the clip (300 frames) is encoded once as VP8 and every client replays its packets
(`--live-encode`: each client encodes as a camera would, and its encoder's time is counted too).
Clients, like browsers, hand a frame to their decoder once its last packet is in (web/jitter.py). The
ladder stops when admission refuses a session (503). Each level runs with batching off and then on
(`--batch-delay-ms`), each on a fresh daemon; `--loop-priority both` also runs each with the daemon's
event loop at normal, then real-time priority.

    .venv/bin/python benchmarks/streams.py [--preset background-blur] [--size 640x360] [--fps 30]
        [--streams 1,2,4,6,8] [--seconds 8] [--daemon-cores 0] [--client-cores 1] [--batching both]
        [--loop-priority realtime|normal|both]

Writes benchmarks/results/streams.json and prints the table (benchmarks/README.md has the last one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BITS, BLOCK = 12, 12  # the frame number, mod 4096, as 12 blocks of 12 px: one row, and its inverse below
CODE_AT = (48, 296)  # top-left of the code: on the astronaut's chest, which background-blur and anonymise keep


def draw_code(image: np.ndarray, number: int) -> np.ndarray:
    x0, y0 = CODE_AT
    for bit in range(BITS):
        on = (number >> bit) & 1
        x = x0 + bit * BLOCK
        image[y0 : y0 + BLOCK, x : x + BLOCK] = 255 if on else 0
        image[y0 + BLOCK : y0 + 2 * BLOCK, x : x + BLOCK] = 0 if on else 255
    return image


def read_code(luma: np.ndarray) -> int | None:
    """The number drawn in a received frame's luma, or None when the two rows disagree (a damaged frame)."""
    x0, y0 = CODE_AT
    number = 0
    for bit in range(BITS):
        x = x0 + bit * BLOCK + 3
        top = luma[y0 + 3 : y0 + BLOCK - 3, x : x + BLOCK - 6].mean() > 128
        bottom = luma[y0 + BLOCK + 3 : y0 + 2 * BLOCK - 3, x : x + BLOCK - 6].mean() > 128
        if top == bottom:
            return None
        number |= int(top) << bit
    return number


# -- one client (a process of its own) ----------------------------------------------------------------

LOOP_FRAMES = 300  # the replayed clip: 10 s at 30 fps, frame n carrying code n


def encode_clip(size: tuple[int, int], fps: int, path: Path) -> None:
    """The astronaut with codes 0..LOOP_FRAMES-1, encoded once as VP8 the way aiortc's encoder would
    (realtime, CBR at its default rate, a keyframe each second so the loop and any loss recover):
    replayed, it keeps the clients' CPU for decoding what comes back."""
    import av

    from livefuse.web.whip_client import astronaut_frame

    base = astronaut_frame(size)
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = size[0], size[1], "yuv420p"
    codec.bit_rate, codec.gop_size = 500_000, fps
    codec.time_base = Fraction(1, fps)
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "lag-in-frames": "0",
        "minrate": "500000",
        "maxrate": "500000",
        "bufsize": "500000",
    }
    packets: list[bytes] = []
    for n in range(LOOP_FRAMES):
        frame = av.VideoFrame.from_ndarray(draw_code(base.copy(), n), format="bgr24").reformat(format="yuv420p")
        frame.pts = n
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    if len(packets) != LOOP_FRAMES:
        raise SystemExit(f"the encoder gave {len(packets)} packets for {LOOP_FRAMES} frames")
    path.write_bytes(pickle.dumps(packets))


def replay_camera(packets: list[bytes], fps: int) -> Any:
    """A WHIP camera that sends the pre-encoded packets in a loop, on time (aiortc packs an `av.Packet` as
    it is, without its encoder)."""
    import av

    from livefuse.web.whip_client import PacedCamera

    class ReplayCamera(PacedCamera):
        async def recv(self) -> av.Packet:  # type: ignore[override]
            number = await self.next_due()
            packet = av.Packet(packets[number % len(packets)])
            packet.pts, packet.time_base = self.pts(number), Fraction(1, 90000)
            self.mark_sent(number)
            return packet

    return ReplayCamera(lambda _: np.zeros(0), fps)


async def client_main(
    url: str, preset: str, size: tuple[int, int], fps: int, measure_at: float, seconds: float, packets_file: Path | None
) -> dict:
    import aiohttp

    from livefuse.web.whip_client import PacedCamera, WhipClient, astronaut_frame

    if packets_file is not None:  # replay: the code is the frame number modulo the clip's length
        camera, period = replay_camera(pickle.loads(packets_file.read_bytes()), fps), LOOP_FRAMES
    else:  # encode live, as a real camera would
        base = astronaut_frame(size)
        camera, period = PacedCamera(lambda n: draw_code(base.copy(), n % (1 << BITS)), fps), 1 << BITS
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    received: list[float] = []
    unread = 0

    def on_frame(frame: Any) -> None:
        nonlocal unread
        now = loop.time()
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        code = read_code(luma)
        if code is None:
            unread += 1
            return
        sent = camera.sent - 1
        number = sent - ((sent - code) % period)
        if number in camera.sent_at:
            received.append(now)
            latencies.append(now - camera.sent_at[number])

    client = WhipClient(url, camera, on_frame=on_frame, keep_every=0)
    async with aiohttp.ClientSession() as http:
        status = await client.publish(http, f"/whip?preset={preset}")
        if status != 201:
            await client.close()
            return {"status": status, "error": client.error[:200]}
        await asyncio.sleep(max(0.0, measure_at - time.time()))  # every client measures the same window
        start, first = loop.time(), len(latencies)
        await asyncio.sleep(seconds)
        window = latencies[first:]
        frames = sum(1 for t in received if t >= start)
        session = client.id
        with contextlib.suppress(Exception):
            await client.delete(http)
        await client.close()
    ms = np.asarray(window) * 1e3
    return {
        "status": 201,
        "session": session,
        "fps": frames / seconds,
        "frames": frames,
        "unread": unread,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p95_ms": float(np.percentile(ms, 95)) if len(ms) else None,
    }


# -- the daemon and the ladder ---------------------------------------------------------------------------


def pinned(cores: str) -> list[str]:
    return ["taskset", "-c", cores] if cores and shutil.which("taskset") else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return json.loads(body) if response.headers.get_content_type() == "application/json" else body.decode()


def start_daemon(args: argparse.Namespace, port: int, batch_delay: float | None, loop_priority: str, log: Path) -> Any:
    command = [
        *pinned(args.daemon_cores),
        str(ROOT / ".venv" / "bin" / "livefuse"),
        "serve",
        "--preset",
        args.preset,
        "--size",
        args.size,
        "--fps",
        str(args.fps),
        "--port",
        str(port),
        "--provider",
        "cpu",
        "--max-peers",
        "64",
        "--session-budget-ms",
        str(args.budget_ms),
        "--loop-priority",
        loop_priority,
        "--no-auth",
    ]  # loopback, and the clients it starts send no token
    if batch_delay is not None:
        command += ["--batch-delay-ms", str(batch_delay)]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            get(f"http://127.0.0.1:{port}/healthz")
            return process
        time.sleep(0.3)
    process.kill()
    raise SystemExit(f"the daemon did not start; see {log}")


def run_level(args: argparse.Namespace, url: str, streams: int, daemon_pid: int) -> dict[str, Any]:
    import psutil

    # one after the other, `--stagger` apart: admission judges each new session by the load of those before it
    measure_at = time.time() + streams * args.stagger + args.warmup
    command = [
        *pinned(args.client_cores),
        sys.executable,
        __file__,
        "--client",
        url,
        "--preset",
        args.preset,
        "--size",
        args.size,
        "--fps",
        str(args.fps),
        "--seconds",
        str(args.seconds),
        "--measure-at",
        str(measure_at),
    ]
    if args.packets is not None:
        command += ["--packets", str(args.packets)]
    clients = []
    for _ in range(streams):
        clients.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
        time.sleep(args.stagger)
    daemon = psutil.Process(daemon_pid)
    time.sleep(max(0.0, measure_at - time.time()) + 0.5)
    cpu0, wall0 = sum(daemon.cpu_times()[:2]), time.monotonic()
    time.sleep(args.seconds - 1.0)
    cpu = 100 * (sum(daemon.cpu_times()[:2]) - cpu0) / (time.monotonic() - wall0)
    rss_mb = daemon.memory_info().rss / 2**20
    sessions = get(url + "/api/sessions")
    metrics = get(url + "/metrics")
    results = [json.loads(c.communicate(timeout=120)[0].strip().splitlines()[-1]) for c in clients]
    batches: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("livefuse_batches_total{"):
            size = line.split('size="', 1)[1].split('"', 1)[0]
            batches[size] = batches.get(size, 0) + float(line.rsplit(" ", 1)[1])
    ok = [r for r in results if r["status"] == 201 and r["p50_ms"] is not None]
    return {
        "streams": streams,
        "admitted": len(ok),
        "refused": sum(r["status"] == 503 for r in results),
        "fps": [round(r["fps"], 1) for r in ok],
        "p50_ms": [round(r["p50_ms"], 1) for r in ok],
        "p95_ms": [round(r["p95_ms"], 1) for r in ok],
        "daemon_cpu_pct": round(cpu, 1),
        "daemon_rss_mb": round(rss_mb, 1),
        "loop_lag_ms": sessions["loop_lag_ms"],
        "daemon_latency_ms": [s["recent_latency_ms"] for s in sessions["sessions"]],
        "batches": batches,
        "clients": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", help=argparse.SUPPRESS)  # run as one client against this URL
    parser.add_argument("--preset", default="background-blur")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--streams", default="1,2,4,6,8")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the last client started")
    parser.add_argument("--stagger", type=float, default=1.5, help="seconds between two clients' starts")
    parser.add_argument("--measure-at", type=float, help=argparse.SUPPRESS)  # a client's window start (epoch)
    parser.add_argument("--budget-ms", type=float, default=150.0)
    parser.add_argument("--daemon-cores", default="0")
    parser.add_argument("--client-cores", default="1")
    parser.add_argument("--batching", choices=("off", "on", "both"), default="both")
    parser.add_argument(
        "--loop-priority",
        choices=("realtime", "normal", "both"),
        default="realtime",
        help="the daemon's --loop-priority; both: each level with normal, then realtime",
    )
    parser.add_argument("--batch-delay-ms", type=float, default=2.0)
    parser.add_argument(
        "--live-encode",
        action="store_true",
        help="clients encode each frame (as a camera would) instead of replaying a clip encoded once",
    )
    parser.add_argument("--packets", type=Path, help=argparse.SUPPRESS)  # a client's pre-encoded clip
    parser.add_argument("--json", type=Path, default=RESULTS / "streams.json")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.client:
        result = asyncio.run(
            client_main(
                args.client, args.preset, (size[0], size[1]), args.fps, args.measure_at, args.seconds, args.packets
            )
        )
        print(json.dumps(result))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="livefuse-streams-"))
    if not args.live_encode:
        args.packets = work / "clip.vp8.pickle"
        encode_clip((size[0], size[1]), args.fps, args.packets)
    modes = {"off": [None], "on": [args.batch_delay_ms], "both": [None, args.batch_delay_ms]}[args.batching]
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "preset": args.preset,
        "size": args.size,
        "fps": args.fps,
        "cpus": os.cpu_count(),
        "clients": "live VP8 encoding" if args.live_encode else "replayed VP8 packets",
        "daemon_cores": args.daemon_cores,
        "client_cores": args.client_cores,
        "runs": [],
    }
    priorities = ["normal", "realtime"] if args.loop_priority == "both" else [args.loop_priority]
    for delay, priority in ((d, p) for d in modes for p in priorities):
        port = free_port()
        daemon = start_daemon(args, port, delay, priority, work / "daemon.log")
        try:
            for streams in (int(n) for n in args.streams.split(",")):
                level = run_level(args, f"http://127.0.0.1:{port}", streams, daemon.pid)
                level["batching"] = "off" if delay is None else f"{delay:g} ms"
                level["loop_priority"] = priority
                report["runs"].append(level)
                print(table_row(level), flush=True)
                if level["refused"]:
                    break
        finally:
            daemon.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(20)
    args.json.write_text(json.dumps(report, indent=1))
    plot(report, args.json.with_suffix(".png"))


def plot(report: dict[str, Any], path: Path) -> None:
    """fps and glass-to-glass p95 (worst client of each level) against the streams asked for."""
    try:
        import matplotlib
    except ImportError:
        print(
            f"no plot: matplotlib is missing (`.venv/bin/pip install -e '.[bench]'`); the figures are in "
            f"{path.with_suffix('.json')}",
            file=sys.stderr,
        )
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (fps_ax, p95_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in dict.fromkeys((r["batching"], r.get("loop_priority", "normal")) for r in report["runs"]):
        runs = [r for r in report["runs"] if (r["batching"], r.get("loop_priority", "normal")) == mode and r["fps"]]
        asked = [r["streams"] for r in runs]
        fps_ax.plot(asked, [min(r["fps"]) for r in runs], "o-", label=f"batching {mode[0]}, loop {mode[1]}")
        p95_ax.plot(asked, [max(r["p95_ms"]) for r in runs], "o-", label=f"batching {mode[0]}, loop {mode[1]}")
        for r in runs:
            if r["refused"]:
                p95_ax.annotate(f"{r['admitted']} admitted", (r["streams"], max(r["p95_ms"])))
    fps_ax.set(xlabel="streams asked for", ylabel="fps (slowest admitted stream)", ylim=(0, report["fps"] * 1.1))
    p95_ax.set(xlabel="streams asked for", ylabel="glass-to-glass p95, ms (worst stream)")
    p95_ax.axhline(150, color="grey", linestyle="--", linewidth=1)
    for ax in (fps_ax, p95_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{report['preset']} at {report['size']}, {report['fps']} fps; daemon on core {report['daemon_cores']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def table_row(level: dict[str, Any]) -> str:
    def span(values: list[float]) -> str:
        return f"{min(values):.0f}-{max(values):.0f}" if values else "-"

    return (
        f"| {level['batching']} | {level.get('loop_priority', 'normal')} | {level['streams']} | "
        f"{level['admitted']} | {span(level['fps'])} | "
        f"{span(level['p50_ms'])} | {span(level['p95_ms'])} | {level['daemon_cpu_pct']:.0f} | "
        f"{level['daemon_rss_mb']:.0f} | {level['loop_lag_ms']['p99']:.1f} | "
        f"{' '.join(f'{k}x{v:.0f}' for k, v in sorted(level['batches'].items())) or '-'} |"
    )


if __name__ == "__main__":
    main()
