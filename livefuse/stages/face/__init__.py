"""The `face` stage: finds, tracks and steadies faces, filling `frame.faces` for the stages after it.

Finding faces afresh on every frame is the costly way. As MediaPipe's face-mesh graph does, the
detector runs only at the start, when a tracked face is lost, and every `detect_every` frames (about
0.25 s by default) to pick up new faces; in between, with `landmarks` on, each face's FaceMesh crop for
the next frame comes from its mesh on this one, and FaceMesh's face-presence score says when it is
lost: one FaceMesh run per face per frame is the whole cost. Without landmarks and without the scan
below, faces between detections move on by their smoothed velocity.

With `scan_every_frame` (the default) the detector also looks once at the whole, downscaled frame on
every frame (a single small model run), so a face entering between detections is found on its first
frame; the frame's side edges are mirrored so that a face half out of the frame is found too. Detection
proper adds BlazeFace's square tiles only for the small faces a whole-frame pass cannot see, one tile a
frame over the detection period so that no frame pays for them all; tracked small faces are looked for
in one mosaic of crops (those passes are `TiledDetector`, in vision/tiled_detector.py).

Before a stage that guards privacy (anonymise) the stage searches for recall instead: the privacy scan
(vision/privacy_scan.py, a second detector family) looks at every frame for faces from `privacy_scan`'s
smallest size up, beside BlazeFace's whole-frame pass, in place of the tiles; every raw detection of
every pass goes to `frame.privacy_boxes`, tracked or not and with no cap. `max_faces` limits the tracks
that effects use, never what is covered.

- `spec.py`: the parameters presets give, and the stage built with its device path.
- `cpu.py`: the stage, on a frame's pixels wherever they are (`FramePixels`); `process` on host frames.
- `device.py`: the stage on a frame that stays on the device, through the device frame's reads.
"""
