"""Training and inference: `train_one_epoch`, `evaluate`, `fit` (which wires them), `predict`.

A run folder holds everything about one training run:

    config.json   the TrainConfig            split.csv     img_IDS,fold (train/val)
    metrics.csv   one row per epoch          summary.json  final figures (val_roc_auc, ...)
    best.pt       weights of the best epoch by validation ROC AUC
    last.pt       everything needed to resume (model, optimizer, scheduler, EMA, epoch)

Checkpoints are plain dicts of tensors and numbers, read back with `torch.load(weights_only=True)`,
so a checkpoint from somewhere else cannot run code when it is loaded.

The loss is `BCEWithLogitsLoss` on one-hot targets (soft after MixUp/CutMix), one output per class,
or a single output for a binary task. Several processes: launch with `torchrun`; each process trains
on its share of the batches (DistributedDataParallel), evaluation gathers every image exactly once,
and only rank 0 writes files or draws progress bars.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from signvision.augment import TTA, build_augment
from signvision.config import TrainConfig
from signvision.data import (
    BadImage,
    DataTable,
    ImageDataset,
    ShardSampler,
    auto_workers,
    decode_all,
    make_loader,
    read_csv,
    read_data_of,
    read_unlabelled,
    to_model_input,
)
from signvision.errors import UserError, refuse_overwrite
from signvision.metrics import compute_metrics, logits_to_probs
from signvision.mix import Mixer
from signvision.models import build_model, load_weights, model_norm, set_backbone_trainable
from signvision.split import make_split, read_split

CHECKPOINT_FORMAT = "signvision-checkpoint-1"


# ----------------------------------------------------------------------------------------------------
# The task: which outputs the model has and what its targets are
# ----------------------------------------------------------------------------------------------------
@dataclass
class Task:
    """K classes -> K outputs. Binary (`target` given, or exactly two classes) -> one output,
    P(positive), the positive class being `target` or the second class in sorted order."""

    classes: list[str]
    target: str | None = None

    def __post_init__(self):
        if self.target is not None and self.target not in self.classes:
            raise UserError(f"--target {self.target}: not a class of this data (classes: {', '.join(self.classes)})")
        if len(self.classes) < 2:
            raise UserError(f"the data has only one class ({', '.join(self.classes)}); need at least two")

    @property
    def binary(self) -> bool:
        return self.target is not None or len(self.classes) == 2

    @property
    def positive(self) -> str:
        return self.target if self.target is not None else self.classes[-1]

    @property
    def num_outputs(self) -> int:
        return 1 if self.binary else len(self.classes)

    @property
    def names(self) -> list[str]:
        """Names of the probability columns metrics see: [negative, positive] or the classes."""
        if not self.binary:
            return list(self.classes)
        negative = f"not {self.target}" if self.target is not None else self.classes[0]
        return [negative, self.positive]

    def encode(self, labels) -> np.ndarray:
        labels = pd.Series(labels)
        if self.binary:
            return (labels == self.positive).to_numpy().astype(np.int64)
        index = {c: i for i, c in enumerate(self.classes)}
        return labels.map(index).to_numpy().astype(np.int64)

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) integer labels -> (B, num_outputs) float targets for BCE."""
        if self.binary:
            return y.float().unsqueeze(1)
        return torch.nn.functional.one_hot(y, len(self.classes)).float()


