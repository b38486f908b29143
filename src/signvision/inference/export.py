"""`signvision export --run RUN --format onnx`: the run's best model as an ONNX file for deployment (a
`--folds` run or an ensemble: all its models in one graph, merged as `predict` merges them).

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


def deployable(member) -> Deployable:
    """One run's model as a Deployable (its normalisation and temperature inside)."""
    norm = member.ckpt["norm"]
    return Deployable(member.model, norm["mean"], norm["std"], member.task, member.temperature).eval()


class EnsembleDeployable(nn.Module):
    """Several members in one graph, merged as `inference.members.ensemble_probs` merges them: each member at
    its own image size, the mean over each run's folds, the runs merged (`models.probs.merge_probs`)."""

    def __init__(self, members):
        super().__init__()
        self.nets = nn.ModuleList([deployable(m) for m in members])
        self.sizes = [m.cfg.image_size for m in members]
        self.parts = [m.part for m in members]
        self.binary = members[0].task.binary
        self.weights = list(getattr(members, "weights", [1.0]))
        self.merge, self.temperature = getattr(members, "merge", "mean"), getattr(members, "temperature", None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from signvision.inference.members import fit_size
        from signvision.models.probs import merge_probs

        parts: dict[int, list[torch.Tensor]] = {}
        for net, size, part in zip(self.nets, self.sizes, self.parts):
            p = net(fit_size(images, size))  # (B, K), or (B, 1) P(positive)
            parts.setdefault(part, []).append(p[:, 0] if self.binary else p)
        means = [merge_probs(p) for _, p in sorted(parts.items())]  # each run's folds: their mean
        out = means[0] if len(means) == 1 else merge_probs(means, self.weights, self.merge, self.temperature)
        return out.unsqueeze(1) if self.binary else out


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
    from signvision.inference.members import input_size, load_members
    from signvision.training.finished import check_run_folder

    if opset not in OPSETS:
        raise OptionError(f"expected {OPSETS.start} to {OPSETS.stop - 1}", option="opset", value=opset)
    check_export_installed()
    run = Path(run)
    out = Path(out) if out else run / "model.onnx"
    if out.suffix.lower() != ".onnx":
        raise OptionError("the file name must end in .onnx", option="out", value=out)
    meta_path = out.with_suffix(".json")
    refuse_overwrite(out, overwrite)
    refuse_overwrite(meta_path, overwrite)  # the description written beside it
    check_run_folder(run)
    members = load_members(run)
    m, size = members[0], input_size(members)
    wrapped = deployable(members[0]) if len(members) == 1 else EnsembleDeployable(members)
    example = torch.zeros(2, 3, size, size, dtype=torch.uint8)
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
        "image_size": size,
        "outputs": m.task.names[-1:] if m.task.binary else m.task.classes,
        "binary": m.task.binary,
        "temperature": getattr(members, "temperature", None) or m.temperature,
        "model": " + ".join(dict.fromkeys(x.cfg.model for x in members)),
        "members": len(members),
        "epoch": m.ckpt["epoch"] if len(members) == 1 else None,
    }
    with atomic_write(meta_path) as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return out
