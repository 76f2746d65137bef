"""The `livefuse` command: subcommands run, serve, bench, presets, models and doctor.

A `UserError` anywhere below prints one line naming what is wrong and how to fix
it, and exits non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from livefuse import __version__
from livefuse.errors import UserError
from livefuse.memory import keep_frame_memory

SUBCOMMANDS = (
    "livefuse.commands.run",
    "livefuse.commands.serve",
    "livefuse.commands.bench",
    "livefuse.commands.presets",
    "livefuse.commands.models",
    "livefuse.commands.doctor",
)


class VersionAction(argparse.Action):
    """`--version`: the versions a bug report needs; onnxruntime is imported only when it is asked for."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from livefuse.doctor import versions

        got = versions()
        ort = "onnxruntime-gpu" if got["onnxruntime-gpu"] else "onnxruntime"
        try:
            from livefuse.engine.providers import available, short_name

            providers = ", ".join(short_name(p) for p in available())
        except ImportError as exc:
            providers = f"none ({exc})"
        print(
            f"livefuse {__version__}\n{ort} {got[ort]} (providers: {providers})\nPyAV {got['av']}\n"
            f"aiortc {got['aiortc']}\nPython {got['python']}"
        )
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livefuse", description="Real-time video filter daemon.")
    parser.add_argument(
        "--version",
        action=VersionAction,
        nargs=0,
        help="livefuse's version, with onnxruntime's, PyAV's, aiortc's and the providers",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_frame_memory()
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except UserError as exc:
        sys.stderr.write(f"livefuse: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `livefuse presets list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
