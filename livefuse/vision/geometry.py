"""Image-to-tensor and box helpers shared by the adapters (all vectorised: no per-pixel Python)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from livefuse.paths import mediapipe_model as mediapipe_model  # re-exported: the adapters take it from here
from livefuse.paths import shipped_models_dir

MODELS_DIR = shipped_models_dir()


@dataclass(frozen=True)
class Letterbox:
    """How a frame was scaled and padded into a model input; maps model pixels back to frame pixels."""

    scale: float
    pad_x: float
    pad_y: float

    def to_frame(self, pts: np.ndarray) -> np.ndarray:
        """Model-input pixel coordinates [..., 2] -> frame pixel coordinates."""
        out = np.asarray(pts, dtype=np.float32).copy()
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale
        return out


def letterbox(image: np.ndarray, width: int, height: int, centre: bool = True) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad with zeros to width x height.

    Centred padding is what MediaPipe's ImageToTensorCalculator does; RetinaFace and YuNet
    are trained on top-left-anchored inputs, where padding at the right/bottom keeps it simple.
    An image already width x height is returned as it is: the callers only read it.
    """
    h, w = image.shape[:2]
    if (w, h) == (width, height):  # already the model's size (the privacy scan's input): read as it is
        return image, Letterbox(scale=1.0, pad_x=0, pad_y=0)
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px = (width - nw) // 2 if centre else 0
    py = (height - nh) // 2 if centre else 0
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    out[py : py + nh, px : px + nw] = resize(image, nw, nh)
    return out, Letterbox(scale=scale, pad_x=px, pad_y=py)


def shrink_steps(frame_size: tuple[int, int], out_size: tuple[int, int]) -> list[tuple[int, int]]:
    """The sizes `resize` passes through, (width, height) each: halvings while 4x too big, then the target."""
    w, h = frame_size
    width, height = out_size
    if width >= w or height >= h:
        return [out_size]
    steps = []
    while w >= 4 * width and h >= 4 * height:
        w, h = w // 2, h // 2
        steps.append((w, h))
    if (w, h) != out_size:
        steps.append(out_size)
    return steps


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` resized to width x height; a big shrink is halved (box filter) first, then area-resized.

    OpenCV's INTER_AREA is fast for an exact halving but several times slower for an odd ratio such as
    1280 -> 192. Halving while the ratio is 4 or more and finishing with an area step from under 4x keeps
    the detectors' accuracy (halving down to under 2x moved full-range BlazeFace's points on a distant
    face by 2 px, tests/test_vision.py) for half the time: a detector looks at every frame.
    """
    h, w = image.shape[:2]
    if width >= w or height >= h:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    for size in shrink_steps((w, h), (width, height)):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def rgb_tensor(image_bgr: np.ndarray, scale: float, shift: float = 0.0) -> np.ndarray:
    """A uint8 BGR image as a float32 [1, H, W, 3] RGB tensor `x * scale + shift`, scaled in place."""
    x = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB).astype(np.float32)[None]
    x *= scale
    if shift:
        x += shift
    return x


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int = 0) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first; boxes are x1, y1, x2, y2.

    `limit` (0: none) cuts the kept boxes after suppression. It is not OpenCV's `top_k`, which cuts the
    candidates before it: the best face's overlapping duplicates would fill the quota and hide the others.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, iou)
    keep = np.asarray(kept, dtype=np.int64).reshape(-1)
    return keep[:limit] if limit > 0 else keep


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def sigmoid_scalar(x: float) -> float:
    """`sigmoid` of one number, without numpy's per-call cost."""
    return 1.0 / (1.0 + math.exp(-min(max(x, -80.0), 80.0)))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of x1, y1, x2, y2 boxes: [len(a), len(b)]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float, limit: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept face is the score-weighted mean of its overlapping group.

    Averaging the many anchors that fire on one face steadies BlazeFace's boxes and keypoints.
    """
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    alive = np.ones(len(boxes), dtype=bool)
    out_b, out_s, out_p = [], [], []
    overlaps = iou_matrix(boxes, boxes)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        group = alive & (overlaps[i] > iou)
        group[i] = True
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_p.append((points[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        alive &= ~group
        if limit and len(out_s) >= limit:
            break
    return np.array(out_b, np.float32), np.array(out_s, np.float32), np.array(out_p, np.float32)


def box_overlaps(box: np.ndarray, boxes: list[np.ndarray], iou: float = 0.2) -> bool:
    """Whether `box` overlaps one of `boxes` or has its centre inside one (the same face, found twice)."""
    if not boxes:
        return False
    others = np.stack(boxes)
    centre = (box[:2] + box[2:]) / 2
    inside = (others[:, :2] <= centre).all(1) & (centre <= others[:, 2:]).all(1)
    return bool(inside.any() or (iou_matrix(box[None], others)[0] > iou).any())
