"""What the face stages need of their models beyond loading them: inswapper's `emap` matrix.

Loading is `engine/loader.py`, the one loader every stage reaches through its context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

from livefuse.errors import ModelError

if TYPE_CHECKING:
    from livefuse.engine.session import Session


def last_initializer(session: Session) -> np.ndarray:
    """The last initializer of a session's ONNX graph as float32 (inswapper keeps its `emap` there)."""
    source = session.source
    if source.path is not None:
        model = onnx.load(str(source.path), load_external_data=False)
    elif source.data is not None:
        model = onnx.load_from_string(source.data)
    else:  # pragma: no cover - every ModelSource has one or the other
        raise ModelError(f"{source.label}: cannot read its graph")
    if not model.graph.initializer:
        raise ModelError(
            f"{source.label} has no initializers; it is not an inswapper model (expected a 512x512 "
            f"emap matrix as the last initializer)"
        )
    return numpy_helper.to_array(model.graph.initializer[-1]).astype(np.float32)
