"""`signvision export --run RUN --format onnx`: the run's best model as an ONNX file for deployment.

The exported graph takes what a camera or an image decoder gives, uint8 RGB images (batch, 3, S, S)
with any batch size, and returns the run's calibrated class probabilities: normalisation and
softmax(logits / T) (sigmoid(logit / T) for one output; the uncalibrated sigmoids divided by their sum
for a run without a temperature) are inside the graph. Beside `model.onnx`, `model.json` records the
class names, the image size, the temperature and the input format.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from signvision.errors import MissingError, OptionError
from signvision.files import atomic_write, refuse_overwrite
from signvision.models.task import Task

OPSETS = range(9, 21)  # what torch's TorchScript-based ONNX exporter writes


class Deployable(nn.Module):
    """uint8 images (B, 3, S, S) -> probabilities (B, K), or (B, 1) P(positive) for a binary model."""

    def __init__(self, model: nn.Module, mean, std, task: Task, temperature: float | None = None):
        super().__init__()
        self.model, self.task, self.temperature = model, task, temperature
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255.0 - self.mean) / self.std
        p = self.task.probs(self.model(x), self.temperature)  # (B, K) or (B,)
        return p.unsqueeze(1) if p.ndim == 1 else p


def check_export_installed() -> None:
    """One line naming the pip command when the ONNX packages are missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise MissingError(
            "export: the ONNX packages are not installed; pip install 'signvision[export]' (onnx, onnxruntime)"
        ) from None


def export_onnx(run: str | Path, out: str | Path | None = None, *, opset: int = 17, overwrite: bool = False) -> Path:
    """Write RUN's best model as ONNX (and its description as JSON beside it); returns the ONNX path."""
    from signvision.inference.members import load_run_model
    from signvision.training.folder import is_cv_run

    if opset not in OPSETS:
        raise OptionError(f"expected {OPSETS.start} to {OPSETS.stop - 1}", option="opset", value=opset)
    check_export_installed()
    run = Path(run)
    if is_cv_run(run):
        raise OptionError(
            f"a cross-validated run holds several models; export one fold, e.g. {run}/fold1", option="run", value=run
        )
    out = Path(out) if out else run / "model.onnx"
    if out.suffix.lower() != ".onnx":
        raise OptionError("the file name must end in .onnx", option="out", value=out)
    meta_path = out.with_suffix(".json")
    refuse_overwrite(out, overwrite)
    refuse_overwrite(meta_path, overwrite)  # the description written beside it
    m = load_run_model(run)
    wrapped = Deployable(m.model, m.ckpt["norm"]["mean"], m.ckpt["norm"]["std"], m.task, m.temperature).eval()
    example = torch.zeros(2, 3, m.cfg.image_size, m.cfg.image_size, dtype=torch.uint8)
    with warnings.catch_warnings(), atomic_write(out, "wb") as f:  # a full disk leaves no half-written file
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns that it is the older one
        torch.onnx.export(
            wrapped,
            (example,),
            f,
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
        )
    meta = {
        "input": "uint8 RGB, shape (batch, 3, S, S)",
        "image_size": m.cfg.image_size,
        "outputs": m.task.names[-1:] if m.task.binary else m.task.classes,
        "binary": m.task.binary,
        "temperature": m.temperature,
        "model": m.cfg.model,
        "epoch": m.ckpt["epoch"],
    }
    with atomic_write(meta_path) as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return out
