"""The `colour` stage: brightness, contrast, saturation, temperature and a 3D LUT.

Order, per pixel, in 0..1: temperature gains, brightness, contrast about mid-grey, saturation about
Rec.601 luma (together one affine map: a 3x3 MatMul), clip, then the LUT mixed in by `lut_strength`.

- `spec.py`: the parameters presets give, and the factory that picks an implementation by provider.
- `common.py`: the slider map (`affine`) and the LUT file: what both implementations share.
- `cpu.py`: OpenCV and a table of every 8-bit colour; the faster path on the CPU provider.
- `graph.py`: one ONNX graph on the engine, so on a GPU the frame stays on the device next to the models.
- `cube.py`: the reader and writer of `.cube` 3D LUT files.
"""
