"""Argument types shared by subcommands, with messages that say what is allowed."""

from __future__ import annotations

import argparse
import re

PROVIDERS = ("auto", "cpu", "cuda", "tensorrt", "rocm", "migraphx", "directml", "coreml", "openvino")


def size_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720")
    width, height = int(match[1]), int(match[2])
    if not (16 <= width <= 7680 and 16 <= height <= 4320):
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: width and height must be 16 to 7680x4320")
    if width % 2 or height % 2:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: width and height must be even (video encoders need it)"
        )
    return width, height


def fps_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid frame rate {text!r}: give a number such as 30") from None
    if not 1 <= value <= 240:
        raise argparse.ArgumentTypeError(f"invalid frame rate {text!r}: it must be from 1 to 240")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: it must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: give seconds, e.g. 10") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: it must be more than 0")
    return value


def milliseconds(text: str) -> float:
    """A time in milliseconds: a finite number, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: give milliseconds, e.g. 2") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: give milliseconds, 0 or more, e.g. 2")
    return value


def positive_ms(text: str) -> float:
    """A time in milliseconds above 0."""
    value = milliseconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: it must be more than 0 ms")
    return value


def on_off(text: str) -> bool:
    if text.lower() in ("on", "true", "1", "yes"):
        return True
    if text.lower() in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid value {text!r}: use on or off")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        default="auto",
        choices=PROVIDERS,
        help="ONNX Runtime execution provider (default: auto, the fastest that works)",
    )
    parser.add_argument(
        "--iobinding",
        type=on_off,
        default=True,
        metavar="on|off",
        help="bind inputs and outputs to preallocated device buffers (default: on)",
    )
    parser.add_argument(
        "--executor",
        default="local",
        metavar="local|triton://HOST:PORT",
        help="where models run: in this process (default), or on a Triton Inference Server "
        "over gRPC, with local fallback (?timeout_ms=N, default two frame intervals)",
    )


def add_video_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size", type=size_arg, default=(1280, 720), metavar="WxH", help="frame size (default: 1280x720)"
    )
    parser.add_argument("--fps", type=fps_arg, default=30.0, metavar="N", help="frame rate (default: 30)")
