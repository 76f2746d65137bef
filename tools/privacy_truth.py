"""Writes tests/data/privacy_faces.json: where the faces are in each photo of ../shared/privacy.

The boxes are dlib's own annotations of these photos (examples/faces/training.xml and testing.xml of
davisking/dlib; pass that folder). Faces dlib left unannotated (turned faces, and the whole bald_guys
collage) are added where two independent detector families agree: RetinaFace and OpenCV's YuNet, each
scoring 0.7 or more, boxes overlapping by IoU 0.4 or more. Check the result by eye with --picture.

    python tools/privacy_truth.py DLIB/examples/faces [--picture faces.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from privacy_check import PHOTOS, RetinaJudge, yunet_boxes

from livefuse.vision.geometry import box_overlaps, iou_matrix

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "privacy_faces.json"
AGREE = 0.7


def dlib_boxes(folder: Path) -> dict[str, list[list[float]]]:
    boxes: dict[str, list[list[float]]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            stem = "dlib_" + Path(image.get("file", "")).stem
            for b in image.iter("box"):
                if b.get("ignore") == "1":
                    continue
                x, y, w, h = (float(b.get(k, 0)) for k in ("left", "top", "width", "height"))
                boxes.setdefault(stem, []).append([x, y, x + w, y + h])
    return boxes


def agreed(photo: np.ndarray, judge: RetinaJudge) -> np.ndarray:
    """Boxes both families find, at a size where the smallest faces have pixels enough (short side >= 720)."""
    k = max(1.0, 720 / min(photo.shape[:2]))
    image = cv2.resize(photo, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC) if k > 1 else photo
    retina = judge(image)
    retina = retina[retina[:, 4] >= AGREE]
    yunet = yunet_boxes(image, AGREE)
    if not len(retina) or not len(yunet):
        return np.zeros((0, 4), np.float32)
    both = iou_matrix(retina[:, :4], yunet[:, :4]).max(1) >= 0.4
    return retina[both, :4] / k


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dlib_faces", type=Path, help="davisking/dlib's examples/faces folder")
    parser.add_argument("--picture", type=Path, help="also draw the boxes on the photos, for checking by eye")
    args = parser.parse_args()
    annotated = dlib_boxes(args.dlib_faces)
    judge = RetinaJudge(AGREE)
    photos: dict[str, dict[str, object]] = {}
    tiles = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        photo = cv2.imread(str(path))
        faces = [[*b, "dlib"] for b in annotated.get(path.stem, [])]
        for box in agreed(photo, judge):  # best first: a box on a face already boxed is the same face
            known = [np.array(f[:4], np.float32) for f in faces]
            if not box_overlaps(box, known):
                faces.append([*[round(float(v), 1) for v in box], "agreed"])
        photos[path.stem] = {"size": [photo.shape[1], photo.shape[0]], "faces": faces}
        if args.picture:
            for *box, origin in faces:
                colour = (0, 255, 0) if origin == "dlib" else (0, 0, 255)
                cv2.rectangle(photo, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), colour, 2)
            tiles.append(cv2.resize(photo, (480, 360)))
    OUT.write_text(
        json.dumps(
            {
                "source": "dlib's annotations (davisking/dlib examples/faces/*.xml), and faces "
                "RetinaFace and YuNet agree on (tools/privacy_truth.py)",
                "photos": photos,
            },
            indent=1,
        )
        + "\n"
    )
    if args.picture:
        rows = [
            np.hstack(tiles[i : i + 4] + [np.zeros_like(tiles[0])] * (4 - len(tiles[i : i + 4])))
            for i in range(0, len(tiles), 4)
        ]
        cv2.imwrite(str(args.picture), np.vstack(rows))
    print(f"{OUT}: {sum(len(p['faces']) for p in photos.values())} faces in {len(photos)} photos")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
