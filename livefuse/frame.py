"""What moves through the pipeline: one captured image plus everything learnt about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Face:
    """One face found in a frame, in frame pixel coordinates.

    `landmarks5` are the five alignment points in the InsightFace/ArcFace order:
    right eye (subject's right, left in the image), left eye, nose tip, right mouth
    corner, left mouth corner. `mesh` holds the 468 FaceMesh points (x, y, z) when
    a landmark stage ran.
    """

    box: np.ndarray  # float32 [4]: x1, y1, x2, y2
    score: float
    landmarks5: np.ndarray  # float32 [5, 2]
    track_id: int = -1
    mesh: np.ndarray | None = None  # float32 [468, 3]
    held: bool = False  # True when kept from an earlier frame because the detector missed
    # Where the detector (or FaceMesh) found it on this very frame, before smoothing: `box` is smoothed, and
    # smoothing lags a fast face, so a privacy stage covers both.
    found_box: np.ndarray | None = None


@dataclass
class Frame:
    """A captured frame, and what the stages found out about it on the way.

    `image` is HxWx3 uint8 in BGR order (OpenCV's and PyAV's `bgr24`).
    `capture_ns` is `time.monotonic_ns()` when the source released the frame;
    every latency figure is measured from it. `source_epoch` counts the times the
    source had been reopened when the frame was captured: a stage sees it move on
    as `Stage.on_source_reopened()`.

    Stages pass what they learn to later stages (and their own later steps) in the
    typed fields below, never in string-keyed notes: `faces` and `faces_searched`
    from the face stage, `person_mask` and `small` from background's segment step.
    `meta` is free for stages outside livefuse (tests, experiments); no shipped stage
    reads or writes it.
    """

    seq: int
    capture_ns: int
    image: np.ndarray
    faces: list[Face] = field(default_factory=list)
    stage_ns: dict[str, int] = field(default_factory=dict)  # time spent in each stage
    meta: dict[str, Any] = field(default_factory=dict)
    source_epoch: int = 0
    # True once a face stage looked at this frame: `faces` is then its answer, even when empty (anonymise
    # covers the whole frame when no face stage ran).
    faces_searched: bool = False
    # Before a privacy stage: every raw detection of every pass on this frame (frame pixels), tracked or not and
    # with no cap, for covering (set by the face stage; `faces` holds the tracked ones effects use).
    privacy_boxes: list[np.ndarray] = field(default_factory=list)
    # The person at segmentation resolution, float32 0..1 (1 = person), smoothed and feathered: set by the
    # background stage's segment step (CPU path).
    person_mask: np.ndarray | None = None
    # The frame shrunk once (background's segment step), for its composite step's blur; dropped there.
    small: np.ndarray | None = None
    # On a chain whose frames stay on the device: the image as an onnxruntime OrtValue on the engine's
    # device, from the upload after capture to the download before the outputs (`image` is stale then).
    device_image: Any = None

    time_base = 90000  # RTP video clock (1/90000 s): what the outputs turn capture_ns into

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        h, w = self.image.shape[:2]
        return w, h
