"""`models export`: a small PyTorch module round-trips through ONNX and the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livefuse.engine import Engine
from livefuse.errors import ModelError, UserError

torch: Any = pytest.importorskip("torch")


class TinyNet(torch.nn.Module):
    """Conv + BN + residual + pooling head: enough to exercise constant folding and two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: Any) -> tuple[Any, Any]:
        y = torch.relu(self.bn(self.conv(x))) + x.mean(dim=1, keepdim=True)
        return torch.sigmoid(y), self.head(y.mean(dim=(2, 3)))


def make() -> TinyNet:
    return TinyNet()


def test_export_round_trip(tmp_path: Path) -> None:
    from livefuse.engine.export import export
    from livefuse.engine.optimize import metadata

    torch.manual_seed(0)
    trained = make()
    trained.bn.running_mean.uniform_(-0.5, 0.5)  # non-default buffers must survive the trip
    weights = tmp_path / "tiny.pth"
    torch.save({"state_dict": trained.state_dict()}, weights)
    out = tmp_path / "tiny.onnx"
    report = export(
        f"{__name__}:make",
        weights,
        out,
        [(1, 3, 32, 32)],
        input_names=["image"],
        output_names=["mask", "logits"],
        source="tiny",
    )
    assert out.is_file() and report.max_abs_diff < 1e-4 and report.opset >= 17
    meta = metadata(out)
    assert meta["livefuse.source"] == "tiny" and "torch.onnx.export" in meta["livefuse.tool"]
    sess = Engine("cpu", cache_dir=tmp_path / "engine").session(out)
    assert sess.input_names == ["image"] and sess.output_names == ["mask", "logits"]
    assert sess.inputs["image"][0][0] == "batch"  # dynamic batch axis
    trained.eval()
    x = np.random.default_rng(1).random((3, 3, 32, 32), dtype=np.float32)  # batch 3 though exported with 1
    got = sess.run({"image": x})
    with torch.no_grad():
        mask, logits = trained(torch.from_numpy(x))
    np.testing.assert_allclose(got["mask"], mask.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["logits"], logits.numpy(), atol=1e-5)


def test_export_errors(tmp_path: Path) -> None:
    from livefuse.commands import models as cli
    from livefuse.engine.export import export, parse_shape

    with pytest.raises(UserError, match="MODULE:FACTORY"):
        export("nomodule", None, tmp_path / "x.onnx", [(1, 3, 8, 8)])
    with pytest.raises(UserError, match="positive integer"):
        parse_shape("1,0,3")
    weights = tmp_path / "w.pth"
    torch.save({"other.weight": torch.zeros(1)}, weights)
    with pytest.raises(UserError, match="does not fit"):
        export(f"{__name__}:make", weights, tmp_path / "x.onnx", [(1, 3, 8, 8)])

    def nondeterministic() -> Any:
        class Noisy(torch.nn.Module):
            def forward(self, x: Any) -> Any:
                return x + torch.rand_like(x)  # exports, but never matches: the check must catch it

        return Noisy()

    with pytest.raises(ModelError, match="differs from torch"):
        export(nondeterministic, None, tmp_path / "noisy.onnx", [(1, 3, 8, 8)])
    assert not (tmp_path / "noisy.onnx").exists()
    rc = cli.main(
        [
            "models",
            "export",
            f"{__name__}:make",
            "--weights",
            str(tmp_path / "missing.pth"),
            "--output",
            str(tmp_path / "o.onnx"),
            "--input-shape",
            "1,3,8,8",
        ]
    )
    assert rc == 2
