"""Checkpoints: plain dicts of tensors, numbers and strings, written atomically and read safely.

    best.pt   {"format", "model", "epoch", "select", "best_value", "classes", "target", "config", "norm",
               "train_seconds", "temperature"}: the weights of the best epoch (by the validation figure
               `select` names: log loss by default)
    last.pt   the same + "optimizer", "scheduler", "ema", "scaler": everything needed to resume

They are read back with `torch.load(weights_only=True)`, so a checkpoint from somewhere else cannot run
code when it is loaded, and checked before use: a foreign, edited or truncated file gives one line
naming it, never a traceback.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.errors import DiskFullError, MissingError, RunError
from signvision.files import disk_full
from signvision.models.factory import build_model
from signvision.models.task import Task

FORMAT = "signvision-checkpoint-1"
REQUIRED = ("model", "epoch", "classes", "target", "config", "norm")


def save_checkpoint(state: dict, path: Path) -> None:
    """Write to a temporary file, then rename: an interruption or a full disk never leaves a half-written
    checkpoint (the earlier one is kept), nor the temporary file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as a RuntimeError
        if disk_full(e, path) or shutil.disk_usage(path.parent).free < 2**20:
            raise DiskFullError(f"{path}: the disk is full; the earlier {path.name}, if any, is kept") from None
        if isinstance(e, OSError):
            raise RunError(f"{path}: cannot write it ({e.strerror or e})") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict:
    """Read and check a signvision checkpoint (a RunError naming the file if it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RunError(f"{path}: not a signvision checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise RunError(f"{path}: not a signvision checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise RunError(f"{path}: damaged signvision checkpoint (no {', '.join(missing)})")
    if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["model"], dict):
        raise RunError(f"{path}: damaged signvision checkpoint (config or model is not a dict)")
    return ckpt


def task_of(ckpt: dict, cfg: TrainConfig) -> Task:
    """The Task a checkpoint was trained for (its classes, target and loss)."""
    return Task(list(ckpt["classes"]), ckpt["target"], loss=cfg.loss, label_smoothing=cfg.label_smoothing)


def model_from_checkpoint(ckpt: dict, path: str | Path = "checkpoint") -> tuple[nn.Module, Task, TrainConfig]:
    """Rebuild the model a checkpoint describes and load its weights (a RunError if they do not fit)."""
    cfg = TrainConfig.from_dict(ckpt["config"], f"{path} (its config)")
    task = task_of(ckpt, cfg)
    with torch.random.fork_rng(devices=[]):  # its weights come from the file: the caller's random numbers stay
        model = build_model(cfg.model, task.num_outputs, image_size=cfg.image_size, lenet_width=cfg.lenet_width)
    load_state(model, ckpt["model"], path, f"{cfg.model} with {task.num_outputs} output(s)")
    return model, task, cfg


def load_state(model: nn.Module, state: dict, path: str | Path, what: str) -> None:
    """`model.load_state_dict(state)`, strictly, with a one-line error for a checkpoint that does not fit."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        detail = next((line.strip() for line in first[1:] if line.strip()), first[0] if first else "")
        raise RunError(f"{path}: its weights do not fit {what} ({detail[:160]})") from None