# ----------------------------------------------------------------------------------------------------
# Devices, precision, processes
# ----------------------------------------------------------------------------------------------------
def pick_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
    if spec != "cpu" and not spec.startswith("cuda"):
        raise UserError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")
    return torch.device(spec)


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the hardware has it (CPUs, Ampere+ GPUs), fp16 on older GPUs; None when off."""
    if not enabled:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def dist_setup(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group that torchrun describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)  # DDP / AveragedModel
    return getattr(model, "_orig_mod", model)  # torch.compile


def show_progress(rank: int = 0) -> bool:
    return rank == 0 and os.environ.get("SIGNVISION_PROGRESS", "1") != "0"


# ----------------------------------------------------------------------------------------------------
# One epoch of training, one pass of evaluation
# ----------------------------------------------------------------------------------------------------
@dataclass
class Step:
    """What a training or evaluation pass needs besides the model and the data."""

    device: torch.device
    task: Task
    mean: torch.Tensor  # (1, 3, 1, 1) on device
    std: torch.Tensor
    amp: torch.dtype | None = None
    channels_last: bool = False
    rank: int = 0

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return to_model_input(images, self.device, self.mean, self.std, self.channels_last)


def train_one_epoch(
    model,
    loader,
    optimizer,
    scheduler,
    step: Step,
    *,
    epoch: int,
    mixer: Mixer | None = None,
    scaler=None,
    grad_clip: float = 0.0,
    ema=None,
) -> dict:
    """One pass over the training loader; returns mean loss, ROC AUC of the batches seen, images/s."""
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total_loss, seen, probs, labels = 0.0, 0, [], []
    bar = tqdm(
        total=len(loader.dataset),
        desc=f"epoch {epoch + 1} train",
        unit="img",
        leave=False,
        disable=not show_progress(step.rank),
        dynamic_ncols=True,
    )
    start = time.perf_counter()
    for images, y in loader:
        x = step.prepare(images)  # (B, 3, H, W) float, normalised
        y = y.to(step.device, non_blocking=True)
        target = step.task.one_hot(y)  # (B, K) or (B, 1)
        if mixer is not None:
            x, target = mixer(x, target)
        with autocast(step.device, step.amp):
            logits = model(x)  # (B, K) or (B, 1)
            loss = loss_fn(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer) if scaler is not None else optimizer.step()
        if scaler is not None:
            scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(unwrap(model))
        n = images.shape[0]
        total_loss += loss.item() * n
        seen += n
        probs.append(logits_to_probs(logits.detach()).cpu())
        labels.append(y.cpu())
        bar.update(n)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    bar.close()
    seconds = time.perf_counter() - start
    metrics = compute_metrics(torch.cat(labels).numpy(), torch.cat(probs).numpy(), step.task.names)
    return {
        "loss": total_loss / max(seen, 1),
        "roc_auc": metrics["roc_auc"],
        "images_per_s": seen / seconds,
        "seconds": seconds,
    }


@torch.no_grad()
def predict_probs(model, loader, step: Step, *, tta: TTA | None = None, desc: str = "predict"):
    """Probabilities, second items of the batches (labels or ids) and the BCE loss (None with TTA)."""
    model.eval()
    if tta is not None and tta.spec == "none":
        tta = None
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    probs, keys, loss_sum = [], [], 0.0

    def forward(x: torch.Tensor) -> torch.Tensor:
        with autocast(step.device, step.amp):
            return model(x).float()

    bar = tqdm(
        total=len(loader.sampler) if loader.sampler is not None else None,
        desc=desc,
        unit="img",
        leave=False,
        disable=not show_progress(step.rank),
        dynamic_ncols=True,
    )
    for images, second in loader:
        if tta is not None:
            p = tta(lambda x: logits_to_probs(forward(x)), images, step.prepare)
        else:
            logits = forward(step.prepare(images))
            p = logits_to_probs(logits)
            if isinstance(second, torch.Tensor):
                loss_sum += loss_fn(logits, step.task.one_hot(second.to(step.device))).item() / logits.shape[1]
        probs.append(p.cpu())
        keys += second.tolist() if isinstance(second, torch.Tensor) else list(second)
        bar.update(images.shape[0])
    bar.close()
    probs_np = torch.cat(probs).numpy() if probs else np.zeros((0,))
    return probs_np, keys, (None if tta is not None else loss_sum)


def evaluate(
    model, loader, step: Step, *, tta: TTA | None = None, world: int = 1
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Metrics over the loader's images, gathered from every process; also returns (probs, labels)."""
    probs, labels, loss_sum = predict_probs(model, loader, step, tta=tta, desc="validate")
    if world > 1:  # each rank holds a disjoint shard (ShardSampler): gather them all, exactly once
        gathered: list = [None] * world
        dist.all_gather_object(gathered, (probs, labels, loss_sum))
        probs = np.concatenate([g[0] for g in gathered])
        labels = sum((g[1] for g in gathered), [])
        loss_sum = None if loss_sum is None else sum(g[2] for g in gathered)
    y = np.asarray(labels, dtype=np.int64)
    metrics = compute_metrics(y, probs, step.task.names)
    metrics["loss"] = loss_sum / len(y) if loss_sum is not None else None
    return metrics, probs, y


