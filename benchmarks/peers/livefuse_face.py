"""livefuse's `face` stage alone, on the face benchmark's clip, read the way the FaceMesh peer reads it.

The same `ReleasedCamera` and loop as the peers (read, process, "write"), so the figure is the stage's
own cost beside MediaPipe's FaceMesh: no pipeline, no effect after it. The stage gets the face
settings of a shipped preset (`--preset`: beauty follows faces with FaceMesh; anonymise finds boxes
and scans every frame), with max_faces from --max-faces.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tomllib

import numpy as np
from common import Timer, face_args, faces_summary, finish, measure

from livefuse.engine import Engine
from livefuse.frame import Frame
from livefuse.presets import PRESETS_DIR
from livefuse.stage import StageContext
from livefuse.stages.face.cpu import FaceStage
from livefuse.stages.face.spec import SPEC


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="beauty", help="shipped preset whose face stage settings to use")


def main() -> None:
    args = face_args(__doc__.splitlines()[0], options)
    stage_params = next(
        s for s in tomllib.loads((PRESETS_DIR / f"{args.preset}.toml").read_text())["stages"] if s["type"] == "face"
    )
    params = {p.name: p.default for p in SPEC.params} | {k: v for k, v in stage_params.items() if k != "type"}
    params["max_faces"] = args.max_faces
    with tempfile.TemporaryDirectory() as cache:
        engine = Engine(provider="cpu", cache_dir=cache)
        stage = FaceStage(params, StageContext(engine=engine, size=args.size, fps=args.fps, preset_dir=PRESETS_DIR))
        counts: list[int] = []
        seq = 0

        def process(image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
            nonlocal seq
            timer = Timer()
            frame = Frame(seq=seq, capture_ns=time.monotonic_ns(), image=image)
            seq += 1
            stage.process(frame)
            timer.lap("face")
            counts.append(len(frame.faces))
            return image, timer.steps

        camera, measured = measure(args, process)
    import onnxruntime

    finish(
        args,
        f"livefuse face ({args.preset})",
        "sequential",
        f"onnxruntime-{onnxruntime.__version__} CPU",
        measured,
        camera,
        f"livefuse face stage with presets/{args.preset}.toml's settings",
        preset="face",
        extra={"faces": faces_summary(counts[args.warmup :])},
    )


if __name__ == "__main__":
    main()
