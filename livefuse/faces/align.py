"""Five-point face alignment to the crop templates the face models were trained on.

Templates are FaceFusion's, normalised to [0, 1] of the crop side, in the ArcFace point order of
`livefuse.frame.Face.landmarks5`. The fit is the least-squares similarity (rotation, uniform scale,
translation; Umeyama's closed form), so it is deterministic and never distorts the face.
"""

from __future__ import annotations

import cv2
import numpy as np

TEMPLATES: dict[str, np.ndarray] = {
    # InsightFace's 112-px ArcFace points (38.2946, 51.6963 ...) / 112: the recognition models' crop.
    "arcface_112_v2": np.array(
        [
            [0.34191607, 0.46157411],
            [0.65653393, 0.45983393],
            [0.50022500, 0.64050536],
            [0.37097589, 0.82469196],
            [0.63151696, 0.82325089],
        ],
        np.float64,
    ),
    # The same points shifted 8 px right on a 128-px crop: inswapper_128's input.
    "arcface_128": np.array(
        [
            [0.36167656, 0.40387734],
            [0.63696719, 0.40235469],
            [0.50019687, 0.56044219],
            [0.38710391, 0.72160547],
            [0.61507734, 0.72034453],
        ],
        np.float64,
    ),
    # FFHQ-aligned 512-px crop: GFPGAN, GPEN-BFR and CodeFormer (scaled for the 256-px models).
    "ffhq_512": np.array(
        [
            [0.37691676, 0.46864664],
            [0.62285697, 0.46912813],
            [0.50123859, 0.61331904],
            [0.39308822, 0.72541100],
            [0.61150205, 0.72490465],
        ],
        np.float64,
    ),
}


def template_points(name: str, size: int) -> np.ndarray:
    """The template's five points in pixels of a `size` x `size` crop."""
    return TEMPLATES[name] * float(size)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity transform mapping `src` points onto `dst` in the least-squares sense (Umeyama)."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection: flip the weakest axis
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    var = (s**2).sum() / len(src)
    scale = float((sig * np.diag(fix)).sum() / var) if var > 0 else 1.0
    out = np.empty((2, 3), np.float64)
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - out[:, :2] @ mu_s
    return out


def estimate_affine(landmarks5: np.ndarray, template: str, size: int) -> np.ndarray:
    """2x3 frame-to-crop matrix aligning a face's five points to `template` at `size` px."""
    return estimate_similarity(landmarks5, template_points(template, size))


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The crop-to-frame matrix of a frame-to-crop one."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points [..., 2] mapped through a 2x3 matrix."""
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_face(image: np.ndarray, landmarks5: np.ndarray, template: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The aligned `size` x `size` crop of a face and its frame-to-crop matrix.

    Edges replicate rather than go black, so a face at the frame border does not teach the model a black band.
    """
    matrix = estimate_affine(landmarks5, template, size)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix
