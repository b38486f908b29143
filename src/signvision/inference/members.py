"""A trained run's models, ready for inference.

A run is a single run folder (best.pt holds the weights and the fitted temperature), a cross-validated run
(OUT/cv.json, one run per fold in OUT/fold<k>/, the temperature fitted on the out-of-fold logits in
OUT/summary.json) or an ensemble of cross-validated runs (E/ensemble.json: its runs; E/summary.json: their
weights, how they merge, one temperature on top). Its *members* are the models that make its predictions:
the run's one model, each fold's model, whose probabilities are averaged (a fold ensemble), or every fold of
every run of an ensemble, each run's folds averaged and the runs merged by `models.probs.merge_probs`.

    RunModel         a model with its task, config, checkpoint, temperature and folder (None: in memory)
    Members          a run's members (a list) and how they merge: the part (run) of each, the parts' weights
    load_run_model   one run folder's model (`sv.load_run` is the `Run` of a folder; this is its model)
    load_members     a run folder's members: its model, each fold's with the out-of-fold temperature, or an
                     ensemble's
    validation_set   a member's own validation images, rebuilt from its split.csv
    ensemble_probs   one batch -> the members' merged calibrated probabilities: what predict, evaluate --data
                     and serve all use
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.data.dataset import ImageDataset
from signvision.files import read_json
from signvision.models.augment import TTA
from signvision.models.task import Task
from signvision.training.checkpoint import load_checkpoint, model_from_checkpoint
from signvision.training.finished import check_run_folder, fold_folders, is_cv_run
from signvision.training.loop import view_probs
from signvision.training.runtime import Runtime


@dataclass
class RunModel:
    """A trained model ready for inference: the model, its task and config, the checkpoint it came from,
    the temperature its probabilities are divided by (None: uncalibrated) and its run folder (None for a run
    in memory)."""

    model: nn.Module
    task: Task
    cfg: TrainConfig
    ckpt: dict
    temperature: float | None
    folder: Path | None
    part: int = 0  # which run of an ensemble it belongs to (0 outside ensembles)


class Members(list):
    """A run's members (RunModels) and how their probabilities merge: within a part (a run) the members'
    mean; across parts `merge_probs` with `weights` (one per part), `merge` and `temperature`. A plain list
    of RunModels is one part, averaged."""

    def __init__(self, members=(), *, weights=(1.0,), merge: str = "mean", temperature: float | None = None):
        super().__init__(members)
        self.weights, self.merge, self.temperature = list(weights), merge, temperature


def load_run_model(run: str | Path, checkpoint: str = "best.pt") -> RunModel:
    """One run folder's model (for a cross-validated run use `load_members`)."""
    run = check_run_folder(run)
    ckpt = load_checkpoint(run / checkpoint)
    model, task, cfg = model_from_checkpoint(ckpt, run / checkpoint)  # the network as the weights were trained
    if (run / "config.json").is_file():  # the run's settings: its config.json, the one source (a resume with
        cfg = TrainConfig.load(run / "config.json")  # --data or more epochs rewrites it), not patched field by field
    return RunModel(model.eval(), task, cfg, ckpt, ckpt.get("temperature"), run)


def load_members(run: str | Path) -> Members:
    """The models that make a run's predictions: the run itself, each fold with the CV temperature, or every
    fold of an ensemble's runs with its weights."""
    from signvision.training.finished import ensemble_runs, is_ensemble

    run = check_run_folder(run)
    if is_ensemble(run):
        fitted = read_json(run / "summary.json")["ensemble"]
        members, weights = [], []
        for part, (folder, weight) in enumerate(ensemble_runs(run)):
            for m in load_members(folder):
                m.part = part
                members.append(m)
            weights.append(weight)
        return Members(members, weights=weights, merge=fitted["merge"], temperature=fitted.get("temperature"))
    if not is_cv_run(run):
        return Members([load_run_model(run)])
    temperature = read_json(run / "summary.json").get("temperature") if (run / "summary.json").is_file() else None
    members = [load_run_model(f) for f in fold_folders(run)]
    for m in members:
        m.temperature = temperature
    return Members(members)


def validation_set(member: RunModel, data: str | None, skip_bad_images: bool = False) -> ImageDataset:
    """The member's own validation images, rebuilt from its split.csv (and `data` if they moved): only they are
    decoded."""
    from dataclasses import replace

    from signvision.training.rundata import prepare_run_data

    cfg = replace(  # a copy: the loaded member's config stays as it was read
        member.cfg,
        target=member.ckpt["target"],
        skip_bad_images=member.cfg.skip_bad_images or skip_bad_images,
        **({"data": data, "csv": None} if data is not None else {}),
    )
    run_data = prepare_run_data(cfg, member.folder / "split.csv", classes=member.task.classes, pseudo=False, side="val")
    return run_data.subset("val")


def input_size(members: list[RunModel]) -> int:
    """The image size to decode for a set of members: the largest any of them takes (the others get the image
    shrunk from it, `fit_size`)."""
    return max(m.cfg.image_size for m in members)


def area_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of area interpolation (shrinking): output pixel j averages the input span
    [j * n_in / n_out, (j + 1) * n_in / n_out), each input pixel weighted by how much of it lies inside, as
    OpenCV's INTER_AREA does. A matrix, so that it also runs inside an exported ONNX graph."""
    scale = n_in / n_out
    edges = torch.arange(n_out + 1, dtype=torch.float64) * scale
    starts, ends = edges[:-1, None], edges[1:, None]
    pixel = torch.arange(n_in, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(ends, pixel + 1) - torch.maximum(starts, pixel)).clamp_min(0)
    return (overlap / scale).float()


def fit_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images (B, 3, S, S) at another member's size: area interpolation when shrinking (as the decoder
    does), bilinear when enlarging, rounded back to uint8."""
    if images.shape[-1] == size:
        return images
    x = images.float()
    if images.shape[-1] > size:
        rows, cols = area_matrix(images.shape[-2], size), area_matrix(images.shape[-1], size)
        resized = rows @ x @ cols.T  # (size, H) @ (B, 3, H, W) @ (W, size) -> (B, 3, size, size)
    else:
        resized = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def runtime_for(member: RunModel, device) -> Runtime:
    """The Runtime (device, normalisation) a member's checkpoint asks for."""
    norm = member.ckpt["norm"]
    return Runtime.create(device, norm["mean"], norm["std"])


@torch.no_grad()
def ensemble_probs(members: list[RunModel], runtimes: list[Runtime], images: torch.Tensor, tta: TTA | None = None):
    """uint8 images (B, 3, S, S) -> the members' merged calibrated probabilities, (B, K) or (B,) P(positive),
    as a numpy array: the mean over each run's folds, and for an ensemble its runs blended by their weights
    (`merge_probs`). What `predict`, `evaluate --data` and `serve` all use."""
    from signvision.models.probs import merge_probs

    parts: dict[int, list] = {}
    for m, runtime in zip(members, runtimes):
        m.model.eval()
        x = fit_size(images, m.cfg.image_size)
        parts.setdefault(m.part, []).append(
            view_probs(m.model, runtime, m.task, x, temperature=m.temperature, tta=tta).cpu().double()
        )
    means = [merge_probs(p) for _, p in sorted(parts.items())]  # each run's folds: their mean
    if len(means) == 1:
        return means[0].numpy()
    weights = getattr(members, "weights", [1.0] * len(means))
    merge, temperature = getattr(members, "merge", "mean"), getattr(members, "temperature", None)
    return merge_probs(means, weights, merge, temperature).numpy()
