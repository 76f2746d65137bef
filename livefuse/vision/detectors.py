"""Face detectors: raw model outputs -> `Face` boxes, scores and ArcFace-order landmarks in frame pixels.

All three return the five points in the ArcFace order of `livefuse.frame.Face`: the subject's right eye
(image left on an upright, unmirrored face), left eye, nose tip, right mouth corner, left mouth corner.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import cv2
import numpy as np

from livefuse.frame import Face
from livefuse.vision.geometry import letterbox, nms, rgb_tensor, sigmoid, weighted_nms
from livefuse.vision.runner import Runner

# Mouth corners relative to the mouth centre, as a fraction of the right->left eye vector: the
# ArcFace 112x112 template has mouth-corner distance / eye distance = 29.18 / 35.24.
_MOUTH_HALF_WIDTH = 0.414


class FaceDetector(Protocol):
    """Finds faces in a BGR frame."""

    def detect(self, image_bgr: np.ndarray) -> list[Face]: ...


def _faces(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float, max_faces: int) -> list[Face]:
    keep = nms(boxes, scores, iou, max_faces)
    return [
        Face(box=boxes[i].astype(np.float32), score=float(scores[i]), landmarks5=points[i].astype(np.float32))
        for i in keep
    ]


def blazeface_anchors(
    input_size: int | tuple[int, int] = 128, strides: tuple[int, ...] = (8, 16, 16, 16), per_layer: int = 2
) -> np.ndarray:
    """Anchor centres [N, 2] (normalised) per MediaPipe's SsdAnchorsCalculator with fixed_anchor_size.

    Consecutive layers with the same stride share one feature map, each adding `per_layer` anchors
    (aspect ratio 1.0 plus the interpolated scale) per cell; sizes are all 1.0, so only centres matter.
    `input_size` is the side of a square input, or (width, height): the cells are then in rows of the
    width's count, row by row, as the model's outputs are.
    """
    width, height = (input_size, input_size) if isinstance(input_size, int) else input_size
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        rows, cols = int(np.ceil(height / strides[i])), int(np.ceil(width / strides[i]))
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_layer * (j - i), axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


class BlazeFaceDetector:
    """MediaPipe face detection with an aspect-keeping (centred) letterbox.

    `variant="short"` is the 128x128 model for faces within ~2 m (face_detection_short), `"full"` the
    192x192 one for faces up to ~5 m (face_detection_full), per MediaPipe's graphs' anchor options.
    `"full_wide"` is the full-range model given a 192x128 input (face_detection_full_wide): the same
    weights, for a wide frame's whole-frame pass, where a square input is a third letterbox.
    BlazeFace has no mouth corners, only the mouth centre: they are placed on the eye line's direction
    at ArcFace-template spacing around it. Good enough to align a crop; run `FaceLandmarker` when the
    mouth corners matter.
    """

    # input (width, height), anchor strides, anchors per layer (aspect 1.0 + interpolated scale, or 1.0 alone)
    VARIANTS: ClassVar[dict[str, tuple[tuple[int, int], tuple[int, ...], int]]] = {
        "short": ((128, 128), (8, 16, 16, 16), 2),
        "full": ((192, 192), (4,), 1),
        "full_wide": ((192, 128), (4,), 1),
    }

    def __init__(
        self,
        runner: Runner,
        score_threshold: float = 0.5,
        iou: float = 0.3,
        max_faces: int = 0,
        variant: str = "short",
    ) -> None:
        self.runner = runner
        self.score_threshold = score_threshold
        self.iou = iou
        self.max_faces = max_faces
        if variant not in self.VARIANTS:
            raise ValueError(f"BlazeFace variant {variant!r}: use one of {', '.join(self.VARIANTS)}")
        (self.width, self.height), strides, per_layer = self.VARIANTS[variant]
        self.size = max(self.width, self.height)  # a square input's side (the tiles', the mosaic's)
        self.anchors = blazeface_anchors((self.width, self.height), strides, per_layer)
        self.input_name = runner.input_names[0]

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        img, lb = letterbox(image_bgr, self.width, self.height)
        x = rgb_tensor(img, 1 / 127.5, -1.0)
        out = self.runner.run({self.input_name: x})
        raw = out["regressors"][0] if "regressors" in out else out[self.runner.output_names[0]][0]
        logits = out["logits"][0, :, 0] if "logits" in out else out[self.runner.output_names[1]][0, :, 0]
        scores = sigmoid(logits)
        sel = np.flatnonzero(scores >= self.score_threshold)
        if sel.size == 0:
            return []
        raw, scores, anchors = raw[sel], scores[sel], self.anchors[sel]
        # Offsets are in input pixels; anchors are normalised with size 1. Work in input pixels.
        extent = np.array([self.width, self.height], np.float32)
        centre = anchors * extent + raw[:, 0:2]
        half = raw[:, 2:4] / 2
        boxes = lb.to_frame(np.concatenate([centre - half, centre + half], axis=1).reshape(-1, 2, 2)).reshape(-1, 4)
        kps = lb.to_frame(anchors[:, None, :] * extent + raw[:, 4:16].reshape(-1, 6, 2))
        boxes, scores, kps = weighted_nms(boxes, scores, kps, self.iou, self.max_faces)
        points = self._arcface(kps)
        return [Face(box=b, score=float(s), landmarks5=p) for b, s, p in zip(boxes, scores, points, strict=True)]

    @staticmethod
    def _arcface(kps: np.ndarray) -> np.ndarray:
        """BlazeFace's 6 points (right eye, left eye, nose tip, mouth centre, ears) -> ArcFace 5."""
        right_eye, left_eye, nose, mouth = kps[:, 0], kps[:, 1], kps[:, 2], kps[:, 3]
        half = (left_eye - right_eye) * _MOUTH_HALF_WIDTH
        return np.stack([right_eye, left_eye, nose, mouth - half, mouth + half], axis=1)