# ----------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------
def save_checkpoint(state: dict, path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a signvision checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a signvision checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> tuple[nn.Module, Task, TrainConfig]:
    cfg = TrainConfig(**ckpt["config"])
    task = Task(list(ckpt["classes"]), ckpt["target"])
    model = build_model(cfg.model, task.num_outputs, image_size=cfg.image_size, lenet_width=cfg.lenet_width)
    model.load_state_dict(ckpt["model"])
    return model, task, cfg


# ----------------------------------------------------------------------------------------------------
# Data for a run
# ----------------------------------------------------------------------------------------------------
@dataclass
class RunData:
    """A run's images: the table, the task, the split and the decoded-image cache (rows aligned)."""

    table: DataTable
    task: Task
    split: pd.DataFrame  # img_IDS, fold
    images: np.ndarray | None  # (N, S, S, 3) uint8 in RAM, a disk memmap, or None (decode on the fly)
    dropped: list[str]
    image_size: int

    def subset(self, fold: str, *, transform=None) -> ImageDataset:
        folds = self.split.set_index("img_IDS")["fold"]
        rows = np.flatnonzero((folds.loc[self.table.train["img_IDS"]] == fold).to_numpy())
        part = self.table.train.iloc[rows]
        images = None
        if isinstance(self.images, np.memmap):
            images = RowView(self.images, rows)  # stays on disk
        elif self.images is not None:
            images = self.images[rows]
        return ImageDataset(
            part["path"].tolist(),
            self.image_size,
            targets=self.task.encode(part["Label"]),
            ids=part["img_IDS"].tolist(),
            images=images,
            transform=transform,
        )


class RowView:
    """Rows `rows` of a disk memmap, read lazily (copying them would defeat a cache larger than RAM)."""

    def __init__(self, array: np.ndarray, rows: np.ndarray):
        self.array, self.rows = array, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.array[self.rows[i]]


def load_audit(audit_dir: str | Path) -> tuple[set[str], pd.DataFrame]:
    """(ids kept by the audit's clean.csv, duplicates.csv) for `train --audit`."""
    audit_dir = Path(audit_dir)
    clean = read_csv(audit_dir / "clean.csv", ["img_IDS"], " (is --audit an audit folder?)")
    dups_path = audit_dir / "duplicates.csv"
    dups = (
        pd.read_csv(dups_path, dtype=str, keep_default_na=False)
        if dups_path.is_file()
        else pd.DataFrame(columns=["group", "img_IDS"])
    )
    if len(dups) == 0:
        dups = pd.DataFrame(columns=["group", "img_IDS"])
    return set(clean["img_IDS"]), dups


def prepare_run_data(cfg: TrainConfig, split_file: str | Path | None = None, *, rank: int = 0) -> RunData:
    """Read the table, drop what the audit or bad files say, decode (cache) every image, split."""
    dropped: list[str] = []
    table = read_data_of(cfg, skip_missing=cfg.skip_bad_images, dropped=dropped)
    groups = None
    if cfg.audit:
        keep, dups = load_audit(cfg.audit)
        table.train = table.train[table.train["img_IDS"].isin(keep)].reset_index(drop=True)
        groups = table.train["img_IDS"].map(dict(zip(dups["img_IDS"], dups["group"], strict=False)))
    task = Task(table.classes, cfg.target)
    paths = table.train["path"].tolist()
    images, bad, messages = decode_all(
        paths, cfg.image_size, cache=cfg.cache, cache_dir=cfg.cache_dir, desc="decoding images" if rank == 0 else ""
    )
    if bad:
        if not cfg.skip_bad_images:
            raise UserError(f"{messages[0]} ({len(bad)} bad image(s) in all; --skip-bad-images drops them)")
        dropped += messages
        keep_rows = np.setdiff1d(np.arange(len(paths)), bad)
        table.train = table.train.iloc[keep_rows].reset_index(drop=True)
        if images is not None:
            images = images[keep_rows]
        if groups is not None:
            groups = groups.iloc[keep_rows].reset_index(drop=True)
        task = Task(table.classes, cfg.target)
    if split_file is not None:
        split = read_split(split_file, table.train["img_IDS"])
    else:
        split = make_split(
            table.train["img_IDS"], table.train["Label"], val_fraction=cfg.val_fraction, seed=cfg.seed, groups=groups
        )
    if (split["fold"] == "val").sum() == 0 or (split["fold"] == "train").sum() == 0:
        raise UserError("the split leaves no training or no validation images; check --split/--val-fraction")
    return RunData(table, task, split, images, dropped, cfg.image_size)


# ----------------------------------------------------------------------------------------------------
# fit: everything wired together
# ----------------------------------------------------------------------------------------------------
def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=0.25)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:  # linear warm-up, then cosine decay to 1% of the peak
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_holds_run(out: Path) -> bool:
    return out.exists() and any((out / f).exists() for f in ("config.json", "last.pt", "best.pt", "metrics.csv"))


METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "train_roc_auc",
    "val_loss",
    "val_roc_auc",
    "val_log_loss",
    "val_accuracy",
    "lr",
    "seconds",
    "train_images_per_s",
]


def fit(cfg: TrainConfig, *, resume: bool = False, log=print) -> dict:
    """Train `cfg` into the run folder `cfg.out`; with `resume`, carry on from its last.pt."""
    cfg.check()
    if not resume:
        cfg.absolute_paths()
    device = pick_device(cfg.device)
    rank, world = dist_setup(device)
    is_main = rank == 0
    out = Path(cfg.out) if cfg.out else None
    if out is None:
        raise UserError("--out: give a folder for the run")
    if not resume and run_holds_run(out):
        raise UserError(f"--out {out}: already holds a run; choose a new folder or continue it with --resume {out}")
    if not resume and out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if world > 1:
        dist.barrier()  # every rank has checked --out before rank 0 writes into it
    torch.manual_seed(cfg.seed)

    data = prepare_run_data(cfg, out / "split.csv" if resume else cfg.split, rank=rank)
    task = data.task
    model = build_model(
        cfg.model, task.num_outputs, image_size=cfg.image_size, pretrained=cfg.pretrained, lenet_width=cfg.lenet_width
    )
    weights_report = load_weights(model, cfg.weights) if cfg.weights else None
    mean, std = model_norm(model)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)

    transform = build_augment(cfg.augment, image_size=cfg.image_size, seed=cfg.seed + rank)
    train_set = data.subset("train", transform=transform)
    val_set = data.subset("val")
    workers = auto_workers(
        cfg.workers, cached=data.images is not None, augmented=transform is not None, cuda=device.type == "cuda"
    )
    pin = device.type == "cuda"
    train_sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed) if world > 1 else None
    train_loader = make_loader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        workers=workers,
        pin_memory=pin,
        sampler=train_sampler,
        drop_last=len(train_set) // world > cfg.batch_size,
    )
    val_loader = make_loader(
        val_set,
        batch_size=cfg.batch_size * 2,
        workers=min(workers, 2),
        pin_memory=pin,
        sampler=ShardSampler(len(val_set), rank, world) if world > 1 else None,
    )

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg, len(train_loader))
    dtype = amp_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    ema = None
    if cfg.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    mixer = (
        Mixer(mode=cfg.mix, alpha=cfg.mix_alpha, prob=cfg.mix_prob, seed=cfg.seed + rank) if cfg.mix != "none" else None
    )

    start_epoch, best_auc, train_seconds = 0, -1.0, 0.0
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best_auc, train_seconds = ckpt["epoch"], ckpt["best_roc_auc"], ckpt.get("train_seconds", 0.0)
    train_model = torch.compile(model) if cfg.compile else model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None
        )
    eval_model = ema if ema is not None else model
    step = Step(
        device,
        task,
        torch.tensor(mean, device=device).view(1, 3, 1, 1),
        torch.tensor(std, device=device).view(1, 3, 1, 1),
        dtype,
        cfg.channels_last,
        rank,
    )

    def checkpoint(epoch: int, weights: nn.Module) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": unwrap(weights).state_dict(),
            "epoch": epoch,
            "best_roc_auc": best_auc,
            "classes": task.classes,
            "target": cfg.target,
            "config": asdict(cfg),
            "norm": {"mean": list(mean), "std": list(std)},
            "train_seconds": train_seconds,
        }

    def resume_state(epoch: int) -> dict:
        return {
            **checkpoint(epoch, model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
        }

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            cfg.save(out / "config.json")
            data.split.to_csv(out / "split.csv", index=False)
            if data.dropped:
                (out / "dropped.txt").write_text("\n".join(data.dropped) + "\n")
            save_checkpoint(resume_state(0), out / "last.pt")  # resumable from the very start
        n_train, n_val = len(train_set), len(val_set)
        log(
            f"data: {data.table.layout} layout at {data.table.root}, {len(task.classes)} classes, "
            f"{n_train} train / {n_val} val images"
            + (f", {len(data.dropped)} dropped (see dropped.txt)" if data.dropped else "")
        )
        log(
            f"model: {cfg.model}, {task.num_outputs} output(s)"
            f"{' (' + task.positive + ' vs rest)' if task.binary else ''}, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}"
            + (f", {world} processes" if world > 1 else "")
            + (
                f"; weights from {cfg.weights}: {len(weights_report['loaded'])} tensors loaded, "
                f"{len(weights_report['dropped'])} dropped (shape differs)"
                if weights_report
                else ""
            )
        )
        metrics_path = out / "metrics.csv"
        if resume and metrics_path.is_file():  # drop rows of epochs the checkpoint does not have
            kept = pd.read_csv(metrics_path)
            kept[kept["epoch"] <= start_epoch].to_csv(metrics_path, index=False)

    status = "finished"
    epoch, session_start = start_epoch, time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if train_sampler is not None:
                train_sampler.set_epoch(epoch)
            torch.manual_seed(cfg.seed * 1000 + epoch)  # same shuffle, dropout and mixing after a resume
            if transform is not None:
                transform.set_random_seed(cfg.seed * 1000 + epoch + rank)
            if cfg.freeze_backbone_epochs:
                set_backbone_trainable(model, epoch >= cfg.freeze_backbone_epochs)
            if mixer is not None:
                mixer.rng = np.random.default_rng([cfg.seed, rank, epoch])
                mixer.enabled = epoch < cfg.epochs - cfg.mix_off_epochs
            train_stats = train_one_epoch(
                train_model,
                train_loader,
                optimizer,
                scheduler,
                step,
                epoch=epoch,
                mixer=mixer,
                scaler=scaler,
                grad_clip=cfg.grad_clip,
                ema=ema,
            )
            val_metrics, _, _ = evaluate(eval_model, val_loader, step, world=world)
            train_seconds += train_stats["seconds"]
            row = {
                "epoch": epoch + 1,
                "train_loss": train_stats["loss"],
                "train_roc_auc": train_stats["roc_auc"],
                "val_loss": val_metrics["loss"],
                "val_roc_auc": val_metrics["roc_auc"],
                "val_log_loss": val_metrics["log_loss"],
                "val_accuracy": val_metrics["accuracy"],
                "lr": scheduler.get_last_lr()[0],
                "seconds": train_stats["seconds"],
                "train_images_per_s": train_stats["images_per_s"],
            }
            improved = val_metrics["roc_auc"] > best_auc
            if improved:
                best_auc = val_metrics["roc_auc"]
            eta = (time.perf_counter() - session_start) / (epoch + 1 - start_epoch) * (cfg.epochs - epoch - 1)
            if is_main:
                append_row(out / "metrics.csv", row)
                if improved:
                    save_checkpoint(checkpoint(epoch + 1, eval_model), out / "best.pt")
                save_checkpoint(resume_state(epoch + 1), out / "last.pt")
                log(
                    f"epoch {epoch + 1}/{cfg.epochs}  train loss {row['train_loss']:.4f}  "
                    f"val loss {row['val_loss']:.4f}  "
                    f"val ROC AUC {row['val_roc_auc']:.4f}  log loss {row['val_log_loss']:.4f}  "
                    f"acc {row['val_accuracy']:.4f}  {row['train_images_per_s']:.0f} img/s  "
                    f"eta {eta:.0f} s" + ("  *" if improved else "")
                )
    except KeyboardInterrupt:
        status = "interrupted"
        if is_main:
            log(
                f"interrupted in epoch {epoch + 1}: {out / 'last.pt'} holds the last finished epoch; "
                f"continue with: signvision train --resume {out}"
            )
    summary = {}
    if is_main:
        summary = write_summary(out, cfg, task, status=status, train_seconds=train_seconds, dropped=len(data.dropped))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if status == "interrupted":
        raise KeyboardInterrupt
    return summary


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def write_summary(out: Path, cfg: TrainConfig, task: Task, *, status: str, train_seconds: float, dropped: int) -> dict:
    """summary.json: the best epoch's validation figures (the epoch best.pt holds)."""
    metrics = pd.read_csv(out / "metrics.csv") if (out / "metrics.csv").is_file() else pd.DataFrame()
    summary: dict = {
        "status": status,
        "classes": task.classes,
        "target": cfg.target,
        "model": cfg.model,
        "epochs": int(len(metrics)),
        "train_seconds": round(train_seconds, 2),
        "dropped_images": dropped,
    }
    if len(metrics):
        best = metrics.loc[metrics["val_roc_auc"].idxmax()]
        summary.update(
            {
                "best_epoch": int(best["epoch"]),
                "val_roc_auc": float(best["val_roc_auc"]),
                "val_log_loss": float(best["val_log_loss"]),
                "val_accuracy": float(best["val_accuracy"]),
            }
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ----------------------------------------------------------------------------------------------------
# Inference on a finished run
# ----------------------------------------------------------------------------------------------------
def load_run(run: str | Path, checkpoint: str = "best.pt") -> tuple[nn.Module, Task, TrainConfig, dict]:
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"--run {run}: folder not found")
    ckpt = load_checkpoint(run / checkpoint)
    model, task, cfg = model_from_checkpoint(ckpt)
    return model, task, cfg, ckpt


@dataclass
class RunValidation:
    """A finished run's best model on `device`, ready to score the run's own validation images."""

    model: nn.Module
    task: Task
    cfg: TrainConfig
    ckpt: dict
    val: ImageDataset
    step: Step


def load_run_validation(run: Path, data: str | None = None, device: str = "auto") -> RunValidation:
    """Load RUN's best.pt and rebuild its validation images from its split.csv (and `data`, if the
    images have moved)."""
    model, task, cfg, ckpt = load_run(run)
    if data is not None:
        cfg.data, cfg.csv = data, None
    cfg.target = ckpt["target"]
    rd = prepare_run_data(cfg, run / "split.csv")
    if rd.task.classes != task.classes:
        raise UserError(f"--data {cfg.data}: its classes differ from the run's ({', '.join(task.classes)})")
    dev = pick_device(device)
    return RunValidation(model.to(dev), task, cfg, ckpt, rd.subset("val"), inference_step(ckpt, task, dev))


def inference_step(ckpt: dict, task: Task, device: torch.device, amp: bool = False) -> Step:
    mean = torch.tensor(ckpt["norm"]["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(ckpt["norm"]["std"], device=device).view(1, 3, 1, 1)
    return Step(device, task, mean, std, amp_dtype(device, amp))


def evaluate_run(
    run: str | Path,
    data: str | None = None,
    *,
    tta: str = "none",
    tta_merge: str = "mean",
    device: str = "auto",
    batch_size: int = 128,
    log=print,
) -> dict:
    """Metrics on the run's validation images, without and with TTA; saved as evaluation.json."""
    run = Path(run)
    rv = load_run_validation(run, data, device)
    model, cfg, ckpt, step = rv.model, rv.cfg, rv.ckpt, rv.step
    loader = make_loader(rv.val, batch_size=batch_size)
    plain, _, y = evaluate(model, loader, step)
    result = {
        "checkpoint": str(run / "best.pt"),
        "epoch": ckpt["epoch"],
        "images": int(len(y)),
        "tta": tta,
        "without_tta": _scalar(plain),
    }
    if tta != "none":
        with_tta, _, _ = evaluate(
            model, loader, step, tta=TTA(tta, merge=tta_merge, image_size=cfg.image_size, seed=cfg.seed)
        )
        result["with_tta"] = _scalar(with_tta)
    log(f"validation images: {len(y)} (run {run}, best epoch {ckpt['epoch']})")
    log(f"{'metric':<10} {'no TTA':>10}" + (f" {'TTA ' + tta:>16} {'gain':>9}" if tta != "none" else ""))
    for key in ("roc_auc", "log_loss", "accuracy"):
        line = f"{key:<10} {plain[key]:>10.4f}"
        if tta != "none":
            line += f" {result['with_tta'][key]:>16.4f} {result['with_tta'][key] - plain[key]:>+9.4f}"
        log(line)
    name = "evaluation.json" if tta == "none" else f"evaluation-tta-{Path(tta).stem}.json"
    (run / name).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _scalar(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("roc_auc", "log_loss", "accuracy", "loss", "per_class_roc_auc") if k in metrics}


def predict(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    tta: str = "none",
    tta_merge: str = "mean",
    device: str = "auto",
    batch_size: int = 128,
    workers: int = -1,
    overwrite: bool = False,
    log=print,
) -> pd.DataFrame:
    """Write img_IDS + one probability column per class (rows sum to 1), or + one column named after
    the target for a binary run, for Test.csv's images or a folder of images. Streams: images are
    decoded batch by batch in loader processes, never all held at once."""
    out = Path(out)
    refuse_overwrite(out, overwrite)
    model, task, cfg, ckpt = load_run(run)
    table = read_unlabelled(data)
    dev = pick_device(device)
    model.to(dev)
    step = inference_step(ckpt, task, dev)
    dataset = ImageDataset(table["path"].tolist(), cfg.image_size, ids=table["img_IDS"].tolist())
    n_workers = auto_workers(workers, cached=False, augmented=True, cuda=dev.type == "cuda")
    loader = make_loader(dataset, batch_size=batch_size, workers=n_workers, pin_memory=dev.type == "cuda")
    try:
        probs, ids, _ = predict_probs(model, loader, step, tta=TTA(tta, merge=tta_merge, image_size=cfg.image_size))
    except BadImage as e:  # a corrupt image; from a loader process the message ends with the original
        raise UserError(str(e).strip().splitlines()[-1].removeprefix("signvision.data.BadImage: ")) from None
    if task.target is not None:
        frame = pd.DataFrame({"img_IDS": ids, task.target: probs})
    elif task.binary:
        frame = pd.DataFrame({"img_IDS": ids, task.classes[0]: 1 - probs, task.classes[1]: probs})
    else:
        frame = pd.DataFrame(probs, columns=task.classes)
        frame.insert(0, "img_IDS", ids)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, float_format="%.6f")
    log(f"wrote {out}: {len(frame)} images x {frame.shape[1] - 1} probability column(s)")
    return frame
