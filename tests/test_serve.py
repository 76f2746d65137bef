"""`livefuse serve`: a headless session server. Started as a process, it takes a WHIP session from an aiortc
client and sends its stream back filtered, and answers the API and /metrics; it has no stream of its own."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser_fixtures import http, http_json
from conftest import cli_env, stop_with_sigint
from prometheus_client.parser import text_string_to_metric_families

from livefuse.web.whip_client import StillCamera, WhipClient, astronaut_frame

pytestmark = pytest.mark.slow

SIZE, FPS = (320, 240), 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(proc: subprocess.Popen[str], base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"livefuse serve exited with {proc.returncode}: {log.read_text()}")
        try:
            if http("GET", base + "/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"livefuse serve did not answer: {log.read_text()}")


async def one_session(base: str) -> dict[str, Any]:
    """Publish a still camera over WHIP, take frames back, read the API and /metrics meanwhile, then DELETE."""
    async with aiohttp.ClientSession() as session:
        client = WhipClient(base, StillCamera(astronaut_frame(SIZE), FPS))
        main_viewer = WhipClient(base)
        try:
            published = await client.publish(session, "/whip")
            got = await client.wait_frames(15) if published == 201 else False
            async with session.get(base + "/api/sessions") as response:
                listed = await response.json()
            async with session.get(base + "/metrics") as response:
                metrics = await response.text()
            return {
                "published": published,
                "error": client.error,
                "got": got,
                "frames": client.frames,
                "listed": listed,
                "metrics": metrics,
                "main": await main_viewer.publish(session, "/whep/main"),
                "deleted": await client.delete(session),
            }
        finally:
            await asyncio.gather(client.close(), main_viewer.close())


def test_serve_takes_whip_sessions_and_answers_the_api_and_metrics(tmp_path: Path) -> None:
    port, home, log = free_port(), tmp_path / "home", tmp_path / "serve.log"
    home.mkdir()
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "livefuse",
                "serve",
                "--preset",
                "passthrough",
                "--provider",
                "cpu",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-auth",
                "--size",
                f"{SIZE[0]}x{SIZE[1]}",
                "--fps",
                str(FPS),
                "--loop-priority",
                "normal",
            ],
            cwd=tmp_path,
            env=cli_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_until_up(proc, base, log)
        status, body = http_json("GET", base + "/api/status")
        assert status == 200 and body["preset"] == "passthrough" and body["sessions"] == 0, body
        assert http("GET", base + "/api/preset")[0] == 404  # no stream of its own to show or switch
        result = asyncio.run(asyncio.wait_for(one_session(base), 90))
        assert result["published"] == 201, result["error"]
        assert result["got"], f"only {result['frames']} frames came back"
        [listed] = result["listed"]["sessions"]
        assert listed["preset"] == "passthrough" and listed["frames_out"] > 0
        samples = {
            s.name + str(sorted(s.labels.values())): s.value
            for family in text_string_to_metric_families(result["metrics"])
            for s in family.samples
        }
        assert samples["livefuse_sessions[]"] == 1
        assert samples[f"livefuse_session_frames_out_total{sorted([listed['id'], 'passthrough'])}"] > 0
        assert result["main"] == 404  # WHEP of the daemon's own stream: there is none
        assert result["deleted"] == 200
        assert http_json("GET", base + "/api/sessions")[1]["sessions"] == []
    finally:
        stop_with_sigint(proc, "livefuse serve")
    assert proc.returncode == 0, log.read_text()
