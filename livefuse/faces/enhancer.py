"""Face restoration (GFPGAN 1.4, GPEN-BFR 256/512, CodeFormer) on the FFHQ-aligned crop.

All four take RGB in [-1, 1] as NCHW at their square size and return the same; CodeFormer also takes
`weight`, its fidelity (0 = most restored, 1 = closest to the input). The crop size is read from the
model, and the template (FFHQ 512 unless told otherwise) is scaled to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from livefuse.errors import ModelError
from livefuse.faces.align import warp_face
from livefuse.faces.facts import facts_of

if TYPE_CHECKING:
    from livefuse.engine.session import Session

MODEL = "gfpgan_1.4"  # whose manifest facts an enhancer given as a file takes


class FaceEnhancer:
    """One restoration session; `enhance` returns the restored crop and its frame-to-crop matrix."""

    def __init__(self, session: Session, template: str | None = None, fidelity: float = 0.5) -> None:
        self.session = session
        self.facts = facts_of(session, MODEL)  # mean and std, and the template when none is given
        self.template = template or self.facts.template or ""
        self.fidelity = fidelity
        images = [n for n in session.input_names if n != "weight"]
        if len(images) != 1:
            raise ModelError(
                f"{session.source.label} has inputs {session.input_names}; a face enhancer takes one "
                f"image input (and CodeFormer's 'weight')"
            )
        self.input_name = images[0]
        shape, self._dtype = session.inputs[self.input_name]
        size = shape[-1]
        if len(shape) != 4 or not isinstance(size, int) or shape[-2] != size:
            raise ModelError(
                f"{session.source.label}: input {self.input_name!r} has shape {shape}; expected "
                f"[1, 3, N, N] (e.g. 512 for GFPGAN, 256 for GPEN-BFR 256)"
            )
        self.size = int(size)
        self.output_name = session.output_names[0]
        self.weight: tuple[list[Any], np.dtype] | None = session.inputs.get("weight")

    def weight_feed(self) -> np.ndarray:
        """CodeFormer's fidelity as its `weight` input."""
        assert self.weight is not None
        shape, dtype = self.weight
        dims = [d if isinstance(d, int) else 1 for d in shape]
        return np.full(dims, self.fidelity, dtype=dtype)

    def enhance(self, image_bgr: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(restored crop BGR uint8, frame-to-crop matrix) for the face at `landmarks5`."""
        crop, matrix = warp_face(image_bgr, landmarks5, self.template, self.size)
        return self.restore(crop), matrix

    def restore(self, crop: np.ndarray) -> np.ndarray:
        """The restored version of an aligned BGR uint8 crop of the model's size."""
        facts = self.facts
        x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * facts.inv_std - facts.offset
        feeds = {self.input_name: np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=self._dtype)}
        if self.weight is not None:
            feeds["weight"] = self.weight_feed()
        out = np.asarray(self.session.run(feeds)[self.output_name], np.float32)[0]
        rgb = np.clip((out.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
