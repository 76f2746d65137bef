"""The `swap` stage: replaces faces with a source identity (inswapper_128, FaceFusion-style).

The source is a photo (preset `source_image`, or `set_source_face` from the web API); its ArcFace
embedding is projected through the swapper's emap once. Each selected target face is aligned to the
128-px ArcFace template, swapped, colour-matched to the original crop and pasted back through the
inverse affine with a feathered mask (`mask_blur`, pulled in by `mask_padding`). The parts named in
`keep_regions` (eyes, brows, mouth, nose: FaceMesh contours grown by `keep_grow`, feathered) are then
blended back from the original frame, so the person's own mouth keeps speech looking real. With
`occlusion` = "hands", hands in front of a face (MediaPipe's hand models) keep their original pixels too;
with "parser" (or "both") a face parser limits the paint to the face's own classes, as FaceFusion does,
and takes the kept parts from its classes instead of FaceMesh.
Until a source face is set the stage passes frames through.

- `spec.py`: the parameters presets give, and the stage built with its device path.
- `cpu.py`: the stage on host frames; what its device path reads of it is `device.SwapView`.
- `device.py`: the swap on a frame that stays on the device: crop, model and paste-back there.
"""
