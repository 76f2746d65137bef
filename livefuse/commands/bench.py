"""`livefuse bench` (being built: issue 6)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    subparsers.add_parser("bench", help="measure end-to-end latency (not yet built)")
