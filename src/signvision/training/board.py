"""TensorBoard logs of a run folder, so that runs can be compared where many people already look.

Every run folder gets RUN/tensorboard/ (event files written by `torch.utils.tensorboard`): per epoch, the
training loss and ROC AUC, every validation figure and the learning rate, with the values of metrics.csv
(the same row is written to both); at the end, a batch of training images as the augmentation made them and
the confusion matrix. `tensorboard --logdir runs/` then shows every run side by side, each under its folder's
name (the folds of a `--folds` run as `OUT/fold<k>`, an ablation's runs under theirs).

A resumed run starts its log where its last.pt stands (`purge_step`): epochs trained again replace the ones
logged after it, as in metrics.csv. TensorBoard is imported only when a run folder is written.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

FOLDER = "tensorboard"  # RUN/tensorboard/


def tag(column: str) -> str:
    """metrics.csv's column -> TensorBoard's tag: train_loss -> train/loss, val_log_loss -> val/log_loss."""
    for side in ("train", "val"):
        if column.startswith(side + "_"):
            return f"{side}/{column[len(side) + 1 :]}"
    return column


class BoardLog:
    """One run's TensorBoard writer: `epoch(row)` per finished epoch, `image(name, array)`, `close()`. Without
    the tensorboard package it warns once and writes nothing (metrics.csv holds the same figures)."""

    def __init__(self, run: Path, first_epoch: int = 0):
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("tensorboard is not installed: no TensorBoard log (pip install tensorboard)", stacklevel=2)
            return
        self.writer = SummaryWriter(str(Path(run) / FOLDER), purge_step=first_epoch + 1 if first_epoch else None)

    def epoch(self, row: dict) -> None:
        """One metrics.csv row, as scalars at step `row["epoch"]`."""
        if self.writer is None:
            return
        for column, value in row.items():
            if column != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag(column), float(value), int(row["epoch"]))
        self.writer.flush()

    def image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        """An RGB uint8 picture (H, W, 3)."""
        if self.writer is not None:
            self.writer.add_image(name, np.ascontiguousarray(image), step, dataformats="HWC")
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def batch_grid(images: np.ndarray, cols: int = 8) -> np.ndarray:
    """uint8 images (N, 3, S, S) -> one RGB picture (rows x cols tiles, 2-pixel gaps)."""
    n, _, s, _ = images.shape
    rows = math.ceil(n / cols)
    grid = np.full((rows * (s + 2), cols * (s + 2), 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (s + 2) : r * (s + 2) + s, c * (s + 2) : c * (s + 2) + s] = img.transpose(1, 2, 0)
    return grid
