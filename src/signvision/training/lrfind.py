"""A learning-rate finder: which `--lr` to train with, measured on the run's own data and model.

The range test of Smith (2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3,
https://arxiv.org/abs/1506.01186), as fastai's `lr_find` popularised it: train for a few hundred steps
while the learning rate grows exponentially from `start` to `end`, and watch the loss. At first it does not
move (the rate is too small to matter), then it falls, then it blows up (the rate is too large). The
suggestion is the rate where the smoothed loss falls fastest (the steepest slope against log lr); the
rate at the minimum is shown too, and one tenth of it is the classic safe choice.

The sweep trains a fresh copy of the run's model with its optimizer (AdamW, the backbone's share of the rate
included), loss and augmentation, and is thrown away: nothing is saved but the curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from signvision.config import LR_FIND_END, LR_FIND_START, LR_FIND_STEPS
from signvision.errors import OptionError
from signvision.progress import progress_bar


@dataclass
class LRFind:
    """The sweep: learning rates, losses (raw and smoothed), the suggestion and the rate at the minimum."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    minimum: float

    def describe(self) -> str:
        return (
            f"learning-rate finder, {len(self.lrs)} steps from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e}: "
            f"suggested --lr {self.suggestion:.1e} (steepest fall of the loss); the loss is lowest at "
            f"{self.minimum:.1e} (a tenth of that, {self.minimum / 10:.1e}, is the cautious choice)"
        )


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(the rate where the smoothed loss falls fastest before its minimum, the rate at the minimum)."""
    low = int(np.argmin(smoothed))
    if low < 2:
        return float(lrs[low]), float(lrs[low])
    slope = np.gradient(smoothed[: low + 1], np.log(lrs[: low + 1]))
    return float(lrs[int(np.argmin(slope))]), float(lrs[low])


MAX_STEPS = 10_000  # a sweep longer than this is a typo (the classic sweep is 100 steps)


def check_sweep(start: float, end: float, steps: int) -> None:
    """The sweep's settings, checked before any image is read (one OptionError naming the option)."""
    for option, value in (("start_lr", start), ("end_lr", end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OptionError("must be a finite number", option=option, value=value)
    if not 0 < start < end:
        raise OptionError(f"expected 0 < start < end, got {start} and {end}", option="start_lr", value=start)
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise OptionError("must be a whole number", option="steps", value=steps)
    if not 10 <= steps <= MAX_STEPS:
        raise OptionError(f"from 10 to {MAX_STEPS:,} steps (100 is the classic sweep)", option="steps", value=steps)


def lr_sweep(
    model,
    loader,
    optimizer,
    runtime,
    task,
    *,
    start: float = LR_FIND_START,
    end: float = LR_FIND_END,
    steps: int = LR_FIND_STEPS,
) -> LRFind:
    """Train `model` for `steps` batches of `loader` (cycling it) with the learning rate growing from `start` to
    `end`; stop early when the smoothed loss exceeds 4x its best. The optimizer's parameter groups keep
    their ratios (a backbone at a tenth of the head keeps a tenth)."""
    check_sweep(start, end, steps)
    ratios = [g["lr"] / max(optimizer.param_groups[0]["lr"], 1e-30) for g in optimizer.param_groups]
    loss_fn = task.loss_fn()
    model.train()
    lrs, losses, smoothed, average, best = [], [], [], 0.0, math.inf
    batches = iter(loader)
    bar = progress_bar(total=steps, desc="lr-find", unit="step")
    for i in range(steps):
        lr = start * (end / start) ** (i / (steps - 1))
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        try:
            images, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, y = next(batches)
        x, target = runtime.prepare(images), task.one_hot(y.to(runtime.device))
        with runtime.autocast():
            loss = loss_fn(model(x).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        average = 0.98 * average + 0.02 * value  # exponential smoothing, debiased below
        lrs.append(lr)
        losses.append(value)
        smoothed.append(average / (1 - 0.98 ** (i + 1)))
        bar.update(1)
        best = min(best, smoothed[-1])
        if not math.isfinite(value) or (i > 10 and smoothed[-1] > 4 * best):
            break  # the loss has blown up: larger rates say nothing more
    bar.close()
    lrs_a, smoothed_a = np.array(lrs), np.array(smoothed)
    suggestion, minimum = suggest(lrs_a, smoothed_a)
    return LRFind(lrs_a, np.array(losses), smoothed_a, suggestion, minimum)
