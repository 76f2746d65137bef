"""ArcFace identity embeddings (InsightFace w600k_r50): who a face is, as a 512-d vector.

Used for the swap source (what identity to paint) and to pick the target most like a reference face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from livefuse.faces.align import warp_face
from livefuse.faces.facts import facts_of

if TYPE_CHECKING:
    from livefuse.engine.session import Session

MODEL = "arcface_w600k_r50"  # whose manifest facts a recogniser given as a file takes


class ArcFace:
    """Runs the recognition model on a face aligned to its template, normalised, as the manifest says
    (the 112-px ArcFace template, RGB, (x - 127.5) / 127.5)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.facts = facts_of(session, MODEL)
        self.input_name = session.input_names[0]
        self.output_name = session.output_names[0]

    def embed(self, image_bgr: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        """The raw embedding [512] (float32, not normalised) of the face at `landmarks5`."""
        facts = self.facts
        crop, _ = warp_face(image_bgr, landmarks5, facts.template or "", facts.size)
        x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
        x = ((x - facts.mean_rgb) * facts.inv_std).transpose(2, 0, 1)[None]
        out = self.session.run({self.input_name: np.ascontiguousarray(x)})
        return np.array(out[self.output_name], dtype=np.float32).reshape(-1)  # copy: outputs are reused buffers


def normalise(embedding: np.ndarray) -> np.ndarray:
    """The embedding scaled to unit length."""
    v = np.asarray(embedding, np.float32).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1 = same direction)."""
    return float(normalise(a) @ normalise(b))
