"""`signvision export --run RUN --format onnx`: the run's best model as an ONNX file for deployment.

The exported graph takes what a camera or an image decoder gives, uint8 RGB images (batch, 3, S, S)
with any batch size, and returns class probabilities: normalisation and the sigmoid (and, for K
classes, the division that makes rows sum to 1) are inside the graph. Beside `model.onnx`,
`model.json` records the class names, the image size and the input format.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from signvision.errors import refuse_overwrite


class Deployable(nn.Module):
    """uint8 images (B, 3, S, S) -> probabilities (B, K), or (B, 1) P(positive) for a binary model."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255.0 - self.mean) / self.std
        p = torch.sigmoid(self.model(x))  # (B, K) or (B, 1)
        return p if p.shape[1] == 1 else p / p.sum(dim=1, keepdim=True)


def export_onnx(run: str | Path, out: str | Path | None = None, *, opset: int = 17, overwrite: bool = False) -> Path:
    from signvision.engine import load_run

    run = Path(run)
    model, task, cfg, ckpt = load_run(run)
    out = Path(out) if out else run / "model.onnx"
    refuse_overwrite(out, overwrite)
    wrapped = Deployable(model, ckpt["norm"]["mean"], ckpt["norm"]["std"]).eval()
    example = torch.zeros(2, 3, cfg.image_size, cfg.image_size, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns that it is the older one
        torch.onnx.export(
            wrapped,
            (example,),
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
        )
    meta = {
        "input": "uint8 RGB, shape (batch, 3, S, S)",
        "image_size": cfg.image_size,
        "outputs": task.names[-1:] if task.binary else task.classes,
        "binary": task.binary,
        "model": cfg.model,
        "epoch": ckpt["epoch"],
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return out


def register_cli(sub, make) -> None:
    p = make(
        sub,
        "export",
        "export a run's best model (ONNX, dynamic batch size, uint8 images in)",
        "signvision export --run runs/lenet --format onnx",
    )
    p.add_argument("--run", required=True)
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--out", help="default RUN/model.onnx")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(
        func=lambda a: print(f"wrote {export_onnx(a.run, a.out, opset=a.opset, overwrite=a.overwrite)}") or 0
    )
