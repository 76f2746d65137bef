"""The `face` stage type as presets name it: its parameters, and the stage with its device path."""

from __future__ import annotations

from typing import Any

from livefuse.device.pixels import DeviceReads
from livefuse.stage import Param, StageContext, StageSpec
from livefuse.stages.face.cpu import FaceStage
from livefuse.stages.face.device import FaceOnDevice
from livefuse.stages.registry import register
from livefuse.vision.models import DETECTOR_MODELS, LANDMARK_MODEL, SCAN_MODEL, WIDE_MODEL
from livefuse.vision.privacy_scan import LEVELS


def make_face(params: dict[str, Any], context: StageContext) -> FaceStage:
    """The face stage, with its device path when the chain keeps its frames on the device."""
    stage = FaceStage(params, context)
    if context.transfers is not None:
        stage.device = FaceOnDevice(stage, DeviceReads(context.engine, context.transfers, stage.name))
    return stage


SPEC = register(
    StageSpec(
        type="face",
        summary="Find faces (box, score, five points, optional 468-point mesh), track them with stable ids and "
        "smooth them with a One Euro filter; the face effects after it use them",
        params=(
            Param(
                "detector",
                str,
                "blazeface",
                "blazeface (bundled, faces within ~2 m), blazeface_full (bundled, "
                "up to ~5 m: small faces), yunet or retinaface (pulled models)",
                choices=tuple(DETECTOR_MODELS),
                live=False,
            ),
            Param(
                "model",
                str,
                "",
                "path of the detector's .onnx file instead of the named model (relative to the preset)",
                live=False,
                kind="file",
            ),
            Param(
                "min_score",
                float,
                0.65,
                "detections scoring below this are ignored (lower finds more faces and more false alarms)",
                min=0.05,
                max=1.0,
                live=False,
            ),
            Param("max_faces", int, 4, "at most this many faces", min=1, max=32, live=False),
            Param(
                "landmarks",
                bool,
                False,
                "also run FaceMesh (468 points) on every face; it then follows each "
                "face from frame to frame, so the detector runs only every detect_every frames",
                live=False,
            ),
            Param(
                "detect_every",
                int,
                0,
                "run the full detector every Nth frame and track in between (0: about "
                "0.25 s of frames at the source's rate); the detector's passes are spread over those frames, and "
                "with landmarks it pauses while max_faces faces are followed",
                min=0,
                max=300,
            ),
            Param(
                "scan_every_frame",
                bool,
                True,
                "also look once at the whole downscaled frame every frame (one "
                "small model run), so a face entering between detections is found on its first frame; "
                "always on when anonymise follows; effects that can wait detect_every frames for a new face can "
                "turn it off",
            ),
            Param(
                "privacy_scan",
                str,
                "fast",
                "before anonymise, how hard every frame is searched for faces: "
                + "; ".join(f"{name}, {level.summary}" for name, level in LEVELS.items()),
                choices=tuple(LEVELS),
            ),
            Param(
                "detect_size",
                int,
                320,
                "yunet: longer side of the downscaled frame it looks at",
                min=96,
                max=1920,
                live=False,
            ),
            Param("smoothing", bool, True, "One Euro smoothing of boxes and landmarks"),
            Param("min_cutoff", float, 1.0, "One Euro cutoff (Hz) when still: lower is steadier", min=0.01, max=30.0),
            Param(
                "beta",
                float,
                5.0,
                "One Euro speed coefficient: higher follows fast motion with less lag",
                min=0.0,
                max=1000.0,
            ),
            Param(
                "hold_frames",
                int,
                2,
                "keep a face this many frames after the detector loses it (marked held)",
                min=0,
                max=120,
            ),
        ),
        factory=make_face,
        models=(*DETECTOR_MODELS.values(), WIDE_MODEL, LANDMARK_MODEL, SCAN_MODEL),
    )
)
