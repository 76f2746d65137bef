"""face-swap-enhance with a restorer that costs what GFPGAN 1.4 costs: `every = 1` against auto, same run.

GFPGAN 1.4's weights cannot be downloaded here, but its cost is its architecture's: this script builds that
architecture (`GFPGANv1Clean`, out_size 512, channel multiplier 2, SFT on half the channels, as GFPGAN 1.4's
inference script configures it) from the `gfpgan` wheel on PyPI, with random weights, and exports it to
ONNX with GFPGAN's I/O ([1, 3, 512, 512] in and out). The swapper and ArcFace are the tests' stand-ins
(tests/models_builder.py). Then `livefuse bench` runs the shipped preset with those files, `every = 1`
(the restorer in line on every frame) and `every = 0` (auto: off the critical path, carried), one after
the other.

    .venv/bin/python benchmarks/enhance_cost.py --json benchmarks/results/enhance-cost.json

Needs torch (`make test` installs it) and PyPI for the wheel (about 0.1 MB; only its architecture files are
read). The ONNX file is about 340 MB, in a temporary folder.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import models_builder as mb  # noqa: E402
from bench_run import figures, livefuse_bench  # noqa: E402

from livefuse.sources.demo import astronaut_bgr  # noqa: E402

GFPGAN_WHEEL = "gfpgan==1.3.8"  # the architecture files of GFPGAN 1.4's release (TencentARC/GFPGAN, Apache-2.0)


def _stub_basicsr() -> None:
    """The two names the architecture files import from basicsr, whose package does not import with a current
    torchvision: a registry decorator that registers nothing, and basicsr's weight initialisation."""
    from torch import nn

    def default_init_weights(module_list: Any, scale: float = 1, bias_fill: float = 0, **kwargs: Any) -> None:
        for module in module_list if isinstance(module_list, list) else [module_list]:
            for m in module.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.kaiming_normal_(m.weight, **kwargs)
                    m.weight.data *= scale
                    if m.bias is not None:
                        m.bias.data.fill_(bias_fill)

    registry = types.SimpleNamespace(register=lambda *a, **k: lambda cls: cls)
    for name in ("basicsr", "basicsr.utils", "basicsr.archs"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["basicsr.utils.registry"] = types.SimpleNamespace(ARCH_REGISTRY=registry)  # type: ignore[assignment]
    sys.modules["basicsr.archs.arch_util"] = types.SimpleNamespace(  # type: ignore[assignment]
        default_init_weights=default_init_weights
    )


def gfpgan_architecture(work: Path) -> Path:
    """GFPGAN 1.4's network with random weights, as ONNX: 'input' [1,3,512,512] -> 'output' [1,3,512,512]."""
    import torch

    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work), GFPGAN_WHEEL], check=True
    )
    with zipfile.ZipFile(next(work.glob("gfpgan-*.whl"))) as wheel:
        wheel.extractall(work / "wheel")
    _stub_basicsr()
    for name, folder in (("gfpgan", "gfpgan"), ("gfpgan.archs", "gfpgan/archs")):
        package = types.ModuleType(name)
        package.__path__ = [str(work / "wheel" / folder)]
        sys.modules[name] = package
    arch = importlib.import_module("gfpgan.archs.gfpganv1_clean_arch")
    net = arch.GFPGANv1Clean(
        out_size=512,
        num_style_feat=512,
        channel_multiplier=2,
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=1,
        sft_half=True,
    ).eval()

    class Restorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            return self.net(x, return_rgb=False, randomize_noise=False)[0]

    path = work / "gfpgan_1.4_architecture.onnx"
    with torch.no_grad():
        torch.onnx.export(
            Restorer(),
            torch.zeros(1, 3, 512, 512),
            str(path),
            input_names=["input"],
            output_names=["output"],
            opset_version=17,
            dynamo=False,
        )
    return path


def preset(work: Path, restorer: Path, every: int) -> Path:
    text = (ROOT / "presets" / "face-swap-enhance.toml").read_text()
    text = text.replace('model = "inswapper_128"', f'model = "{work / "swapper.onnx"}"')
    text = text.replace('arcface_model = "w600k_r50"', f'arcface_model = "{work / "arcface.onnx"}"')
    text = text.replace('source_image = ""', 'source_image = "source.png"')
    text = text.replace('model = "gfpgan_1.4"', f'model = "{restorer}"')
    text = text.replace("every = 0 ", f"every = {every} ")
    path = work / f"face-swap-enhance-every{every}.toml"
    path.write_text(text)
    return path


def bench(preset_path: Path, frames: int) -> dict[str, Any]:
    return figures(livefuse_bench(preset_path, "--size", "1280x720", "--fps", "30", "--provider", "cpu", frames=frames))


def restorer_ms(path: Path, runs: int = 3) -> float:
    """One restorer run's median time on the CPU, as the stage's session runs it (one intra-op thread each)."""
    import numpy as np
    import onnxruntime as ort

    from livefuse.engine.session_open import intra_op_threads

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, 512, 512), np.float32)
    session.run(None, {"input": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"input": x})
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[runs // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        mb.save(mb.inswapper("tint"), work / "swapper.onnx")
        mb.save(mb.arcface(), work / "arcface.onnx")
        cv2.imwrite(str(work / "source.png"), astronaut_bgr())
        restorer = gfpgan_architecture(work)
        cost = restorer_ms(restorer)
        print(f"GFPGAN 1.4's architecture, random weights: {cost:.0f} ms a run at 512 px", flush=True)
        rows = {}
        for every in (1, 0):
            rows[f"every={every}"] = bench(preset(work, restorer, every), args.frames)
            r = rows[f"every={every}"]
            print(
                f"every = {every} ({'auto' if every == 0 else 'in line'}): {r['fps']:.1f} fps, p50 {r['p50']:.0f} ms, "
                f"p99 {r['p99']:.0f} ms, {r['dropped']} dropped",
                flush=True,
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "frames": args.frames,
                    "restorer_ms": round(cost, 1),
                    "runs": rows,
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
