"""livefuse: real-time video filter daemon."""

__version__ = "0.1.0"
