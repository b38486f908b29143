"""Training a model from loaders: the epochs under every run (`runs/run.py`: in memory or into a folder, `--folds`,
`ablate`) and the audit's mislabel model.

    make_scheduler   per-step learning rates: linear warm-up then cosine decay, or one-cycle
    TrainingState    the model, optimizer, schedule, EMA, loss scaler and counters; as a checkpoint and back
    Recorder         what each epoch's end is told: keeps the history, a copy of the best weights and a
                     resumable snapshot, in memory (the run folder's recorder writes them as files too:
                     folder.py)
    train_epochs     the remaining epochs: train_one_epoch, evaluate, note the best, tell the recorder; Ctrl-C
                     (a kernel interrupt) puts the state back to the last finished epoch
    validate_best    the best weights scored on the validation images: the temperature, intervals over groups,
                     and the scores themselves (`Validation`, which the run's report shows)

Seeds: every epoch reseeds torch, the augmentation pipeline and the mixer from (seed, epoch), so that a run
resumed after an interruption sees the same batches as one that never stopped, and the global random state
of the process is saved before training and put back after it (two trainings in one notebook kernel with the
same seed give the same figures, and neither changes the caller's own random numbers).
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.errors import RunError
from signvision.logs import get_logger
from signvision.models.factory import classifier_prefixes, set_backbone_trainable
from signvision.models.mix import Mixer
from signvision.training.checkpoint import FORMAT, load_state
from signvision.training.loop import evaluate_loader, train_one_epoch
from signvision.training.runtime import Runtime, amp_dtype, share_threads, unwrap

logger = get_logger(__name__)

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


def make_scheduler(optimizer, *, epochs: int, steps_per_epoch: int, schedule: str = "cosine", warmup_epochs=1.0):
    """Per-step learning rates: linear warm-up then cosine decay to 1% of the peak, or one-cycle."""
    total = max(1, epochs * steps_per_epoch)
    if schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=0.25)
    warmup = min(int(warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def param_groups(model: nn.Module, lr: float, backbone_lr_scale: float = 1.0) -> list[dict]:
    """The new head at `lr`, the backbone at `lr * backbone_lr_scale` (one group when the scale is 1)."""
    if backbone_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "lr": lr}]
    heads = tuple(f"{p}." for p in classifier_prefixes(model))
    head = [p for n, p in model.named_parameters() if n.startswith(heads)]
    body = [p for n, p in model.named_parameters() if not n.startswith(heads)]
    return [{"params": body, "lr": lr * backbone_lr_scale}, {"params": head, "lr": lr}]


# ----------------------------------------------------------------------------------------------------
# The training state
# ----------------------------------------------------------------------------------------------------
def adamw(params, device, **settings) -> torch.optim.AdamW:
    """AdamW, fused where PyTorch has the kernel (CPU, CUDA): one kernel for every tensor's update, not a loop of
    small ones (the audit's LeNet folds: 15% faster)."""
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.AdamW(params, fused=fused or None, **settings)


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

    @classmethod
    def create(cls, model: nn.Module, cfg: TrainConfig, classes, norm, steps_per_epoch: int, device) -> TrainingState:
        """AdamW (head and backbone groups), the schedule, EMA and the fp16 loss scaler for a model."""
        groups = param_groups(model, cfg.lr, cfg.backbone_lr_scale)
        optimizer = adamw(groups, device, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scaler = torch.amp.GradScaler("cuda") if amp_dtype(device, cfg.amp) == torch.float16 else None
        ema = None
        if cfg.ema:
            average = torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay)
            ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=average, use_buffers=True)
        scheduler = make_scheduler(
            optimizer,
            epochs=cfg.epochs,
            steps_per_epoch=steps_per_epoch,
            schedule=cfg.schedule,
            warmup_epochs=cfg.warmup_epochs,
        )
        return cls(model, optimizer, scheduler, ema, scaler, cfg, list(classes), norm)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema if self.ema is not None else self.model

    def improves(self, value: float) -> bool:
        """Whether an epoch's validation figure (of `cfg.select`) beats the best so far."""
        if self.best is None:
            return True
        return value < self.best if self.cfg.select == "log_loss" else value > self.best

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

    def restore(self, ckpt: dict, where) -> None:
        """Put the state back as `ckpt` (a resumable dict, from last.pt or memory) holds it."""
        load_state(self.model, ckpt["model"], where, f"{self.cfg.model} with these classes")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            schedule = dict(ckpt["scheduler"])
            if "total_steps" in schedule and schedule["total_steps"] != self.scheduler.total_steps:
                # one-cycle extended by more epochs: keep the step count, use the new length's shape
                schedule = {k: v for k, v in schedule.items() if k not in ("total_steps", "_schedule_phases")}
            self.scheduler.load_state_dict(schedule)
            if self.ema is not None and ckpt.get("ema"):
                self.ema.load_state_dict(ckpt["ema"])
            if self.scaler is not None and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise RunError(f"{where}: cannot resume from it ({type(e).__name__}: {str(e)[:120]})") from None
        self.epoch = int(ckpt["epoch"])
        self.best = ckpt.get("best_value", ckpt.get("best_roc_auc"))
        self.train_seconds = float(ckpt.get("train_seconds", 0.0))


