"""A Triton model repository for livefuse's models: write it, release a version, roll back, check it.

Layout (Triton's own): `DIR/<model>/config.pbtxt` and `DIR/<model>/<version>/model.onnx`. Triton
versions are integers; the release state in each config maps them to the manifest's `name@version`
and to the SHA-256 of the file served. Every file is hash-checked on the way in (against the
manifest) and `check` compares every served file with its recorded hash.

A model with a fixed batch of 1 is given a dynamic batch axis when running items together gives the
same answers as running them alone (`engine.batch_axis`), so Triton's dynamic batcher can merge
requests from many streams; otherwise it is served unbatched (`max_batch_size: 0`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx

from livefuse.engine.batch_axis import batch_error, fixed_batch, with_dynamic_batch
from livefuse.errors import ModelError, UserError
from livefuse.triton.config import (
    ServingOptions,
    build_config,
    config_text,
    parse_config,
    release_state,
)
from livefuse.triton.release import ReleaseState

BATCH_TOLERANCE = 1e-5
PYTHON_MODEL = Path(__file__).with_name("python_model.py")


@dataclass
class Written:
    """What `write_model` did for one model, for the command's report."""

    name: str
    version: int
    batched: bool
    note: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _servable(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool, str]:
    """The model as it will be served, whether it takes a batch axis, and a note on how that was decided."""
    batch = fixed_batch(model)
    if batch is None:
        return model, True, "dynamic batch axis"
    if batch != 1:
        return model, False, f"fixed batch of {batch}: served unbatched"
    dynamic = with_dynamic_batch(model)
    try:
        error = batch_error(dynamic)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several types; unbatched is the safe answer
        return model, False, f"batch axis not freed ({str(exc).splitlines()[0][:80]}): served unbatched"
    if error > BATCH_TOLERANCE:
        return model, False, f"batched results differ by {error:.2g}: served unbatched"
    return dynamic, True, f"batch axis freed (batched = unbatched within {error:.1g})"


def _atomic_write(path: Path, text: str) -> None:
    """Triton polls the repository: it must never read a half-written config."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_version(folder: Path, model: onnx.ModelProto, backend: str) -> str:
    """Write one version folder (model.onnx, plus model.py for the Python backend); the file's SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    tmp = folder / ".model.onnx.tmp"
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    if backend == "python":
        shutil.copyfile(PYTHON_MODEL, folder / "model.py")
    return _sha256(path)


def _verified_model(path: Path, expected: str, label: str) -> onnx.ModelProto:
    actual = _sha256(path)
    if expected and actual != expected:
        raise ModelError(f"{label}: {path} has sha256 {actual}, expected {expected}; it is not added to the repository")
    return onnx.load(str(path))


def write_model(root: Path, name: str, source: Path, expected_sha: str, label: str, options: ServingOptions) -> Written:
    """Add `name` to the repository as version 1, or leave it as it is when the repository has it already."""
    folder = root / name
    config_path = folder / "config.pbtxt"
    if config_path.is_file():
        state = release_state(parse_config(config_path), str(config_path))
        return Written(name, state.current, bool(parse_config(config_path).max_batch_size), "already present")
    served, batched, note = _servable(_verified_model(source, expected_sha, label))
    sha = _write_version(folder / "1", served, options.backend)
    state = ReleaseState(current=1, labels={1: label}, sha256={1: sha})
    _atomic_write(config_path, config_text(build_config(name, served, state, options, batched)))
    return Written(name, 1, batched, note)


def _options_of(config: object) -> ServingOptions:
    """The serving options an existing config was written with, so a release keeps them."""
    groups = config.instance_group  # type: ignore[attr-defined]
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator  # type: ignore[attr-defined]
    return ServingOptions(
        backend=config.backend,  # type: ignore[attr-defined]
        max_batch_size=config.max_batch_size or ServingOptions.max_batch_size,  # type: ignore[attr-defined]
        max_queue_delay_us=config.dynamic_batching.max_queue_delay_microseconds,  # type: ignore[attr-defined]
        instances=groups[0].count if groups else 1,
        gpu=bool(groups) and groups[0].kind == 1,  # KIND_GPU
        tensorrt_fp16=any(a.name == "tensorrt" for a in accelerators),
    )


def _load(root: Path, name: str) -> tuple[Path, object, ReleaseState]:
    config_path = root / name / "config.pbtxt"
    if not config_path.is_file():
        have = sorted(p.name for p in root.iterdir() if (p / "config.pbtxt").is_file()) if root.is_dir() else []
        raise UserError(
            f"no model {name!r} in the repository {root}; it has: {', '.join(have) or 'none'} "
            f"(write it with `livefuse models triton-repo {root}`)"
        )
    config = parse_config(config_path)
    return config_path, config, release_state(config, str(config_path))


def release(root: Path, name: str, source: Path, expected_sha: str, label: str, share: float) -> ReleaseState:
    """Add `source` as the next version of `name`, for `share` percent of the sessions."""
    config_path, config, state = _load(root, name)
    options = _options_of(config)
    served, batched, _ = _servable(_verified_model(source, expected_sha, label))
    if batched != bool(config.max_batch_size):  # type: ignore[attr-defined]
        raise UserError(
            f"{label} cannot replace {name} version {state.current}: one has a batch axis and the other does not"
        )
    version = max(state.labels) + 1
    sha = _write_version(root / name / str(version), served, options.backend)
    state.release(version, label, sha, share)
    _atomic_write(config_path, config_text(build_config(name, served, state, options, batched)))
    return state


def rollback(root: Path, name: str) -> ReleaseState:
    """Everyone back on the previous version (the rolled-back one stays loaded until the next release)."""
    config_path, config, state = _load(root, name)
    state.rollback(name)
    config.version_policy.specific.versions[:] = state.served()  # type: ignore[attr-defined]
    config.parameters["livefuse_release"].string_value = state.to_json()  # type: ignore[attr-defined]
    _atomic_write(config_path, config_text(config))
    return state


def check(root: Path) -> list[str]:
    """Every problem in the repository: configs that do not parse, served files missing or altered."""
    problems: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        config_path = folder / "config.pbtxt"
        try:
            state = release_state(parse_config(config_path), str(config_path))
        except UserError as exc:
            problems.append(str(exc))
            continue
        for version in state.served():
            path = folder / str(version) / "model.onnx"
            if not path.is_file():
                problems.append(f"{folder.name} version {version}: {path} is missing")
                continue
            actual, expected = _sha256(path), state.sha256.get(version, "")
            if actual != expected:
                problems.append(f"{folder.name} version {version}: {path} has sha256 {actual}, expected {expected}")
    return problems
