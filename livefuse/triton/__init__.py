"""Serving livefuse's models from NVIDIA Triton Inference Server.

- `repository`: writes a Triton model repository for the models presets use, and releases or rolls
  back model versions in it (grey release by session share).
- `config`: one model's `config.pbtxt`, built and parsed with the model-config protobuf tritonclient ships.
- `release`: the release state kept in each config (which version which session uses).
- `executor`: `--executor triton://HOST:PORT`: model calls go to Triton, with local fallback.
"""
