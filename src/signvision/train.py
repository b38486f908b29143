"""One training run, from a config to a finished run folder: `fit(cfg)`, written as named phases.

    check_out_folder    the run folder is new (or resumable) and writable, before any long work
    prepare_run_data    the table, the audit, the decoded-image cache, the split (rundata.py)
    build_run_model     LeNet or a timm backbone with a new head, local weights, normalisation
    make_loaders        shuffled training batches (one shard per process), validation batches
    TrainingState       model, optimizer, schedule, EMA, loss scaler, epoch counters; save / restore
    run_epochs          train_one_epoch + evaluate (loop.py) per epoch; metrics.csv, best.pt, last.pt
    calibrate_run       fit a temperature on the best model's validation logits (calibrate.py)
    write_summary       summary.json: the figures of the epoch that best.pt holds

A run folder holds:

    config.json   the TrainConfig            split.csv     img_IDS,fold (train/val)
    metrics.csv   one row per epoch          summary.json  final figures (val_roc_auc, ...)
    best.pt       weights of the best epoch by validation ROC AUC, and the fitted temperature
    last.pt       everything needed to resume (model, optimizer, scheduler, EMA, epoch)

Several processes: launch with `torchrun`; each process trains on its share of the batches
(DistributedDataParallel), evaluation gathers every image exactly once, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from signvision.augment import build_augment
from signvision.calibrate import fit_temperature, scaled_probs
from signvision.checkpoint import FORMAT, load_checkpoint, load_state, save_checkpoint
from signvision.config import TrainConfig, read_json
from signvision.dataset import ShardSampler, auto_workers, make_loader
from signvision.errors import UserError, check_writable_folder
from signvision.loop import evaluate, train_one_epoch
from signvision.metrics import compute_metrics, group_bootstrap
from signvision.mix import Mixer
from signvision.models import build_model, classifier_prefixes, load_weights, model_norm, set_backbone_trainable
from signvision.nearcopies import measures_memory
from signvision.rundata import RunData, prepare_run_data
from signvision.runtime import Runtime, amp_dtype, dist_setup, pick_device, unwrap
from signvision.split import SplitInfo

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
RUN_FILES = ("config.json", "last.pt", "best.pt", "metrics.csv", "cv.json")


# ----------------------------------------------------------------------------------------------------
# The run folder
# ----------------------------------------------------------------------------------------------------
def holds_run(folder: Path) -> bool:
    """Whether a folder already holds a run (or a cross-validation)."""
    return folder.is_dir() and any((folder / f).exists() for f in RUN_FILES)


def check_out_folder(out: Path, *, resume: bool) -> None:
    """A new run needs a new or empty folder (a user's files are never overwritten); a resumed run needs
    its last.pt. Either way the folder must be writable, which is tried now, not after training."""
    if resume:
        if not (out / "last.pt").is_file():
            raise UserError(f"--resume {out}: no last.pt there (not a signvision run, or not started)")
    elif holds_run(out):
        raise UserError(f"--out {out}: already holds a run; choose a new folder or continue it with --resume {out}")
    elif out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out}: the folder is not empty and holds no run; choose a new or empty folder")
    check_writable_folder(out, "resume" if resume else "out")


# ----------------------------------------------------------------------------------------------------
# Model, loaders, schedule
# ----------------------------------------------------------------------------------------------------
def build_run_model(cfg: TrainConfig, num_outputs: int) -> tuple[nn.Module, dict | None]:
    """The model of the config, with local weights loaded if asked; returns (model, what was loaded)."""
    model = build_model(
        cfg.model, num_outputs, image_size=cfg.image_size, pretrained=cfg.pretrained, lenet_width=cfg.lenet_width
    )
    report = load_weights(model, cfg.weights) if cfg.weights else None
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


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-step learning rates: linear warm-up then cosine decay to 1% of the peak, or one-cycle."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=0.25)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ----------------------------------------------------------------------------------------------------
# Training state: what a checkpoint holds
# ----------------------------------------------------------------------------------------------------
@dataclass
class TrainingState:
    """Everything that changes while training, and how it becomes (and comes back from) a checkpoint."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: torch.optim.swa_utils.AveragedModel | None
    scaler: torch.amp.GradScaler | None
    cfg: TrainConfig
    classes: list[str]
    norm: tuple
    epoch: int = 0  # epochs finished
    best: float | None = None  # the best epoch's value of cfg.select (lowest log loss, highest ROC AUC/accuracy)
    train_seconds: float = 0.0

    def improves(self, value: float) -> bool:
        """Whether an epoch's validation figure (of `cfg.select`) beats the best so far."""
        if self.best is None:
            return True
        return value < self.best if self.cfg.select == "log_loss" else value > self.best

    @property
    def eval_model(self) -> nn.Module:
        return self.ema if self.ema is not None else self.model

    def weights(self, epoch: int) -> dict:
        """best.pt: the evaluated weights (EMA if on) and what is needed to use them."""
        return {
            "format": FORMAT,
            "model": unwrap(self.eval_model).state_dict(),
            "epoch": epoch,
            "select": self.cfg.select,
            "best_value": self.best,
            "classes": self.classes,
            "target": self.cfg.target,
            "config": asdict(self.cfg),
            "norm": {"mean": list(self.norm[0]), "std": list(self.norm[1])},
            "train_seconds": self.train_seconds,
            "temperature": None,
        }

    def resumable(self) -> dict:
        """last.pt: the training weights, optimizer, schedule, EMA and scaler."""
        return {
            **self.weights(self.epoch),
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def restore(self, ckpt: dict, path: Path) -> None:
        load_state(self.model, ckpt["model"], path, f"{self.cfg.model} with these classes")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            schedule = dict(ckpt["scheduler"])
            if "total_steps" in schedule and schedule["total_steps"] != self.scheduler.total_steps:
                # one-cycle extended by --epochs: keep the step count, use the new length's shape
                schedule = {k: v for k, v in schedule.items() if k not in ("total_steps", "_schedule_phases")}
            self.scheduler.load_state_dict(schedule)
            if self.ema is not None and ckpt.get("ema"):
                self.ema.load_state_dict(ckpt["ema"])
            if self.scaler is not None and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise UserError(f"{path}: cannot resume from it ({type(e).__name__}: {str(e)[:120]})") from None
        self.epoch = int(ckpt["epoch"])
        self.best = ckpt.get("best_value", ckpt.get("best_roc_auc"))
        self.train_seconds = float(ckpt.get("train_seconds", 0.0))


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """The new head at `lr`, the backbone at `lr * backbone_lr_scale` (one group when the scale is 1)."""
    if cfg.backbone_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "lr": cfg.lr}]
    heads = tuple(f"{p}." for p in classifier_prefixes(model))
    head = [p for n, p in model.named_parameters() if n.startswith(heads)]
    body = [p for n, p in model.named_parameters() if not n.startswith(heads)]
    return [{"params": body, "lr": cfg.lr * cfg.backbone_lr_scale}, {"params": head, "lr": cfg.lr}]


