"""The training loop, written out: one epoch of training, one pass of prediction, one evaluation.

    train_one_epoch   one pass over the training loader (AMP, MixUp/CutMix, gradient clipping, EMA)
    backward_and_step one optimizer step from a loss (the fp16 scaler, gradient clipping)
    view_probs        one batch -> probabilities, merged over test-time views: the one forward pass that
                      validation, prediction, evaluation and serving all use
    predict_batches   view_probs over a loader (with the logits and the loss for labelled batches)
    evaluate_loader   predict_batches + the figures, gathered from every process

These are the functions a reader of torchvision's `references/classification` expects; `training/trainer.py`
wires them into epochs, and `runs/run.py` into a run. Shapes: images arrive as uint8 (B, 3, S, S) on the CPU
and become normalised float input on the device (`Runtime.prepare`); logits are (B, K), or (B, 1) for a binary task.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from signvision.errors import DivergedError
from signvision.models.augment import TTA
from signvision.models.mix import Mixer
from signvision.models.task import Task
from signvision.progress import progress_bar
from signvision.training.metrics import compute_metrics
from signvision.training.runtime import Runtime, unwrap


def backward_and_step(model: nn.Module, loss: torch.Tensor, optimizer, scaler=None, grad_clip: float = 0.0) -> None:
    """One optimizer step from a batch's loss: the gradients (scaled by the fp16 `scaler` when given, so that small
    gradients survive), clipped to the norm `grad_clip` when > 0, then the step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:  # fp16 on older GPUs
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer,
    scheduler,
    runtime: Runtime,
    task: Task,
    *,
    epoch: int,
    mixer: Mixer | None = None,
    scaler=None,
    grad_clip: float = 0.0,
    ema=None,
) -> dict:
    """One pass over the training loader: forward, loss, backward, optimizer and schedule steps (with MixUp or
    CutMix, the fp16 scaler, gradient clipping and EMA when given).

    Args:
        model, loader, optimizer, scheduler: as PyTorch makes them.   runtime: device and normalisation.
        task: targets and the loss.   epoch: for the progress bar.   mixer, scaler, grad_clip, ema: optional.

    Returns:
        {"loss": mean loss, "roc_auc": of the batches seen, "images_per_s", "seconds"}.

    Example:
        >>> table = read_data("../shared/data/sign-digits").train[:64]
        >>> task = Task(sorted(table["Label"].unique()), None)
        >>> dataset = ImageDataset(table["path"], 32, targets=task.encode(table["Label"]))
        >>> loader = make_loader(dataset, batch_size=32, shuffle=True)
        >>> model = build_model("lenet", task.num_outputs, image_size=32)
        >>> runtime = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.5,) * 3)
        >>> optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
        >>> scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        >>> stats = train_one_epoch(model, loader, optimizer, scheduler, runtime, task, epoch=0)
        >>> sorted(stats), stats["loss"] > 0
        (['images_per_s', 'loss', 'roc_auc', 'seconds'], True)
    """
    model.train()
    loss_fn = task.loss_fn()
    total_loss, seen, probs, labels = 0.0, 0, [], []
    bar = progress_bar(total=len(loader.dataset), desc=f"epoch {epoch + 1} train", unit="img", rank=runtime.rank)
    start = time.perf_counter()
    for images, y in loader:
        x = runtime.prepare(images)  # (B, 3, H, W) float, normalised
        y = y.to(runtime.device, non_blocking=True)
        target = task.one_hot(y)  # (B, K) or (B, 1)
        if mixer is not None:
            x, target = mixer(x, target)
        with runtime.autocast():
            logits = model(x)  # (B, K) or (B, 1)
            loss = loss_fn(logits.float(), target)
        backward_and_step(model, loss, optimizer, scaler, grad_clip)
        scheduler.step()
        if ema is not None:
            ema.update_parameters(unwrap(model))
        n, value = images.shape[0], loss.item()
        if not math.isfinite(value):
            raise DivergedError(
                f"training diverged: the loss is {value} in epoch {epoch + 1} (weights holding NaN, or a learning "
                "rate too high); use a lower `lr`"
            )
        total_loss += value * n
        seen += n
        probs.append(task.probs(logits.detach()).cpu())
        labels.append(task.labels_of(y).cpu())
        bar.update(n)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    bar.close()
    seconds = time.perf_counter() - start
    metrics = compute_metrics(torch.cat(labels).numpy(), torch.cat(probs).numpy(), task.names)
    return {
        "loss": total_loss / max(seen, 1),
        "roc_auc": metrics["roc_auc"],
        "images_per_s": seen / seconds,
        "seconds": seconds,
    }


def forward_logits(model: nn.Module, runtime: Runtime, x: torch.Tensor) -> torch.Tensor:
    """The model's float32 logits for prepared input `x` (under the runtime's AMP precision)."""
    with runtime.autocast():
        return model(x).float()


@torch.no_grad()
def view_probs(
    model: nn.Module,
    runtime: Runtime,
    task: Task,
    images: torch.Tensor,
    *,
    temperature: float | None = None,
    tta: TTA | None = None,
) -> torch.Tensor:
    """uint8 images (B, 3, S, S) on the CPU -> probabilities (B, K) or (B,) P(positive), divided by the
    temperature and merged over the views of `tta` (none: the image itself)."""

    def probs(x: torch.Tensor) -> torch.Tensor:
        return task.probs(forward_logits(model, runtime, x), temperature)

    if tta is not None and tta.spec != "none":
        return tta(probs, images, runtime.prepare)
    return probs(runtime.prepare(images))


