"""The `background` stage: blur, replace or remove everything but the person.

Both implementations segment the person with the selfie segmenter at a quarter of the frame's size,
smooth the mask over time (EMA), feather it, and put the person over the new background; they agree to
a level or two (tests/test_stage_background.py).

- `spec.py`: the parameters presets give, and the factory that picks an implementation by provider.
- `common.py`: what both implementations share: parameters, the segmentation model, the backdrop, the
  colour, and the blur's geometry.
- `cpu.py`: OpenCV, in two steps (segment, composite); the faster path on the CPU provider.
- `graph.py`: the whole stage as one fused ONNX graph, so a frame on a GPU is uploaded and downloaded once.
- `backdrop.py`: the replacement picture, a still or a looped video.
"""