def make_training_state(model, cfg: TrainConfig, classes, norm, steps_per_epoch: int, device) -> TrainingState:
    """AdamW (head and backbone groups), the schedule, EMA and the fp16 loss scaler for a model."""
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype(device, cfg.amp) == torch.float16 else None
    ema = None
    if cfg.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    return TrainingState(model, optimizer, scheduler, ema, scaler, cfg, classes, norm)


# ----------------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------------
def fit(cfg: TrainConfig, *, resume: bool = False, log=print) -> dict:
    """Train `cfg` into the run folder `cfg.out`; with `resume`, carry on from its last.pt.
    Returns the summary (empty on processes other than the first)."""
    cfg.check()
    if cfg.out is None:
        raise UserError("--out: give a folder for the run")
    if cfg.folds > 1:
        from signvision.crossval import fit_folds

        return fit_folds(cfg, log=log)
    if not resume:
        cfg.absolute_paths()
    out = Path(cfg.out)
    device = pick_device(cfg.device)
    rank, world = dist_setup(device)
    is_main = rank == 0
    if is_main:
        check_out_folder(out, resume=resume)
    if world > 1:
        dist.barrier()  # every rank waits for the check before rank 0 writes into the folder
    torch.manual_seed(cfg.seed)

    last = load_checkpoint(out / "last.pt") if resume else None
    classes = list(last["classes"]) if last is not None else None
    split_file = out / "split.csv" if resume else cfg.split
    data = prepare_run_data(cfg, split_file, rank=rank, classes=classes, leak_check=is_main and not resume)
    if resume and (out / "split.json").is_file():
        data.info = SplitInfo(**read_json(out / "split.json"))
    task = data.task
    model, weights_report = build_run_model(cfg, task.num_outputs)
    norm = model_norm(model)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    transform = build_augment(cfg.augment, image_size=cfg.image_size, seed=cfg.seed + rank)
    train_loader, sampler, val_loader = make_loaders(data, cfg, transform, device, rank, world)
    state = make_training_state(model, cfg, task.classes, norm, len(train_loader), device)
    if last is not None:
        state.restore(last, out / "last.pt")
    runtime = Runtime.create(device, *norm, amp=cfg.amp, channels_last=cfg.channels_last, rank=rank)

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")  # on resume too: a moved --data or a longer --epochs is kept
        if not resume:
            data.split.to_csv(out / "split.csv", index=False)
            (out / "split.json").write_text(json.dumps(asdict(data.info), indent=2, ensure_ascii=False) + "\n")
            if data.dropped:
                (out / "dropped.txt").write_text("\n".join(data.dropped) + "\n")
            save_checkpoint(state.resumable(), out / "last.pt")  # resumable from the very start
        else:
            keep_metrics_up_to(out / "metrics.csv", state.epoch)
        log(describe_run(cfg, data, model, device, world, weights_report))
        if not resume and data.info is not None:
            log(data.info.describe())

    status = run_epochs(state, train_loader, sampler, val_loader, transform, runtime, data, out, world, log)
    final = None
    if status == "finished":
        if world > 1:
            dist.barrier()  # best.pt is written
        try:
            final = finish_run(out, model, val_loader, runtime, data, world, calibrate=cfg.calibrate, log=log)
        except KeyboardInterrupt:  # training is done; `--resume` only calibrates
            status = "interrupted"
            if is_main:
                log(f"interrupted while calibrating; finish with: signvision train --resume {out}")
    summary = {}
    if is_main:
        summary = write_summary(out, cfg, task, status=status, seconds=state.train_seconds, data=data, final=final)
        if summary.get("measures_memory"):
            log(memory_warning(summary))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if status == "interrupted":
        raise KeyboardInterrupt
    return summary


