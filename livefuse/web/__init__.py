"""The web face of livefuse: preview page, WebRTC signalling, JSON control API and Prometheus metrics."""
