"""The `enhance` stage: face restoration (GFPGAN 1.4, GPEN-BFR 256/512, CodeFormer) blended by strength.

Each selected face is aligned to the model's template (FFHQ 512, scaled to the model's size; GPEN-BFR
256 uses the 128-px ArcFace template as FaceFusion does), restored, and pasted back with a feathered
mask at `strength`. Runs after `swap` to sharpen inswapper's 128-px output. With `every` = N > 1 (or
auto, when a run does not fit the frame budget) the restorer runs on one frame in N off the critical
path and the frames between carry its detail layer (faces/carry.py). With `occlusion` = "hands", hands in
front of a face keep their original pixels (as swap's).

- `spec.py`: the parameters presets give, and the stage built with its device path.
- `cpu.py`: the stage on host frames; what its device path reads of it is `device.EnhanceView`.
- `device.py`: the restorer on a frame that stays on the device: crop, model and paste-back there.
"""