def describe_run(cfg: TrainConfig, data: RunData, model: nn.Module, device, world: int, weights: dict | None) -> str:
    """The lines that open a run's log: data, model, and what was loaded from --weights."""
    task = data.task
    lines = [
        f"data: {data.table.layout} layout at {data.table.root}, {len(task.classes)} classes, "
        f"{len(data.rows('train'))} train / {len(data.rows('val'))} val images"
        + (f", {len(data.dropped)} dropped (see dropped.txt)" if data.dropped else ""),
        f"model: {cfg.model}, {task.num_outputs} output(s)"
        f"{' (' + task.positive + ' vs rest)' if task.binary else ''}, loss {cfg.loss}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}"
        + (f", {world} processes" if world > 1 else ""),
    ]
    if weights:
        lines.append(
            f"weights from {cfg.weights}: {len(weights['loaded'])} tensors loaded"
            + (" (matched by order and shape: its key names differ)" if weights.get("remapped") else "")
            + f", {len(weights['dropped'])} dropped (the old head), {len(weights['new'])} new"
        )
    return "\n".join(lines)


def run_epochs(state: TrainingState, train_loader, sampler, val_loader, transform, runtime, data, out, world, log):
    """Train the remaining epochs; after each, evaluate and write metrics.csv, best.pt and last.pt.
    Returns "finished", or "interrupted" after Ctrl-C (last.pt then holds the last finished epoch)."""
    cfg, task, is_main = state.cfg, data.task, runtime.rank == 0
    train_model = torch.compile(state.model) if cfg.compile else state.model
    if world > 1:
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=device_ids)
    mixer = None
    if cfg.mix != "none":
        mixer = Mixer(mode=cfg.mix, alpha=cfg.mix_alpha, prob=cfg.mix_prob, seed=cfg.seed + runtime.rank)
    first_epoch, started = state.epoch, time.perf_counter()
    epoch = first_epoch
    try:
        for epoch in range(first_epoch, cfg.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            torch.manual_seed(cfg.seed * 1000 + epoch)  # same shuffle, dropout and mixing after a resume
            if transform is not None:
                transform.set_random_seed(cfg.seed * 1000 + epoch + runtime.rank)
            if cfg.freeze_backbone_epochs:
                set_backbone_trainable(state.model, epoch >= cfg.freeze_backbone_epochs)
            if mixer is not None:
                mixer.rng = np.random.default_rng([cfg.seed, runtime.rank, epoch])
                mixer.enabled = epoch < cfg.epochs - cfg.mix_off_epochs
            stats = train_one_epoch(
                train_model,
                train_loader,
                state.optimizer,
                state.scheduler,
                runtime,
                task,
                epoch=epoch,
                mixer=mixer,
                scaler=state.scaler,
                grad_clip=cfg.grad_clip,
                ema=state.ema,
            )
            val, _, _ = evaluate(state.eval_model, val_loader, runtime, task, world=world)
            state.train_seconds += stats["seconds"]
            state.epoch = epoch + 1
            row = {
                "epoch": epoch + 1,
                "train_loss": stats["loss"],
                "train_roc_auc": stats["roc_auc"],
                "val_loss": val["loss"],
                "val_roc_auc": val["roc_auc"],
                "val_log_loss": val["log_loss"],
                "val_accuracy": val["accuracy"],
                "lr": state.scheduler.get_last_lr()[0],
                "seconds": stats["seconds"],
                "train_images_per_s": stats["images_per_s"],
            }
            improved = state.improves(val[cfg.select])
            if improved:
                state.best = val[cfg.select]
            eta = (time.perf_counter() - started) / (epoch + 1 - first_epoch) * (cfg.epochs - epoch - 1)
            if is_main:
                if improved:
                    save_checkpoint(state.weights(epoch + 1), out / "best.pt")
                save_checkpoint(state.resumable(), out / "last.pt")
                append_row(out / "metrics.csv", row)
                log(
                    f"epoch {epoch + 1}/{cfg.epochs}  train loss {row['train_loss']:.4f}  "
                    f"val loss {row['val_loss']:.4f}  val ROC AUC {row['val_roc_auc']:.4f}  "
                    f"log loss {row['val_log_loss']:.4f}  acc {row['val_accuracy']:.4f}  "
                    f"{row['train_images_per_s']:.0f} img/s  eta {eta:.0f} s" + ("  *" if improved else "")
                )
    except KeyboardInterrupt:
        if is_main:
            log(
                f"interrupted in epoch {epoch + 1}: {out / 'last.pt'} holds epoch {state.epoch}; "
                f"continue with: signvision train --resume {out}"
            )
        return "interrupted"
    return "finished"


def finish_run(out: Path, model: nn.Module, val_loader, runtime: Runtime, data: RunData, world: int, *, calibrate, log):
    """Score best.pt on the validation images (gathered from every process): fit the temperature (stored in
    best.pt) unless `calibrate` is off, and take each figure's 95% interval from a bootstrap over the
    validation images' groups. Returns the summary's validation figures."""
    task = data.task
    best = load_checkpoint(out / "best.pt")
    unwrap(model).load_state_dict(best["model"])
    before, outputs, y = evaluate(model, val_loader, runtime, task, world=world)
    final = {"val_log_loss_uncalibrated": before["log_loss"], "val_ece_uncalibrated": before["ece"]}
    probs, temperature = outputs.probs, None
    if calibrate:
        temperature = fit_temperature(outputs.logits, y)
        probs = scaled_probs(outputs.logits, temperature)
        if runtime.rank == 0:
            best["temperature"] = temperature
            save_checkpoint(best, out / "best.pt")
    after = compute_metrics(y, probs, task.names)
    n = len(y)
    order = np.concatenate([np.arange(r, n, world) for r in range(world)])  # the gathered shards' order
    interval = group_bootstrap(y, probs, data.groups("val")[order], seed=0)
    final.update(
        {
            "temperature": temperature,
            "val_log_loss": after["log_loss"],
            "val_ece": after["ece"],
            "val_accuracy": after["accuracy"],
            "val_roc_auc": after["roc_auc"],
            "val_groups": interval["groups"],
            "val_accuracy_ci": interval["accuracy"],
            "val_log_loss_ci": interval["log_loss"],
        }
    )
    if calibrate:
        log(
            f"calibration: temperature {temperature:.3f} fitted on {n} validation images; log loss "
            f"{before['log_loss']:.4f} -> {after['log_loss']:.4f}, ECE {before['ece']:.4f} -> {after['ece']:.4f}"
        )
    if interval["accuracy"] is not None:
        (a_lo, a_hi), (l_lo, l_hi) = interval["accuracy"], interval["log_loss"]
        log(
            f"validation: accuracy {after['accuracy']:.4f} [{a_lo:.3f}, {a_hi:.3f}], log loss {after['log_loss']:.4f} "
            f"[{l_lo:.3f}, {l_hi:.3f}] (95% intervals from a bootstrap over {interval['groups']} groups of near "
            f"copies, not {n} images)"
        )
    return final


# ----------------------------------------------------------------------------------------------------
# metrics.csv and summary.json
# ----------------------------------------------------------------------------------------------------
def append_row(path: Path, row: dict) -> None:
    """Append one epoch's figures to metrics.csv (with its header the first time)."""
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def keep_metrics_up_to(path: Path, epoch: int) -> None:
    """On resume: drop rows of epochs that last.pt does not hold (they will be trained again)."""
    if path.is_file():
        kept = pd.read_csv(path)
        kept[kept["epoch"] <= epoch].to_csv(path, index=False)


def write_summary(
    out: Path, cfg: TrainConfig, task, *, status: str, seconds: float, data: RunData, final: dict | None
) -> dict:
    """summary.json: the validation figures of the epoch best.pt holds (read from best.pt itself, so an
    interruption between writing best.pt and metrics.csv cannot make them disagree), calibrated, with their
    intervals, and what the split leaks."""
    metrics = pd.read_csv(out / "metrics.csv") if (out / "metrics.csv").is_file() else pd.DataFrame()
    summary: dict = {
        "status": status,
        "classes": task.classes,
        "target": cfg.target,
        "model": cfg.model,
        "loss": cfg.loss,
        "select": cfg.select,
        "epochs": int(len(metrics)),
        "train_seconds": round(seconds, 2),
        "dropped_images": len(data.dropped),
        "train_images": int(len(data.rows("train"))),
        "val_images": int(len(data.rows("val"))),
    }
    best_epoch = load_checkpoint(out / "best.pt")["epoch"] if (out / "best.pt").is_file() else None
    rows = metrics[metrics["epoch"] == best_epoch] if best_epoch is not None and len(metrics) else []
    if len(rows):
        best = rows.iloc[0]
        summary.update(
            {
                "best_epoch": int(best_epoch),
                "val_roc_auc": float(best["val_roc_auc"]),
                "val_log_loss": float(best["val_log_loss"]),
                "val_accuracy": float(best["val_accuracy"]),
            }
        )
    summary.update(final or {"temperature": None})
    summary.update(leak_summary(data.info, summary.get("val_accuracy")))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def memory_warning(summary: dict) -> str:
    """The line a run prints when remembering the nearest training image scores about as well as the model."""
    return (
        f"warning: this validation figure measures memory: a 1-nearest-neighbour on thumbnails (no learning) "
        f"scores accuracy {summary['memory_accuracy']:.3f} against the model's {summary['val_accuracy']:.3f}, and "
        f"{summary['val_near_copy_share']:.0%} of the validation images have a near copy in training"
        + ("; the split was random: drop `split_by` random" if summary.get("split_by") == "random" else "")
    )


def leak_summary(info: SplitInfo | None, val_accuracy: float | None) -> dict:
    """The split's leak figures for summary.json, and whether the validation accuracy measures memory."""
    leak = (info.leak if info is not None else None) or {}
    grouping = (info.grouping if info is not None else None) or {}
    memory = leak.get("memory_accuracy")
    return {
        "split_by": info.split_by if info is not None else None,
        "grouped_images": grouping.get("grouped_images"),
        "largest_group": grouping.get("largest_group"),
        "val_near_copy_share": leak.get("val_near_copy_share"),
        "memory_accuracy": memory,
        "measures_memory": measures_memory(leak, val_accuracy),
    }