class YuNetDetector:
    """OpenCV's YuNet (2023): anchor-free, strides 8/16/32, BGR 0-255 NCHW input of any multiple of 32.

    `input_size` is the longer side the frame is scaled to before padding (right/bottom) to a multiple of 32.
    """

    strides = (8, 16, 32)

    def __init__(
        self,
        runner: Runner,
        score_threshold: float = 0.6,
        iou: float = 0.3,
        input_size: int = 320,
        max_faces: int = 0,
    ) -> None:
        self.runner = runner
        self.score_threshold = score_threshold
        self.iou = iou
        self.input_size = input_size
        self.max_faces = max_faces
        self.input_name = runner.input_names[0]
        self._grids: dict[tuple[int, int], list[np.ndarray]] = {}

    def _grid(self, w: int, h: int) -> list[np.ndarray]:
        if (w, h) not in self._grids:
            grids = []
            for s in self.strides:
                ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
                grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32))
            self._grids[(w, h)] = grids
        return self._grids[(w, h)]

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        ih, iw = image_bgr.shape[:2]
        scale = self.input_size / max(iw, ih)
        w = int(np.ceil(iw * scale / 32) * 32)
        h = int(np.ceil(ih * scale / 32) * 32)
        img, lb = letterbox(image_bgr, w, h, centre=False)
        x = cv2.dnn.blobFromImage(img)
        out = self.runner.run({self.input_name: x})
        boxes, scores, points = [], [], []
        for s, grid in zip(self.strides, self._grid(w, h), strict=True):
            score = np.sqrt(np.clip(out[f"cls_{s}"][0, :, 0], 0, 1) * np.clip(out[f"obj_{s}"][0, :, 0], 0, 1))
            sel = np.flatnonzero(score >= self.score_threshold)
            if sel.size == 0:
                continue
            g, bb, kp = grid[sel], out[f"bbox_{s}"][0, sel], out[f"kps_{s}"][0, sel]
            centre = (g + bb[:, 0:2]) * s
            half = np.exp(bb[:, 2:4]) * s / 2
            boxes.append(np.concatenate([centre - half, centre + half], axis=1))
            points.append((kp.reshape(-1, 5, 2) + g[:, None, :]) * s)
            scores.append(score[sel])
        if not boxes:
            return []
        b = lb.to_frame(np.concatenate(boxes).reshape(-1, 2, 2)).reshape(-1, 4)
        return _faces(b, np.concatenate(scores), lb.to_frame(np.concatenate(points)), self.iou, self.max_faces)


def retinaface_priors(size: int = 640) -> np.ndarray:
    """Prior boxes [N, 4] (cx, cy, w, h, normalised) of biubug6's RetinaFace config at size x size."""
    priors = []
    for step, min_sizes in ((8, (16, 32)), (16, (64, 128)), (32, (256, 512))):
        n = int(np.ceil(size / step))
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cx = ((xs.ravel() + 0.5) * step / size)[:, None]
        cy = ((ys.ravel() + 0.5) * step / size)[:, None]
        for_cell = [
            np.concatenate([cx, cy, np.full_like(cx, m / size), np.full_like(cx, m / size)], 1) for m in min_sizes
        ]
        priors.append(np.stack(for_cell, axis=1).reshape(-1, 4))  # cell-major, then min size
    return np.concatenate(priors).astype(np.float32)


class RetinaFaceDetector:
    """RetinaFace MobileNet-0.25 at a fixed 640x640: BGR minus (104, 117, 123), softmaxed scores."""

    size = 640
    variances = (0.1, 0.2)

    def __init__(self, runner: Runner, score_threshold: float = 0.6, iou: float = 0.4, max_faces: int = 0) -> None:
        self.runner = runner
        self.score_threshold = score_threshold
        self.iou = iou
        self.max_faces = max_faces
        self.priors = retinaface_priors(self.size)
        self.input_name = runner.input_names[0]
        loc, conf, ldm = runner.output_names[:3]  # export names: output0, 572 (scores), 571 (landmarks)
        self._names = (loc, conf, ldm)

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        img, lb = letterbox(image_bgr, self.size, self.size, centre=False)
        x = cv2.dnn.blobFromImage(img, scalefactor=1.0, mean=(104.0, 117.0, 123.0))
        out = self.runner.run({self.input_name: x})
        loc, conf, ldm = (out[n][0] for n in self._names)
        scores = conf[:, 1]
        sel = np.flatnonzero(scores >= self.score_threshold)
        if sel.size == 0:
            return []
        p, loc, ldm, scores = self.priors[sel], loc[sel], ldm[sel], scores[sel]
        v0, v1 = self.variances
        centre = p[:, :2] + loc[:, :2] * v0 * p[:, 2:]
        half = p[:, 2:] * np.exp(loc[:, 2:] * v1) / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * self.size
        pts = (p[:, None, :2] + ldm.reshape(-1, 5, 2) * v0 * p[:, None, 2:]) * self.size
        b = lb.to_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return _faces(b, scores, lb.to_frame(pts), self.iou, self.max_faces)
