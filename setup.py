"""Puts the shipped data into the wheel: presets/ and models/ stay top-level in the repository, and
build_py copies what livefuse needs at run time to livefuse/_data/ (see livefuse/paths.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Run-time data only: no preset pictures (README illustrations) and no TFLite references (tests only),
# but the MediaPipe licence and notice the converted models are shipped under.
SHIPPED = {
    "presets": ["*.toml", "README.md", "assets/*"],
    "models": ["manifest.toml", "README.md", "mediapipe/*.onnx", "mediapipe/tflite/LICENSE", "mediapipe/tflite/NOTICE",
               "yunet/*.onnx", "yunet/LICENSE"],
}


def shipped_files() -> list[tuple[Path, str]]:
    """(source file, path under livefuse/_data) for every shipped file."""
    found = []
    for folder, patterns in SHIPPED.items():
        for pattern in patterns:
            for path in sorted((ROOT / folder).glob(pattern)):
                if path.is_file():
                    found.append((path, f"{folder}/{path.relative_to(ROOT / folder).as_posix()}"))
    return found


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders directly
            return
        files = shipped_files()
        if not any(rel == "models/manifest.toml" for _, rel in files):
            raise SystemExit("models/manifest.toml is missing: the wheel would ship no models")
        for source, rel in files:
            target = Path(self.build_lib) / "livefuse" / "_data" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildWithData})
