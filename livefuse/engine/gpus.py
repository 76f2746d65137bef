"""The NVIDIA GPUs and driver on this machine, asked of nvidia-smi (bounded) or the kernel module."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The oldest driver each CUDA major version runs on (NVIDIA's CUDA toolkit release notes, Linux).
MIN_DRIVER = {11: 450, 12: 525, 13: 580}


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int
    driver: str


def nvidia_gpus(timeout: float = 5.0) -> list[Gpu]:
    """The NVIDIA GPUs nvidia-smi lists (none when it is missing, fails or hangs)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            memory = int(parts[2]) if parts[2].isdigit() else 0
            gpus.append(Gpu(int(parts[0]), parts[1], memory, parts[3]))
    return gpus


def driver_version() -> str | None:
    """The NVIDIA kernel driver's version (e.g. "535.104.05"), or None where there is none."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        gpus = nvidia_gpus()
        return gpus[0].driver if gpus else None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", text)
    return match[1] if match else None


def driver_too_old(driver: str | None, cuda_major: int | None) -> bool:
    """Whether `driver` is older than what CUDA `cuda_major` needs."""
    if driver is None or cuda_major is None or cuda_major not in MIN_DRIVER:
        return False
    major = driver.split(".")[0]
    return major.isdigit() and int(major) < MIN_DRIVER[cuda_major]
