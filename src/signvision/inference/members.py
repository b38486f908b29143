"""A trained run's models, ready for inference.

A run is a single run folder (best.pt holds the weights and the fitted temperature) or a cross-validated run
(OUT/cv.json, one run per fold in OUT/fold<k>/, the temperature fitted on the out-of-fold logits in
OUT/summary.json). Its *members* are the models that make its predictions: the run's one model, or each
fold's model, whose probabilities are averaged (a fold ensemble).

    RunModel         a model with its task, config, checkpoint, temperature and folder (None: in memory)
    load_run_model   one run folder's model (`sv.load_run` is the `Run` of a folder; this is its model)
    load_members     a run folder's members: its model, or each fold's with the out-of-fold temperature
    ensemble_probs   one batch -> the members' mean calibrated probabilities: what predict, evaluate --data and
                     serve all use
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.files import read_json
from signvision.models.augment import TTA
from signvision.models.task import Task
from signvision.training.checkpoint import load_checkpoint, model_from_checkpoint
from signvision.training.folder import check_run_folder, fold_folders, is_cv_run
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


def load_run_model(run: str | Path, checkpoint: str = "best.pt") -> RunModel:
    """One run folder's model (for a cross-validated run use `load_members`)."""
    run = check_run_folder(run)
    ckpt = load_checkpoint(run / checkpoint)
    model, task, cfg = model_from_checkpoint(ckpt, run / checkpoint)
    if (run / "config.json").is_file():  # where the images are now (a resume with --data may have moved them)
        saved = TrainConfig.load(run / "config.json")
        cfg.data, cfg.csv, cfg.image_dir = saved.data, saved.csv, saved.image_dir
    return RunModel(model.eval(), task, cfg, ckpt, ckpt.get("temperature"), run)


def load_members(run: str | Path) -> list[RunModel]:
    """The models that make a run's predictions: the run itself, or each fold with the CV temperature."""
    run = check_run_folder(run)
    if not is_cv_run(run):
        return [load_run_model(run)]
    temperature = read_json(run / "summary.json").get("temperature") if (run / "summary.json").is_file() else None
    members = [load_run_model(f) for f in fold_folders(run)]
    for m in members:
        m.temperature = temperature
    return members


def runtime_for(member: RunModel, device) -> Runtime:
    """The Runtime (device, normalisation) a member's checkpoint asks for."""
    norm = member.ckpt["norm"]
    return Runtime.create(device, norm["mean"], norm["std"])


@torch.no_grad()
def ensemble_probs(members: list[RunModel], runtimes: list[Runtime], images: torch.Tensor, tta: TTA | None = None):
    """uint8 images (B, 3, S, S) -> the mean over a run's members (its folds) of calibrated probabilities,
    (B, K) or (B,) P(positive), as a numpy array: what `predict`, `evaluate --data` and `serve` all use."""
    total = None
    for m, runtime in zip(members, runtimes):
        m.model.eval()
        p = view_probs(m.model, runtime, m.task, images, temperature=m.temperature, tta=tta).cpu().numpy()
        total = p if total is None else total + p
    return total / len(members)
