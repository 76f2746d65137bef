"""Does livefuse's dependency set resolve, from wheels only, on every platform it promises?

Resolves pyproject.toml's dependencies (and the `cuda` extra where it applies) for Python 3.11 on manylinux
x86_64, manylinux aarch64, macOS arm64 and Windows amd64 with `uv pip compile --python-platform`, which
evaluates the environment markers for the target (pip's `download --platform` evaluates them for the machine
it runs on, so it would pick the wrong onnxruntime). Prints the onnxruntime package each platform gets and
exits 1 when a platform does not resolve or gets the wrong build (or both builds, which shadow each other).
Needs the registry and uv (`pip install uv`). The `tensorrt` extra is left out: NVIDIA publishes TensorRT's
libraries on PyPI as source stubs that fetch the wheels from pypi.nvidia.com at install time.

    python tools/check_platforms.py [--python-version 3.11] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    name: str
    uv_platform: str
    onnxruntime: str  # the build livefuse must get there
    extras: tuple[str, ...] = ()
    macos: str | None = None  # MACOSX_DEPLOYMENT_TARGET: which macOS the wheels must run on


TARGETS = (
    Target("manylinux x86_64", "x86_64-manylinux_2_28", "onnxruntime-gpu"),
    Target("manylinux x86_64 [cuda]", "x86_64-manylinux_2_28", "onnxruntime-gpu", ("cuda",)),
    Target("manylinux aarch64", "aarch64-manylinux_2_28", "onnxruntime"),
    Target("macOS 13 arm64", "aarch64-apple-darwin", "onnxruntime", macos="13.0"),
    Target("macOS 14 arm64", "aarch64-apple-darwin", "onnxruntime", macos="14.0"),
    Target("Windows amd64", "x86_64-pc-windows-msvc", "onnxruntime-gpu"),
    Target("Windows amd64 [cuda]", "x86_64-pc-windows-msvc", "onnxruntime-gpu", ("cuda",)),
)


@dataclass
class Result:
    target: str
    ok: bool
    onnxruntime: str  # e.g. onnxruntime-gpu==1.31.1, or what went wrong
    packages: int
    nvidia: list[str]


def uv_command() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    raise SystemExit("error: uv is needed (pip install uv): pip cannot evaluate markers for another platform")


def requirements(extras: tuple[str, ...]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = list(project["dependencies"])
    for extra in extras:
        found += project["optional-dependencies"][extra]
    return found


def resolve(target: Target, python_version: str, uv: list[str], tmp: Path) -> Result:
    slug = re.sub(r"\W+", "-", target.name)
    req = tmp / f"{slug}.in"
    req.write_text("\n".join(requirements(target.extras)) + "\n", encoding="utf-8")
    env = dict(os.environ)
    if target.macos:
        env["MACOSX_DEPLOYMENT_TARGET"] = target.macos
    done = subprocess.run(
        [
            *uv,
            "pip",
            "compile",
            str(req),
            "--python-platform",
            target.uv_platform,
            "--python-version",
            python_version,
            "--only-binary",
            ":all:",
            "--no-header",
            "--no-annotate",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        reason = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "uv failed")
        return Result(target.name, False, f"does not resolve: {reason}", 0, [])
    pins = dict(line.split("==", 1) for line in done.stdout.splitlines() if "==" in line and not line.startswith("#"))
    builds = [name for name in ("onnxruntime", "onnxruntime-gpu") if name in pins]
    got = ", ".join(f"{name}=={pins[name]}" for name in builds) or "no onnxruntime"
    nvidia = sorted(f"{name}=={version}" for name, version in pins.items() if name.startswith("nvidia-"))
    ok = builds == [target.onnxruntime] and (bool(nvidia) == ("cuda" in target.extras))
    return Result(target.name, ok, got, len(pins), nvidia)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", default="3.11")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    uv = uv_command()
    with tempfile.TemporaryDirectory() as tmp:
        results = [resolve(t, args.python_version, uv, Path(tmp)) for t in TARGETS]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            extra = f"  (+{len(r.nvidia)} NVIDIA wheels: {', '.join(r.nvidia)})" if r.nvidia else ""
            print(f"{'ok ' if r.ok else 'BAD'} {r.target:26s} {r.onnxruntime:28s} {r.packages:3d} packages{extra}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
