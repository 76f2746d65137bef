"""The wheel holds everything `livefuse` needs at run time: built, installed into a fresh venv, used outside the
checkout. The venv gets livefuse from the wheel only (--no-deps); its dependencies come from this venv's
site-packages through a .pth line, so the test runs offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import stop_with_sigint

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("livefuse", "presets", "models", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "_data", "pictures", ".cache", "pulled", "*.egg-info")

pytestmark = pytest.mark.slow


def build_wheel(out: Path, tmp: Path) -> Path:
    """The wheel, built from a copy of the sources the build reads (no stale build/ of the checkout)."""
    src = tmp / "src"
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=IGNORED)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        timeout=240,
        capture_output=True,
    )
    (wheel,) = out.glob("livefuse-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """(wheel, the venv's bin folder, the environment to run it in) with livefuse installed from the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp / "dist", tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies: this venv's packages, after the wheel's (a plain path line runs no editable hook).
    (Path(site) / "zz_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEFUSE_", "PYTHON", "XDG_"))}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    yield wheel, python.parent, env


def run(bin_dir: Path, env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> str:
    """`livefuse ARGS` from the venv, which must succeed; its stdout."""
    done = subprocess.run(
        [str(bin_dir / "livefuse"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"livefuse {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def test_the_wheel_holds_presets_models_and_the_page(installed: tuple[Path, Path, dict[str, str]]) -> None:
    names = set(zipfile.ZipFile(installed[0]).namelist())
    assert {
        "livefuse/_data/presets/anonymise.toml",
        "livefuse/_data/presets/assets/room.jpg",
        "livefuse/_data/models/manifest.toml",
        "livefuse/_data/models/mediapipe/face_landmark.onnx",
        "livefuse/web/static/index.html",
        "livefuse/web/static/app.js",
    } <= names
    assert not any(n.endswith(".tflite") or "/pictures/" in n for n in names)  # run-time data only


def test_the_installed_livefuse_is_the_wheels(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    _, bin_dir, env = installed
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", "import livefuse; print(livefuse.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(done.stdout.strip()).is_relative_to(bin_dir.parent), done.stdout
    assert not Path(done.stdout.strip()).is_relative_to(ROOT)


def test_presets_and_models_list_outside_the_checkout(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, bin_dir, env = installed
    presets = run(bin_dir, env, tmp_path, "presets", "list")
    assert {"anonymise", "background-blur", "passthrough", "face-swap"} <= set(re.findall(r"^(\S+)", presets, re.M))
    models = run(bin_dir, env, tmp_path, "models", "list")
    assert re.search(r"^face_landmark\s+\S+\s+present\s+verified", models, re.M), models
    assert re.search(r"^selfie_segmentation\s+\S+\s+present\s+verified", models, re.M), models


def test_a_demo_run_with_a_model_preset(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    _, bin_dir, env = installed
    stats = tmp_path / "stats.json"
    run(
        bin_dir,
        env,
        tmp_path,
        "run",
        "--source",
        "demo",
        "--preset",
        "anonymise",
        "--output",
        "null",
        "--frames",
        "30",
        "--size",
        "320x240",
        "--stats-json",
        str(stats),
        timeout=180,
    )
    assert json.loads(stats.read_text())["frames_processed"] == 30


def test_doctor_finds_the_wheels_data(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    _, bin_dir, env = installed
    report = json.loads(run(bin_dir, env, tmp_path, "doctor", "--json", "--port", str(free_port())))
    folders = next(c for c in report["checks"] if c["area"] == "folders")["data"]
    for role in ("shipped presets", "shipped models"):
        assert Path(folders[role]).is_relative_to(bin_dir.parent) and "_data" in folders[role], folders
    assert Path(folders["user presets"]).is_relative_to(env["HOME"])
    assert report["ok"] is True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TOKEN = "wheel-test-token-0123456789"  # the daemon requires a token on loopback too


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read(200_000).decode()


def test_the_preview_page_and_its_script_are_served(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, bin_dir, env = installed
    port = free_port()
    proc = subprocess.Popen(
        [
            str(bin_dir / "livefuse"),
            "run",
            "--source",
            "demo",
            "--preset",
            "passthrough",
            "--output",
            "preview",
            "--port",
            str(port),
            "--size",
            "160x120",
            "--fps",
            "10",
            "--duration",
            "90",
        ],
        cwd=tmp_path,
        env={**env, "LIVEFUSE_TOKEN": TOKEN},
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        page = None
        while page is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                page = get(f"http://127.0.0.1:{port}/?token={TOKEN}")  # as the URL the daemon prints
            except OSError:
                time.sleep(0.3)
        assert page is not None, f"the page was not served (exit {proc.poll()})"
        assert page[0] == 200 and "<html" in page[1].lower()
        scripts = re.findall(r'<script[^>]+src="([^"]+)"', page[1])
        assert scripts
        for src in scripts:
            status, body = get(f"http://127.0.0.1:{port}{src}{'&' if '?' in src else '?'}token={TOKEN}")
            assert status == 200 and len(body) > 1000
    finally:
        stop_with_sigint(proc, "the installed livefuse run")
