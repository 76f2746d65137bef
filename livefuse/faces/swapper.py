"""inswapper_128: paints a source identity (an ArcFace embedding) onto an aligned target face.

The model takes the target crop aligned to the 128-px ArcFace template, RGB in [0, 1], and the source
embedding projected through its own `emap` matrix (the graph's last initializer) and L2-normalised,
as InsightFace's reference code does. It returns the swapped crop, RGB in [0, 1].
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from livefuse.errors import ModelError
from livefuse.faces.align import warp_face

SIZE = 128
TEMPLATE = "arcface_128"


class InSwapper:
    """One inswapper session (FP32 or FP16 weights; inputs are cast to what the graph declares)."""

    def __init__(self, session: Any, emap: np.ndarray) -> None:
        if emap.shape != (512, 512):
            raise ModelError(f"{session.source.label}: the last initializer has shape {list(emap.shape)}, expected "
                             f"[512, 512] (the emap matrix); is it an inswapper_128 model?")
        missing = {"target", "source"} - set(session.input_names)
        if missing:
            raise ModelError(f"{session.source.label} has inputs {session.input_names}; an inswapper model takes "
                             f"'target' and 'source'")
        self.session = session
        self.emap = emap
        self.output_name = "output" if "output" in session.output_names else session.output_names[0]
        self._dtypes = {name: session.inputs[name][1] for name in ("target", "source")}

    def latent(self, embedding: np.ndarray) -> np.ndarray:
        """The model's `source` input [1, 512]: the normalised embedding times emap, normalised again."""
        v = np.asarray(embedding, np.float32).reshape(1, -1)
        latent = (v / max(float(np.linalg.norm(v)), 1e-12)) @ self.emap
        return latent / max(float(np.linalg.norm(latent)), 1e-12)

    def swap(self, image_bgr: np.ndarray, landmarks5: np.ndarray, latent: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                                np.ndarray]:
        """(swapped crop BGR uint8, original crop, frame-to-crop matrix) for the face at `landmarks5`."""
        crop, matrix = warp_face(image_bgr, landmarks5, TEMPLATE, SIZE)
        x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        feeds = {"target": np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=self._dtypes["target"]),
                 "source": np.ascontiguousarray(latent, dtype=self._dtypes["source"])}
        out = np.asarray(self.session.run(feeds)[self.output_name], np.float32)[0]
        rgb = np.clip(out.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), crop, matrix