def snapshot(state_dict: dict) -> dict:
    """A deep copy of a (nested) state dict, tensors on the CPU: what the weights were at this moment."""
    return copy.deepcopy({k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state_dict.items()})


# ----------------------------------------------------------------------------------------------------
# The recorder: what an epoch's end is told
# ----------------------------------------------------------------------------------------------------
@dataclass
class Recorder:
    """Keeps in memory what training produces: one row per epoch, a copy of the best epoch's weights, and a
    snapshot of the state after the last finished epoch (to come back to after an interruption)."""

    rows: list = field(default_factory=list)
    best: dict | None = None
    last: dict | None = None
    on_epoch: object = None  # called with each epoch's row (e.g. a progress bar's tick)

    def start(self, state: TrainingState) -> None:
        self.rows = [r for r in self.rows if r["epoch"] <= state.epoch]
        self.last = snapshot(state.resumable())

    def epoch_end(self, state: TrainingState, row: dict, improved: bool) -> None:
        self.rows.append(row)
        if improved or self.best is None:
            self.best = snapshot(state.weights(row["epoch"]))
        self.last = snapshot(state.resumable())
        if self.on_epoch is not None:
            self.on_epoch(row)

    def last_state(self) -> dict:
        return self.last

    def best_weights(self) -> dict | None:
        return self.best

    def finish(self, summary: dict, temperature: float | None) -> None:
        """The run is over (finished, or interrupted with `summary["status"]` saying so): nothing to write here."""

    @property
    def history(self) -> pd.DataFrame:
        """One row per finished epoch (the columns of metrics.csv)."""
        return pd.DataFrame(self.rows, columns=METRIC_COLUMNS)


@contextmanager
def own_random_state():
    """Run a block with its own seeds: the process's torch and numpy random states are put back afterwards."""
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.random.set_rng_state(torch_state)
        np.random.set_state(np_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


# ----------------------------------------------------------------------------------------------------
# The epochs
# ----------------------------------------------------------------------------------------------------
def train_epochs(
    state: TrainingState,
    train_loader,
    val_loader,
    runtime: Runtime,
    task,
    *,
    recorder: Recorder,
    sampler=None,
    transform=None,
    world: int = 1,
) -> str:
    """Train the remaining epochs; after each, evaluate (when there is a validation loader) and tell the
    recorder. Returns "finished", or "interrupted" after Ctrl-C, with the state put back to the last
    finished epoch (the recorder holds it: training again continues from there)."""
    cfg, is_main = state.cfg, runtime.rank == 0
    train_model = torch.compile(state.model) if cfg.compile else state.model
    if world > 1:
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=device_ids)
    mixer = None
    if cfg.mix != "none":
        mixer = Mixer(mode=cfg.mix, alpha=cfg.mix_alpha, prob=cfg.mix_prob, seed=cfg.seed + runtime.rank)
    first_epoch, started = state.epoch, time.perf_counter()
    epoch, threads = first_epoch, torch.get_num_threads()
    used = threads
    try:
        for epoch in range(first_epoch, cfg.epochs):
            used = share_cores(threads, used, epoch, is_main)  # other trainings here: each its share of the cores
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
            val = evaluate_loader(state.eval_model, val_loader, runtime, task, world=world)[0] if val_loader else {}
            state.train_seconds += stats["seconds"]
            state.epoch = epoch + 1
            row = epoch_row(epoch + 1, stats, val, state.scheduler.get_last_lr()[0])
            improved = state.improves(val[cfg.select]) if val else True
            if improved:
                state.best = val[cfg.select] if val else None
            if is_main:
                recorder.epoch_end(state, row, improved)
                eta = (time.perf_counter() - started) / (epoch + 1 - first_epoch) * (cfg.epochs - epoch - 1)
                logger.info(
                    describe_epoch(row, cfg.epochs, eta, improved) if val else f"epoch {epoch + 1}/{cfg.epochs}"
                )
    except KeyboardInterrupt:
        if is_main and recorder.last_state() is not None:
            state.restore(recorder.last_state(), "the last finished epoch")
            logger.info(
                f"interrupted in epoch {epoch + 1}: the run holds epoch {state.epoch}; training again continues it"
            )
        return "interrupted"
    finally:
        torch.set_num_threads(threads)
    return "finished"


