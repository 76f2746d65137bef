"""Frames that stay on the engine's device: uploaded once after capture, downloaded once before the outputs.

`boundary` is the only place a full frame crosses between host and device (`livefuse.transfers` counts
what crosses it, and any host round trip a stage forces, by stage); `graphs` and `regions` are the device
paths' building blocks.
"""
