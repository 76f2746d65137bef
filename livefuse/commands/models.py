"""`livefuse models ...`: list, inspect, verify, pull, pin, optimise and export models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from livefuse.commands.triton_models import add_parsers as add_triton_parsers
from livefuse.engine.manifest import ModelEntry, semver
from livefuse.engine.registry import Registry
from livefuse.errors import UserError


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(manifest=args.manifest, models_dir=args.models_dir)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n else "?"


def _state(reg: Registry, entry: ModelEntry) -> str:
    """Cheap status for `list` (existence and size; `verify` does the hashing)."""
    path = reg.path(entry)
    if not path.is_file():
        return "missing" if entry.bundled and not entry.optional else "not pulled"
    if entry.size and path.stat().st_size != entry.size:
        return "bad size"
    return "present"


def cmd_list(args: argparse.Namespace) -> int:
    reg = _registry(args)
    pins = reg.pins()
    rows = [("NAME", "VERSION", "STATE", "CHECK", "SIZE", "LICENCE")]
    for name in reg.names():
        for e in reg.versions(name):
            pin = " (pinned)" if pins.get(name) == e.version else ""
            lic = e.license + (" [non-commercial]" if e.non_commercial else "")
            rows.append((e.name, e.version + pin, _state(reg, e), reg.trust(e), _size(e.size), lic))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from livefuse.engine.optimize import metadata

    reg = _registry(args)
    name = args.name.split("@", 1)[0]
    entries = reg.versions(name) if "@" not in args.name else [reg.entry(args.name)]
    if not entries:
        reg.entry(name)  # raises the "no model named" error
    pinned = reg.pins().get(name)
    for e in entries:
        path = reg.path(e)
        print(f"{e.ref}{'  (pinned)' if pinned == e.version else ''}")
        print(f"  file:     {path} ({_state(reg, e)})")
        recorded, how = reg.recorded(e)
        print(
            f"  sha256:   {e.sha256 or (f'{recorded} (recorded; {how})' if recorded else '')}"
            f"{'' if e.sha256 or recorded else 'not in the manifest'}"
            f"{'; checked by the publisher .hash file on pull' if e.sidecar and not recorded else ''}"
        )
        if e.mirrors:
            print(f"  mirrors:  {', '.join(e.mirrors)}")
        print(f"  size:     {e.size or '?'} bytes")
        print(f"  licence:  {e.license}{'  (NON-COMMERCIAL)' if e.non_commercial else ''}")
        print(f"  url:      {e.url or 'bundled'}")
        print(f"  origin:   {e.origin}")
        if e.template:
            print(f"  template: {e.template}")
        for label, specs in (("inputs", e.inputs), ("outputs", e.outputs)):
            print(f"  {label}:")
            for t in specs:
                print(f"    {t.name}: {list(t.shape)} {t.dtype}")
        if e.preprocess:
            p = e.preprocess
            print(f"  preprocess: {p.color} {p.layout} mean={list(p.mean)} std={list(p.std)}")
        for variant in ("slim", "fp16", "int8"):
            vp = reg.variant_path(e, variant)
            if vp.is_file():
                print(f"  variant {variant}: {vp}")
                for k, v in sorted(metadata(vp).items()):
                    print(f"    {k} = {v}")
        if path.is_file():
            meta = metadata(path)
            for k, v in sorted(meta.items()):
                print(f"  metadata {k} = {v}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    reg = _registry(args)
    problems = reg.verify()
    if args.names:
        wanted = {n.split("@", 1)[0] for n in args.names}
        problems = [p for p in problems if p.entry.name in wanted]
    bad = 0
    for p in problems:
        if p.status == "ok":
            print(f"ok          {p.entry.ref}")
        elif p.status == "not-pulled":
            how = "" if p.entry.url else " --from FILE"
            print(f"not pulled  {p.entry.ref} (optional; `livefuse models pull {p.entry.ref}{how}`)")
        else:
            bad += p.is_error
            print(f"{p.status.upper():11} {p.message}")
    if bad:
        print(f"{bad} model(s) need attention", file=sys.stderr)
    return 1 if bad else 0


def _licence_accepted(entry: ModelEntry, yes: bool) -> bool:
    """A non-commercial model is only downloaded once the user said so (a prompt, or --yes in scripts)."""
    if not entry.non_commercial or yes:
        return True
    print(f"{entry.ref} is licensed for NON-COMMERCIAL use only ({entry.license}).", file=sys.stderr)
    if not sys.stdin.isatty():
        raise UserError(
            f"{entry.ref} is licensed for non-commercial use only ({entry.license}); run the pull in a terminal "
            f"to confirm, or pass --yes to accept the licence (scripts)"
        )
    answer = input("Download it for non-commercial use? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def cmd_pull(args: argparse.Namespace) -> int:
    reg = _registry(args)
    entry = reg.entry(args.spec)
    if not (reg.path(entry).is_file() and reg.problem(entry).status == "ok") and not _licence_accepted(entry, args.yes):
        print("not downloaded", file=sys.stderr)
        return 1
    reg.pull(
        args.spec,
        out=sys.stderr,
        allow_unverified=args.allow_unverified,
        from_file=Path(args.from_file) if args.from_file else None,
    )
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    reg = _registry(args)
    previous = reg.pins().get(args.spec.split("@", 1)[0])
    entry = reg.use(args.spec)
    note = f" (was {previous})" if previous and previous != entry.version else ""
    print(
        f"{entry.name} now uses {entry.version}{note}; roll back with `livefuse models use "
        f"{entry.name}@{previous or _older(reg, entry)}`"
    )
    return 0


def _older(reg: Registry, entry: ModelEntry) -> str:
    older = [e.version for e in reg.versions(entry.name) if semver(e.version) < semver(entry.version)]
    return older[0] if older else "VERSION"


def cmd_optimize(args: argparse.Namespace) -> int:
    from livefuse.engine.optimize import optimize

    reg = _registry(args)
    written = optimize(
        reg,
        args.name,
        fp16=args.fp16,
        int8=args.int8,
        calibration=Path(args.calibration) if args.calibration else None,
        simplify_model=args.simplify,
    )
    for path in written:
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from livefuse.engine.export import export, parse_shape

    report = export(
        args.factory,
        Path(args.weights),
        Path(args.output),
        input_shapes=[parse_shape(s) for s in args.input_shape],
        input_names=args.input_names,
        output_names=args.output_names,
        opset=args.opset,
        source=args.name or args.factory,
        atol=args.atol,
    )
    print(
        f"wrote {report.path} (opset {report.opset}, sha256 {report.sha256}, {report.size} bytes); "
        f"max |onnxruntime - torch| = {report.max_abs_diff:.3g}"
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `models` and its subcommands on the main CLI."""
    models = subparsers.add_parser(
        "models",
        help="list, verify, pull, pin, optimise and export models; write and release a Triton model repository",
    )
    models.add_argument("--manifest", type=Path, default=None, help="manifest file (default models/manifest.toml)")
    models.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="pulled models (default $LIVEFUSE_MODELS_DIR, else the data folder `livefuse doctor` shows)",
    )
    sub = models.add_subparsers(dest="models_command", required=True)

    p = sub.add_parser("list", help="every model and version, with state and licence")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("info", help="one model's versions, tensors, preprocessing and variants")
    p.add_argument("name", help="NAME or NAME@VERSION")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("verify", help="check hashes and that present models load; non-zero exit on problems")
    p.add_argument("names", nargs="*", help="only these models")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("pull", help="download a model (mirrors, resumable) and check its SHA-256")
    p.add_argument("spec", metavar="NAME[@VERSION]")
    p.add_argument(
        "--yes", "-y", action="store_true", help="accept a non-commercial licence without asking (for scripts)"
    )
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept a model no publisher vouches for (no sha256, no checksum file); the hash is recorded",
    )
    p.add_argument("--from", dest="from_file", metavar="FILE", help="import a local file instead of downloading")
    p.set_defaults(func=cmd_pull)
    p = sub.add_parser("use", help="pin a version (roll back by pinning the older one)")
    p.add_argument("spec", metavar="NAME@VERSION")
    p.set_defaults(func=cmd_use)
    p = sub.add_parser("optimize", help="write simplified, FP16 or INT8 variants next to a model")
    p.add_argument("name", metavar="NAME[@VERSION]")
    p.add_argument("--fp16", action="store_true", help="FP16 weights/compute (preferred on GPUs)")
    p.add_argument("--int8", action="store_true", help="INT8 static quantisation (needs --calibration)")
    p.add_argument("--calibration", metavar="DIR", help="folder of representative frames for --int8")
    p.add_argument("--simplify", action="store_true", help="onnxslim simplification")
    p.set_defaults(func=cmd_optimize)
    p = sub.add_parser("export", help="export a PyTorch model to ONNX (needs torch)")
    p.add_argument("factory", metavar="MODULE:FACTORY", help="callable returning the torch.nn.Module")
    p.add_argument("--weights", required=True, help="state dict file (.pth/.pt)")
    p.add_argument("--output", required=True, help="ONNX file to write")
    p.add_argument(
        "--input-shape",
        action="append",
        required=True,
        metavar="1,3,H,W",
        help="one per input, batch first (the batch axis is exported as dynamic)",
    )
    p.add_argument("--input-names", nargs="+", default=None)
    p.add_argument("--output-names", nargs="+", default=None)
    p.add_argument("--opset", type=int, default=None, help="default: the newest torch supports")
    p.add_argument("--name", default=None, help="source name recorded in the metadata")
    p.add_argument("--atol", type=float, default=1e-4, help="numerical check tolerance")
    p.set_defaults(func=cmd_export)
    add_triton_parsers(sub, _registry)


def main(argv: list[str] | None = None) -> int:
    """Run `models` alone (tests and `python -m livefuse.commands.models`); the CLI wires add_parser."""
    parser = argparse.ArgumentParser(prog="livefuse")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
