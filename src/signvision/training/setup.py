"""Everything one run trains with, built from its config; and what a run says about itself.

    prepare_training   the data (rundata.py: table, audit, cache, split, leak check; every check that can
                       fail runs here, before a model is built), the model (LeNet or timm, local weights),
                       the loaders, the training state and the runtime, for one process
    describe_run       the lines that open a run's log: data, model, weights
    summarise          the figures summary.json holds: the best epoch's, calibrated, with intervals and the
                       split's leak figures; memory_warning when the validation figure measures memory

`runs/run.py` wires these, the trainer and the run folder into a run. Several processes: launch with
`torchrun`; each process trains on its share of the batches (DistributedDataParallel), evaluation gathers
every image exactly once, and only rank 0 writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from signvision.config import TrainConfig, packaged_weights
from signvision.data.dataset import ShardSampler, auto_workers, make_loader
from signvision.models.augment import build_augment
from signvision.models.factory import build_model, freeze_first_blocks, load_weights, model_norm
from signvision.training.rundata import PSEUDO, RunData, prepare_run_data
from signvision.training.runtime import Runtime, pick_device, precision_name
from signvision.training.trainer import (
    TrainingState,
)


@dataclass
class Prepared:
    """What the engine trains: the data, model, state, runtime and loaders of one run on one process."""

    cfg: TrainConfig
    data: RunData
    model: nn.Module
    weights_report: dict | None
    state: TrainingState
    runtime: Runtime
    train_loader: object
    sampler: object
    val_loader: object
    transform: object
    world: int = 1


def build_run_model(cfg: TrainConfig, num_outputs: int) -> tuple[nn.Module, dict | None]:
    """The model of the config, with local weights loaded if asked; returns (model, what was loaded)."""
    model = build_model(
        cfg.model, num_outputs, image_size=cfg.image_size, pretrained=cfg.pretrained, lenet_width=cfg.lenet_width
    )
    weights = packaged_weights(cfg.model) if cfg.weights == "imagenet" else cfg.weights
    report = load_weights(model, weights) if weights else None
    freeze_first_blocks(model, cfg.freeze_blocks)
    return model, report


def make_loaders(data: RunData, cfg: TrainConfig, transform, device: torch.device, rank: int, world: int):
    """(training loader, its DistributedSampler or None, validation loader)."""
    train_set, val_set = data.subset("train", transform=transform), data.subset("val")
    cuda = device.type == "cuda"
    workers = auto_workers(cfg.workers, cached=data.images is not None, augmented=transform is not None, cuda=cuda)
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed) if world > 1 else None
    train_loader = make_loader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        workers=workers,
        pin_memory=cuda,
        sampler=sampler,
        drop_last=len(train_set) // world > cfg.batch_size,
    )
    val_loader = make_loader(
        val_set,
        batch_size=cfg.batch_size * 2,
        workers=min(workers, 2),
        pin_memory=cuda,
        sampler=ShardSampler(len(val_set), rank, world) if world > 1 else None,
    )
    return train_loader, sampler, val_loader


def prepare_training(
    cfg: TrainConfig,
    *,
    split_file=None,
    classes: list[str] | None = None,
    leak_check: bool = True,
    device: torch.device | None = None,
    rank: int = 0,
    world: int = 1,
    table=None,
) -> Prepared:
    """Everything a run trains with, made from its config (data checked before any model is built); `table`:
    the data already read (instead of the config's data options)."""
    device = device or pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = prepare_run_data(
        cfg, split_file, rank=rank, classes=classes, leak_check=leak_check and rank == 0, table=table
    )
    model, weights_report = build_run_model(cfg, data.task.num_outputs)
    norm = model_norm(model)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    transform = build_augment(cfg.augment, image_size=cfg.image_size, seed=cfg.seed + rank)
    train_loader, sampler, val_loader = make_loaders(data, cfg, transform, device, rank, world)
    state = TrainingState.create(model, cfg, data.task.classes, norm, len(train_loader), device)
    runtime = Runtime.create(device, *norm, amp=cfg.amp, channels_last=cfg.channels_last, rank=rank)
    return Prepared(
        cfg, data, model, weights_report, state, runtime, train_loader, sampler, val_loader, transform, world
    )


def describe_run(cfg: TrainConfig, data: RunData, model: nn.Module, device, world: int, weights: dict | None) -> str:
    """The lines that open a run's log: data, model, and what was loaded from `weights`."""
    task = data.task
    n_pseudo = int(data.table.train["img_IDS"].str.startswith(PSEUDO).sum())
    where = f" at {data.table.root}" if data.table.root is not None else ""
    lines = [
        f"data: {data.table.layout} layout{where}, {len(task.classes)} classes, "
        f"{len(data.rows('train'))} train / {len(data.rows('val'))} val images"
        + (f" ({n_pseudo} of them pseudo-labelled, from {cfg.pseudo_labels})" if n_pseudo else "")
        + (f", {len(data.dropped)} dropped (see dropped.txt)" if data.dropped else ""),
        f"model: {cfg.model}, {task.num_outputs} output(s)"
        f"{' (' + task.positive + ' vs rest)' if task.binary else ''}, loss {cfg.loss}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}"
        + (f", {world} processes" if world > 1 else "")
        + f", {precision_name(device, cfg.amp)}",
    ]
    if weights:
        lines.append(
            f"weights from {cfg.weights}: {len(weights['loaded'])} tensors loaded"
            + (" (matched by order and shape: its key names differ)" if weights.get("remapped") else "")
            + (
                f", {len(weights['dropped'])} left out (shapes differ: {weights['dropped_what']})"
                if weights["dropped"]
                else ""
            )
            + f", {len(weights['new'])} new"
        )
    return "\n".join(lines)


FEW_STEPS = 120  # a network from scratch given fewer optimiser steps than this learns little (README: measured)


def few_steps_note(cfg: TrainConfig, steps_per_epoch: int) -> str | None:
    """A hint when a timm network trained from random weights gets few optimiser steps (the course's resnet18,
    4 epochs at batch 64 on 1,100 images: 68 steps, 0.77 validation accuracy), or None."""
    steps = cfg.epochs * steps_per_epoch
    if cfg.model == "lenet" or cfg.pretrained or cfg.weights or steps >= FEW_STEPS:
        return None
    return (
        f"note: {cfg.model} from random weights gets {steps} optimiser steps ({cfg.epochs} epochs x "
        f"{steps_per_epoch} batches), few for a network that starts from nothing: a smaller --batch-size (more "
        f"steps per epoch) or more --epochs learns more (README: 'A timm model from scratch in a few epochs')"
    )
