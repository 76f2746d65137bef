"""Does anonymise hide every face in real photos? Stills and pans over ../shared/privacy, judged independently.

Each photo (and skimage's astronaut) is run through a preset's chain as `--source image:` serves it (20 frames)
and as a 6-second pan with zoom at 30 fps (tests/privacy_check.py makes both, with where the faces are:
tests/data/privacy_faces.json). A judge the chain does not use (RetinaFace on the whole frame and on
full-resolution tiles, or OpenCV's YuNet) looks at every output frame: a face is shown when the judge finds one
at score 0.6 or more on a true face. `--plain` runs the plain loop instead: YuNet at full resolution on every
frame, score 0.6, with anonymise's blur over each box and no memory.

    .venv/bin/python benchmarks/privacy.py --preset anonymise --json benchmarks/results/privacy-after.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from privacy_check import RetinaJudge, Tally, astronaut, photos, run_chain, shown, yunet_boxes

from livefuse.engine import Engine
from livefuse.frame import Face, Frame
from livefuse.presets import load_preset
from livefuse.stage import StageContext
from livefuse.stages import anonymise
from livefuse.vision.detectors import YuNetDetector
from livefuse.vision.runner import OrtRunner
from livefuse.wiring import assemble

FPS = 30.0


class PlainLoop:
    """YuNet on every whole frame at full resolution, anonymise's blur over each box, nothing held."""

    def __init__(self, engine: Engine, size: tuple[int, int]) -> None:
        from privacy_check import YUNET

        self.detector = YuNetDetector(OrtRunner(YUNET), score_threshold=0.6, input_size=max(size))
        params = {p.name: p.default for p in anonymise.SPEC.params} | {"hold_frames": 0}
        self.cover = anonymise.AnonymiseStage(params, StageContext(engine=engine, size=size, fps=FPS))

    def run(self, images: list[np.ndarray]) -> list[Frame]:
        frames = []
        for i, image in enumerate(images):
            frame = Frame(seq=i, capture_ns=int(i / FPS * 1e9), image=image.copy(), faces_searched=True)
            frame.faces = [
                Face(box=f.box, score=f.score, landmarks5=f.landmarks5) for f in self.detector.detect(frame.image)
            ]
            self.cover.process(frame)
            frames.append(frame)
        return frames


def table(files: list[Path]) -> str:
    """A markdown table of runs side by side: per photo, the faces, the worst still frame and the pan frames
    showing a face in each run."""
    runs = [json.loads(f.read_text()) for f in files]
    head = "| photo | faces | " + " | ".join(f"{r['chain']}: worst still / pan frames shown" for r in runs) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(runs)]
    for i, row in enumerate(runs[0]["rows"]):
        cells = [f"{r['rows'][i]['still']['most_shown']} / {r['rows'][i]['pan']['frames_shown']}" for r in runs]
        lines.append(f"| {row['photo']} | {row['faces']} | " + " | ".join(cells) + " |")
    totals = [
        f"{r['total']['stills_worst_sum']} / {r['total']['pan_frames_shown']} of {r['total']['pan_frames']}"
        for r in runs
    ]
    lines.append(f"| all | {sum(r['faces'] for r in runs[0]['rows'])} | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="anonymise")
    parser.add_argument("--plain", action="store_true", help="the plain loop instead of a preset")
    parser.add_argument("--judge", choices=("retinaface", "yunet"), default="retinaface")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--only", default="", help="comma-separated photo names")
    parser.add_argument("--clips", default="still,pan", help="still, pan or both")
    parser.add_argument("--params", default="{}", help="JSON: parameters for the preset's stages, by stage label")
    parser.add_argument("--json", type=Path, help="write the table here")
    parser.add_argument("--table", type=Path, nargs="+", help="print these runs' JSON side by side, and stop")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    size = tuple(int(v) for v in args.size.split("x"))
    assert len(size) == 2
    engine = Engine(provider="cpu")
    judge = RetinaJudge(0.5) if args.judge == "retinaface" else (lambda image: yunet_boxes(image, 0.5))
    rows: list[dict[str, Any]] = []
    for photo in [astronaut(), *photos()]:
        if args.only and photo.name not in args.only.split(","):
            continue
        row: dict[str, Any] = {"photo": photo.name, "faces": len(photo.faces)}
        for kind in args.clips.split(","):
            clip = [photo.still(size)] * 20 if kind == "still" else list(photo.pan(size))
            images = [image for image, _ in clip]
            started = time.perf_counter()
            if args.plain:
                frames = PlainLoop(engine, size).run(images)
            else:
                assembly = assemble(load_preset(args.preset), engine, size, FPS)
                for label, given in json.loads(args.params).items():
                    assembly.chain.update(label, given)
                frames = run_chain(assembly.chain, images, fps=FPS)
            ms = (time.perf_counter() - started) / len(images) * 1000
            tally = Tally()
            sizes: list[int] = []
            for (_, truth), frame in zip(clip, frames, strict=True):
                visible = shown(truth, judge(frame.image))
                tally.add(truth, visible)
                sizes += [int(v[2] - v[0]) for v in visible]
            row[kind] = {
                "faces_in": tally.faces_in,
                "frames": tally.frames,
                "frames_shown": tally.frames_shown,
                "most_shown": tally.most_shown,
                "shown_sizes_px": sorted(set(sizes))[:8],
                "ms_per_frame": round(ms, 1),
            }
        rows.append(row)
        s, p = row.get("still", {}), row.get("pan", {})
        print(
            f"{photo.name:18s} faces {row['faces']:2d} | still: worst frame shows {s.get('most_shown', '-')} "
            f"| pan: {p.get('frames_shown', '-')}/{p.get('frames', '-')} frames show a face "
            f"(most {p.get('most_shown', '-')}) {p.get('shown_sizes_px', '')}",
            flush=True,
        )
    total = {
        "stills_worst_sum": sum(r.get("still", {}).get("most_shown", 0) for r in rows),
        "pan_frames_shown": sum(r.get("pan", {}).get("frames_shown", 0) for r in rows),
        "pan_frames": sum(r.get("pan", {}).get("frames", 0) for r in rows),
    }
    print(
        f"total: {total['stills_worst_sum']} faces shown in the worst still frames; "
        f"{total['pan_frames_shown']} of {total['pan_frames']} pan frames show a face"
    )
    if args.json:
        chain = "plain YuNet loop" if args.plain else args.preset
        args.json.write_text(
            json.dumps(
                {
                    "chain": chain,
                    "judge": args.judge,
                    "size": args.size,
                    "rows": rows,
                    "total": total,
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
