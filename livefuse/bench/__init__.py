"""`livefuse bench`: end-to-end latency and throughput of a preset on a real-time paced source.

The modules here import only the standard library and numpy at the top, so the peer
scripts under benchmarks/peers/ (some run in a separate virtualenv without livefuse's
dependencies) can share the same camera emulation and the same figures.
"""
