"""`livefuse presets list | show NAME | validate PATH`."""

from __future__ import annotations

import argparse
from pathlib import Path

from livefuse.presets import available_presets, load_preset


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("presets", help="list, show and validate presets")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the presets found").set_defaults(func=list_presets)
    show = actions.add_parser("show", help="a preset's stages and parameters")
    show.add_argument("name", metavar="NAME|PATH")
    show.set_defaults(func=show_preset)
    validate = actions.add_parser("validate", help="check a preset file")
    validate.add_argument("path", type=Path, metavar="PATH")
    validate.set_defaults(func=validate_preset)


def list_presets(args: argparse.Namespace) -> int:
    for name, path in available_presets().items():
        description = load_preset(str(path)).description
        print(f"{name:20s} {description}")
    return 0


def show_preset(args: argparse.Namespace) -> int:
    preset = load_preset(args.name)
    print(f"{preset.name}: {preset.description}\nfile: {preset.path}")
    for config in preset.stages:
        print(f"\n[{config.label}] {config.spec.summary}")
        for param in config.spec.params:
            print(f"  {param.name} = {config.params[param.name]!r}    ({param.describe()}) {param.help}")
    return 0


def validate_preset(args: argparse.Namespace) -> int:
    preset = load_preset(str(args.path))
    print(f"{args.path}: ok ({len(preset.stages)} stages: {', '.join(c.label for c in preset.stages)})")
    return 0
