"""Run a real Triton Inference Server on this machine: the `tritonserver` that PyTriton's wheel ships.

For the Triton tests and `benchmarks/triton_cost.py`. The wheel's server has only the Python backend,
so the repository is written with `livefuse models triton-repo --backend python` and each model runs
in onnxruntime inside Triton's Python stub. The stub needs a shared-library Python 3.11 (Debian's
/usr/bin/python3.11; pyenv's 3.11 fails in the stub), so `make triton-env` builds `.venv-triton`
from it with nvidia-pytriton and onnxruntime.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRITON_VENV = ROOT / ".venv-triton"


def site_packages(venv: Path = TRITON_VENV) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    if not found or not (found[0] / "pytriton" / "tritonserver" / "bin" / "tritonserver").is_file():
        raise FileNotFoundError(f"no PyTriton server in {venv}: run `make triton-env` (needs /usr/bin/python3.11)")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TritonServer:
    """One tritonserver process on loopback, polling its repository every `poll_s` seconds."""

    def __init__(self, repository: Path, workdir: Path, poll_s: int = 1) -> None:
        self.repository = repository
        self.workdir = workdir
        self.poll_s = poll_s
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "tritonserver.log"
        packages = site_packages()
        self._packages = packages
        self._dist = workdir / "tritonserver"
        if not self._dist.is_dir():
            shutil.copytree(
                packages / "pytriton" / "tritonserver",
                self._dist,
                ignore=shutil.ignore_patterns("python_backend_stubs"),
            )
            stubs = packages / "pytriton" / "tritonserver" / "python_backend_stubs"
            stub = stubs / "3.11" / "triton_python_backend_stub"
            shutil.copy(stub, self._dist / "backends" / "python" / "triton_python_backend_stub")

    @property
    def grpc_url(self) -> str:
        return f"triton://127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 60.0) -> None:
        env = dict(os.environ)
        env.update(
            LD_LIBRARY_PATH=str(self._packages / "nvidia_pytriton.libs"),
            PYTHONPATH=str(self._packages),
            PYTHONDONTWRITEBYTECODE="1",
            PATH=f"{TRITON_VENV / 'bin'}:{env.get('PATH', '')}",
        )
        command = [
            str(self._dist / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._dist / 'backends'}",
            f"--cache-directory={self._dist / 'caches'}",
            "--grpc-address=127.0.0.1",
            "--http-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            f"--http-port={self.http_port}",
            f"--metrics-port={self.metrics_port}",
            "--model-control-mode=poll",
            f"--repository-poll-secs={self.poll_s}",
            "--log-verbose=0",
            "--exit-timeout-secs=2",
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self.process.returncode}): {self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.25)
        raise TimeoutError(f"tritonserver not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
