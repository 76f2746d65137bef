"""Image-to-tensor and box helpers shared by the adapters (all vectorised: no per-pixel Python)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "models"


def mediapipe_model(name: str) -> Path:
    """Path of a built-in converted MediaPipe model, e.g. `mediapipe_model("face_landmark")`."""
    return MODELS_DIR / "mediapipe" / f"{name}.onnx"


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
    """
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px = (width - nw) // 2 if centre else 0
    py = (height - nh) // 2 if centre else 0
    out = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out[py : py + nh, px : px + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    return out, Letterbox(scale=nw / w if w else scale, pad_x=px, pad_y=py)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int = 0) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first; boxes are x1, y1, x2, y2."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, iou, top_k=limit)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
