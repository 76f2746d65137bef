"""`livefuse models triton-repo | triton-verify | release | rollback`: a Triton model repository."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

from livefuse.engine.registry import Registry
from livefuse.errors import ModelError, UserError


def preset_models(presets: list[str], explicit: bool) -> tuple[list[str], list[str]]:
    """The manifest models the presets load, in order, and a note for each preset that was skipped.

    The presets are really built (on the CPU provider, at 1280x720), so the list is what they load,
    not what their stages might. With `explicit` a preset that cannot be built is an error.
    """
    from livefuse.engine import Engine
    from livefuse.presets import load_preset
    from livefuse.wiring import assemble

    names: list[str] = []
    skipped: list[str] = []
    for name in presets:
        preset = load_preset(name)
        engine = Engine(provider="cpu")
        try:
            chain = assemble(preset, engine, (1280, 720), 30.0).chain
        except ModelError as exc:
            if explicit:
                raise
            skipped.append(f"{name}: {str(exc).splitlines()[-1].strip()}")
            continue
        chain.close()
        names.extend(n for n in engine.model_names if n not in names)
    return names, skipped


def cmd_triton_repo(args: argparse.Namespace, registry: Registry) -> int:
    from livefuse.presets import available_presets
    from livefuse.triton.config import ServingOptions
    from livefuse.triton.repository import write_model

    options = ServingOptions(
        backend=args.backend,
        max_batch_size=args.max_batch,
        max_queue_delay_us=args.queue_delay_us,
        instances=args.instances,
        gpu=args.gpu,
        tensorrt_fp16=args.tensorrt_fp16,
    )
    presets = args.preset or list(available_presets())
    names, skipped = preset_models(presets, explicit=bool(args.preset))
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        entry = registry.entry(name)
        path = registry.check(entry)  # SHA-256 against the manifest: a ModelError naming both hashes
        # FP16 only for models whose FP16 accuracy check passes (the manifest's trt_fp16, engine/precision.py).
        fp16 = options.tensorrt_fp16 and entry.trt_fp16
        written = write_model(
            args.dir,
            name,
            path,
            registry.expected_sha(entry),
            entry.ref,
            dataclasses.replace(options, tensorrt_fp16=fp16),
        )
        note = " (no TensorRT FP16: the model does not declare trt_fp16)" if options.tensorrt_fp16 and not fp16 else ""
        print(
            f"{name}: version {written.version} ({entry.ref}), "
            f"{'batched' if written.batched else 'unbatched'}: {written.note}{note}"
        )
    for note in skipped:
        print(f"skipped preset {note}")
    print(
        f"wrote {len(names)} models to {args.dir}; serve it with tritonserver --model-repository={args.dir.resolve()}"
        " --model-control-mode=poll (see models/README.md)"
    )
    return 0


def cmd_triton_verify(args: argparse.Namespace, registry: Registry) -> int:
    from livefuse.triton.repository import check

    if not args.dir.is_dir():
        raise UserError(f"no model repository at {args.dir}")
    problems = check(args.dir)
    for problem in problems:
        print(problem)
    if problems:
        raise ModelError(f"{len(problems)} problem(s) in {args.dir}; release the affected versions again")
    print(f"{args.dir}: every config parses and every served file matches its SHA-256")
    return 0


def cmd_release(args: argparse.Namespace, registry: Registry) -> int:
    from livefuse.triton.release import parse_share
    from livefuse.triton.repository import release

    share = parse_share(args.share)
    ref = f"{args.name}@{args.version}"
    if args.from_file is not None:
        known = [e for e in registry.versions(args.name) if e.version == args.version]
        source, expected = args.from_file, registry.expected_sha(known[0]) if known else ""
        label = ref if known else f"{ref} ({args.from_file.name})"
        if not source.is_file():
            raise UserError(f"--from {source}: no such file")
    else:
        entry = registry.entry(ref)
        source, expected, label = registry.check(entry), registry.expected_sha(entry), entry.ref
    state = release(args.to, args.name, source, expected, label, share)
    if state.candidate is not None:
        print(
            f"{args.name}: version {state.candidate} ({label}) released to {state.share:g}% of sessions; "
            f"the rest stay on version {state.current}"
        )
    else:
        print(f"{args.name}: version {state.current} ({label}) released to every session")
    print("Triton loads it at its next repository poll; running daemons follow within seconds")
    return 0


def cmd_rollback(args: argparse.Namespace, registry: Registry) -> int:
    from livefuse.triton.repository import rollback

    state = rollback(args.in_dir, args.name)
    print(f"{args.name}: every session is back on version {state.current} ({state.labels.get(state.current, '?')})")
    return 0


Command = Callable[[argparse.Namespace, Registry], int]


def add_parsers(sub: argparse._SubParsersAction, registry: Callable[[argparse.Namespace], Registry]) -> None:
    """Register the Triton repository subcommands of `livefuse models`."""

    def bind(command: Command) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, registry(args))

    p = sub.add_parser("triton-repo", help="write a Triton model repository for the presets' models")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("--preset", action="append", metavar="NAME", help="only these presets' models (repeatable)")
    p.add_argument(
        "--backend",
        default="onnxruntime",
        choices=("onnxruntime", "python"),
        help="Triton backend: onnxruntime (default), or python (onnxruntime inside Triton's Python "
        "backend, for builds without the onnxruntime backend such as PyTriton's)",
    )
    p.add_argument("--max-batch", type=int, default=8, help="max_batch_size where the model batches (default 8)")
    p.add_argument(
        "--queue-delay-us", type=int, default=2000, help="dynamic batcher's max_queue_delay_microseconds (default 2000)"
    )
    p.add_argument("--instances", type=int, default=1, help="instance_group count (default 1)")
    p.add_argument("--gpu", action="store_true", help="instances on GPUs (KIND_GPU) instead of CPUs")
    p.add_argument(
        "--tensorrt-fp16",
        action="store_true",
        help="add the TensorRT FP16 accelerator stanza to models that declare trt_fp16",
    )
    p.set_defaults(func=bind(cmd_triton_repo))
    p = sub.add_parser("triton-verify", help="check a Triton repository's configs and file hashes")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.set_defaults(func=bind(cmd_triton_verify))
    p = sub.add_parser("release", help="add a model version to a Triton repository, for a share of sessions")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", help="the manifest version (or a label, with --from)")
    p.add_argument("--to", type=Path, required=True, metavar="DIR", help="the repository")
    p.add_argument(
        "--share", default="100%", metavar="PERCENT", help="sessions that get it, by hash of their id (default 100%%)"
    )
    p.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="release this .onnx file (e.g. an optimised or retrained model)",
    )
    p.set_defaults(func=bind(cmd_release))
    p = sub.add_parser("rollback", help="return every session to the previous version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--in", dest="in_dir", type=Path, required=True, metavar="DIR", help="the repository")
    p.set_defaults(func=bind(cmd_rollback))
