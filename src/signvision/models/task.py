"""The task: which outputs a model has, what its targets are, its loss, and how outputs become probabilities.

    K classes                    K outputs; targets one-hot (soft after MixUp/CutMix)
    binary (--target, or 2)      one output, P(positive); the positive class is `target` or the second
                                 class in sorted order

Losses (`--loss`):

    bce   BCEWithLogitsLoss on one-hot targets (the course's loss). Each output is a
          one-vs-rest score; before calibration, probabilities are the sigmoids divided by their sum
    ce    cross-entropy on softmax (the default), with label smoothing; a binary task keeps one output and
          BCE, which is the same thing as a two-way softmax

After training a temperature T is fitted on validation logits (`training/calibrate.py`); from then on the
probabilities are softmax(logits / T) (sigmoid(logit / T) for one output), whichever the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.errors import DataError, OptionError
from signvision.models.probs import scaled_probs

ID_COLUMN = "img_IDS"
LOSSES = ("bce", "ce")


@dataclass
class Task:
    """The classes, the target of a binary task, the loss and label smoothing of a run: K classes get K outputs,
    a `target` (or two classes) one output. Turns labels into targets and logits into probabilities.

    Args:
        classes: the class names (sorted).   target: a class to tell from the rest (one output), or None.
        loss: "ce" (softmax cross-entropy) or "bce" (one-vs-rest sigmoids, the course's).
        label_smoothing: targets pulled this far towards uniform (0.1, as for training; 0 for plain targets).

    Example:
        >>> task = Task(["cat", "dog", "owl"], loss="ce")
        >>> task.num_outputs, task.encode(["dog", "owl"]).tolist()
        (3, [1, 2])
    """

    classes: list[str]
    target: str | None = None
    loss: str = TrainConfig.loss  # "ce": the training default, one home for it (config.py)
    label_smoothing: float = TrainConfig.label_smoothing  # 0.1

    def __post_init__(self):
        if self.target is not None and self.target not in self.classes:
            raise OptionError(
                f"not a class of this data (classes: {', '.join(self.classes)})", option="target", value=self.target
            )
        if len(self.classes) < 2:
            shown = ", ".join(repr(c) for c in self.classes) or "none left"
            raise DataError(f"the data has only one class ({shown}); need at least two")
        if ID_COLUMN in self.classes:
            raise DataError(
                f"class {ID_COLUMN!r}: a class may not be named like the id column; a submission could not hold both"
            )
        if self.loss not in LOSSES:
            raise OptionError(f"expected one of {', '.join(LOSSES)}", option="loss", value=self.loss)

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
        """Labels (strings) -> integer targets: class indices, or 0/1 for a binary task."""
        labels = pd.Series(labels)
        if self.binary:
            return (labels == self.positive).to_numpy().astype(np.int64)
        index = {c: i for i, c in enumerate(self.classes)}
        return labels.map(index).to_numpy().astype(np.int64)

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """(B,) integer labels -> (B, num_outputs) float targets; soft targets (B, num_outputs), a distilled
        run's, pass as they are."""
        if y.is_floating_point():
            return y
        if self.binary:
            return y.float().unsqueeze(1)
        return torch.nn.functional.one_hot(y, len(self.classes)).float()

    def labels_of(self, y: torch.Tensor) -> torch.Tensor:
        """A batch's integer labels: `y` itself, or the most probable class of soft targets (B, num_outputs)."""
        if not y.is_floating_point():
            return y
        return (y[:, 0] > 0.5).long() if self.binary else y.argmax(1)

    def loss_fn(self, reduction: str = "mean"):
        """(logits (B, K), soft targets (B, K)) -> loss. Label smoothing applies to either loss."""
        eps = self.label_smoothing
        if self.loss == "ce" and not self.binary:
            return nn.CrossEntropyLoss(label_smoothing=eps, reduction=reduction)
        bce = nn.BCEWithLogitsLoss(reduction=reduction)
        if eps == 0:
            return bce
        return lambda logits, target: bce(logits, target * (1 - eps) + eps / 2)

    def probs(self, logits: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Logits (B, K) -> probabilities (B, K) whose rows sum to 1, or (B,) P(positive) for one output."""
        z = logits.float()
        if z.shape[1] == 1 or temperature is not None or self.loss == "ce":
            return scaled_probs(z, temperature)  # softmax(z / T), or sigmoid for one output
        p = torch.sigmoid(z)  # BCE, uncalibrated: one-vs-rest scores, divided by their sum
        return p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)
