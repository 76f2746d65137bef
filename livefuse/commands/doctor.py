"""`livefuse doctor [--json]`: one screen on what this machine offers livefuse and what to fix.

Exits 1 when the default `livefuse run` would not work (a `fail` line), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from livefuse.commands.args import positive_int

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "info": "    "}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check providers, GPUs, cameras, virtual camera, audio, port "
        "and models; exits 1 when the default `livefuse run` would not work",
    )
    parser.add_argument("--json", action="store_true", help="the same as JSON, for scripts")
    parser.add_argument("--host", default="127.0.0.1", help="the address `livefuse run` will serve on")
    parser.add_argument("--port", type=positive_int, default=8080, help="the port `livefuse run` will serve on")
    parser.add_argument("--preset", metavar="NAME|PATH", help="the preset to build (default: run's default)")
    parser.set_defaults(func=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    from livefuse.doctor import FAIL, WARN, run_checks, versions

    checks = run_checks(args.host, args.port, args.preset)
    failed = [c for c in checks if c.status == FAIL]
    if args.json:
        print(
            json.dumps(
                {"ok": not failed, "versions": versions(), "checks": [asdict(c) for c in checks]}, indent=2, default=str
            )
        )
        return 1 if failed else 0
    got = versions()
    print("livefuse " + ", ".join(f"{k} {v}" for k, v in got.items() if v and k != "livefuse") + f" ({sys.platform})")
    for c in checks:
        first, *rest = c.message.splitlines() or [""]
        print(f"{MARKS.get(c.status, c.status):4s} {c.area:11s} {first}")
        for line in rest:
            print(f"{'':16s}{line}")
        if c.fix and c.status in (FAIL, WARN):
            print(f"{'':16s}fix: {c.fix}")
    warned = sum(c.status == WARN for c in checks)
    if failed:
        print(f"\nthe default `livefuse run` would not work: {len(failed)} problem(s) above (FAIL)")
    else:
        print(f"\nthe default `livefuse run` works here{f' ({warned} warning(s) above)' if warned else ''}")
    return 1 if failed else 0
