"""The `livefuse` command: subcommands run, bench, presets and models.

A `UserError` anywhere below prints one line naming what is wrong and how to fix
it, and exits non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from livefuse import __version__
from livefuse.errors import UserError
from livefuse.memory import keep_frame_memory

SUBCOMMANDS = ("livefuse.commands.run", "livefuse.commands.bench", "livefuse.commands.presets",
               "livefuse.commands.models")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livefuse", description="Real-time video filter daemon.")
    parser.add_argument("--version", action="version", version=f"livefuse {__version__}")
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


if __name__ == "__main__":
    sys.exit(main())