@dataclass
class Outputs:
    """What a prediction pass gives: probabilities (N, K) or (N,), the batches' second items (labels or
    ids), the raw logits (N, K or 1; None with TTA, which merges probabilities) and the summed loss."""

    probs: np.ndarray
    keys: list
    logits: np.ndarray | None
    loss_sum: float | None


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    loader,
    runtime: Runtime,
    task: Task,
    *,
    temperature: float | None = None,
    tta: TTA | None = None,
    desc: str = "predict",
) -> Outputs:
    """Run the model over the loader. Labelled batches also give the loss; TTA merges several views.

    Returns:
        Outputs: probabilities, the batches' second items (labels or ids), logits (no TTA), the summed loss.

    Example:
        >>> table = read_data("../shared/data/sign-digits").train[:64]
        >>> task = Task(sorted(table["Label"].unique()), None)
        >>> dataset = ImageDataset(table["path"], 32, targets=task.encode(table["Label"]))
        >>> loader = make_loader(dataset, batch_size=32, shuffle=True)
        >>> model = build_model("lenet", task.num_outputs, image_size=32)
        >>> runtime = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.5,) * 3)
        >>> outputs = predict_batches(model, loader, runtime, task)
        >>> outputs.probs.shape, len(outputs.keys), outputs.logits.shape
        ((64, 10), 64, (64, 10))
    """
    model.eval()
    if tta is not None and tta.spec == "none":
        tta = None
    loss_fn = task.loss_fn(reduction="sum")
    probs, logits_all, keys, loss_sum = [], [], [], 0.0

    total = len(loader.sampler) if loader.sampler is not None else None
    bar = progress_bar(total=total, desc=desc, unit="img", rank=runtime.rank)
    for images, second in loader:
        if tta is not None:
            p = view_probs(model, runtime, task, images, temperature=temperature, tta=tta)
        else:
            logits = forward_logits(model, runtime, runtime.prepare(images))
            p = task.probs(logits, temperature)
            logits_all.append(logits.cpu())
            if isinstance(second, torch.Tensor):
                per_output = loss_fn(logits, task.one_hot(second.to(runtime.device))).item()
                loss_sum += per_output / (logits.shape[1] if task.loss == "bce" or task.binary else 1)
        probs.append(p.cpu())
        keys += second.tolist() if isinstance(second, torch.Tensor) else list(second)
        bar.update(images.shape[0])
    bar.close()
    return Outputs(
        probs=torch.cat(probs).numpy() if probs else np.zeros((0,)),
        keys=keys,
        logits=torch.cat(logits_all).numpy() if logits_all else None,
        loss_sum=None if tta is not None else loss_sum,
    )


def evaluate_loader(
    model: nn.Module,
    loader,
    runtime: Runtime,
    task: Task,
    *,
    temperature: float | None = None,
    tta: TTA | None = None,
    world: int = 1,
) -> tuple[dict, Outputs, np.ndarray]:
    """Metrics over the loader's labelled images, gathered from every process (`world`); also the outputs.

    Args:
        model, loader, runtime, task: as for `train_one_epoch`.   temperature: divide the logits by it.
        tta: a TTA to merge views.   world: processes in a distributed run.

    Returns:
        (metrics: compute_metrics's dict + "loss", outputs: Outputs (probs, keys, logits), labels (N,)).

    Example:
        >>> table = read_data("../shared/data/sign-digits").train[:64]
        >>> task = Task(sorted(table["Label"].unique()), None)
        >>> dataset = ImageDataset(table["path"], 32, targets=task.encode(table["Label"]))
        >>> loader = make_loader(dataset, batch_size=32, shuffle=True)
        >>> model = build_model("lenet", task.num_outputs, image_size=32)
        >>> runtime = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.5,) * 3)
        >>> metrics, outputs, y = evaluate_loader(model, loader, runtime, task)
        >>> sorted(metrics), outputs.probs.shape, y.shape
        (['accuracy', 'ece', 'log_loss', 'loss', 'n', 'per_class_roc_auc', 'roc_auc'], (64, 10), (64,))
    """
    out = predict_batches(model, loader, runtime, task, temperature=temperature, tta=tta, desc="validate")
    if world > 1:  # each rank holds a disjoint shard (ShardSampler): gather them all, exactly once
        gathered: list = [None] * world
        dist.all_gather_object(gathered, out)
        out = Outputs(
            probs=np.concatenate([g.probs for g in gathered]),
            keys=sum((g.keys for g in gathered), []),
            logits=None if out.logits is None else np.concatenate([g.logits for g in gathered]),
            loss_sum=None if out.loss_sum is None else sum(g.loss_sum for g in gathered),
        )
    y = np.asarray(out.keys, dtype=np.int64)
    if not np.isfinite(out.probs).all():
        raise DivergedError(
            "the model's outputs are NaN or infinite (weights holding NaN, or a learning rate too high)"
        )
    metrics = compute_metrics(y, out.probs, task.names)
    metrics["loss"] = out.loss_sum / len(y) if out.loss_sum is not None and len(y) else None
    return metrics, out, y