def share_cores(threads: int, before: int, epoch: int, say: bool) -> int:
    """This epoch's threads: `threads` shared with the other trainings on this machine (`share_threads`), said
    when they change, since sums in another order make the figures differ in their last digits from a run alone."""
    shared = share_threads(threads)
    if shared != before and say:
        logger.info(
            f"epoch {epoch + 1}: {shared} of {threads} threads (other trainings run on this machine; the figures "
            "differ in their last digits from a run alone)"
            if shared < threads
            else f"epoch {epoch + 1}: {shared} threads again (alone on this machine)"
        )
    return shared


def epoch_row(epoch: int, stats: dict, val: dict, lr: float) -> dict:
    """One row of the history (metrics.csv)."""
    nan = float("nan")
    return {
        "epoch": epoch,
        "train_loss": stats["loss"],
        "train_roc_auc": stats["roc_auc"],
        "val_loss": val.get("loss", nan),
        "val_roc_auc": val.get("roc_auc", nan),
        "val_log_loss": val.get("log_loss", nan),
        "val_accuracy": val.get("accuracy", nan),
        "lr": lr,
        "seconds": stats["seconds"],
        "train_images_per_s": stats["images_per_s"],
    }


def describe_epoch(row: dict, epochs: int, eta: float, improved: bool) -> str:
    """The log line of one epoch."""
    return (
        f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f}  "
        f"val loss {row['val_loss']:.4f}  val ROC AUC {row['val_roc_auc']:.4f}  "
        f"log loss {row['val_log_loss']:.4f}  acc {row['val_accuracy']:.4f}  "
        f"{row['train_images_per_s']:.0f} img/s  eta {eta:.0f} s" + ("  *" if improved else "")
    )


# ----------------------------------------------------------------------------------------------------
# After training
# ----------------------------------------------------------------------------------------------------
@dataclass
class Validation:
    """The best weights on the validation images, gathered from every process: labels (N,), calibrated and
    uncalibrated probabilities, and `order`, the row of the validation set behind each of them."""

    y: np.ndarray
    probs: np.ndarray
    raw: np.ndarray
    order: np.ndarray


def validate_best(
    model: nn.Module, best: dict, val_loader, runtime: Runtime, task, groups, *, world: int, calibrate: bool
) -> tuple[dict, Validation]:
    """Score the best weights on the validation images (gathered from every process): fit the temperature
    unless `calibrate` is off, and take 95% intervals from a bootstrap over the images' `groups` (in loader
    order). Returns (the validation figures for the summary, with the temperature or None; the scores)."""
    from signvision.models.probs import scaled_probs
    from signvision.training.calibrate import fit_temperature
    from signvision.training.metrics import compute_metrics, group_bootstrap

    unwrap(model).load_state_dict(best["model"])
    before, outputs, y = evaluate_loader(model, val_loader, runtime, task, world=world)
    probs, temperature = outputs.probs, None
    if calibrate:
        temperature = fit_temperature(outputs.logits, y)
        probs = scaled_probs(outputs.logits, temperature)
    after = compute_metrics(y, probs, task.names)
    order = np.concatenate([np.arange(r, len(y), world) for r in range(world)])  # the gathered shards' order
    interval = group_bootstrap(y, probs, np.asarray(groups)[order], seed=0)
    figures = {
        "temperature": temperature,
        "val_log_loss_uncalibrated": before["log_loss"],
        "val_ece_uncalibrated": before["ece"],
        "val_log_loss": after["log_loss"],
        "val_ece": after["ece"],
        "val_accuracy": after["accuracy"],
        "val_roc_auc": after["roc_auc"],
        "val_groups": interval["groups"],
        "val_accuracy_ci": interval["accuracy"],
        "val_log_loss_ci": interval["log_loss"],
    }
    return figures, Validation(y, probs, outputs.probs, order)


def describe_validation(figures: dict, images: int) -> str:
    """What validate_best found, in two lines (calibration, and the intervals)."""
    lines = []
    if figures["temperature"] is not None:
        lines.append(
            f"calibration: temperature {figures['temperature']:.3f} fitted on {images} validation images; log loss "
            f"{figures['val_log_loss_uncalibrated']:.4f} -> {figures['val_log_loss']:.4f}, ECE "
            f"{figures['val_ece_uncalibrated']:.4f} -> {figures['val_ece']:.4f}"
        )
    if figures["val_accuracy_ci"] is not None:
        (a_lo, a_hi), (l_lo, l_hi) = figures["val_accuracy_ci"], figures["val_log_loss_ci"]
        lines.append(
            f"validation: accuracy {figures['val_accuracy']:.4f} [{a_lo:.3f}, {a_hi:.3f}], log loss "
            f"{figures['val_log_loss']:.4f} [{l_lo:.3f}, {l_hi:.3f}] (95% intervals from a bootstrap over "
            f"{figures['val_groups']} groups of near copies, not {images} images)"
        )
    return "\n".join(lines)
