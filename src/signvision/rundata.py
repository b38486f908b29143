"""A run's images: read the table, apply the audit, decode every image once into the cache, split.

`prepare_run_data(cfg)` is what `train`, `evaluate`, `report` and `ablate` call to get the same images
in the same order with the same split; `RunData.subset("train" | "val")` gives a `Dataset` of one side.
Every check that can fail is made here, before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.cache import decode_all
from signvision.config import TrainConfig
from signvision.dataset import ImageDataset
from signvision.errors import UserError
from signvision.split import make_split, read_split
from signvision.tables import DataTable, read_csv, read_data_of
from signvision.task import Task


@dataclass
class RunData:
    """A run's images: the table, the task, the split and the decoded-image cache (rows aligned)."""

    table: DataTable
    task: Task
    split: pd.DataFrame  # img_IDS, fold ("train" | "val")
    images: np.ndarray | None  # (N, S, S, 3) uint8 in RAM, a disk memmap, or None (decode on the fly)
    dropped: list[str]
    image_size: int

    def rows(self, fold: str) -> np.ndarray:
        folds = self.split.set_index("img_IDS")["fold"]
        return np.flatnonzero((folds.loc[self.table.train["img_IDS"]] == fold).to_numpy())

    def subset(self, fold: str, *, transform=None) -> ImageDataset:
        rows = self.rows(fold)
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
    """(ids kept by the audit's clean.csv, duplicates.csv) for `train --audit` and `split --audit`."""
    audit_dir = Path(audit_dir)
    if not audit_dir.is_dir():
        raise UserError(f"--audit {audit_dir}: folder not found")
    clean = read_csv(audit_dir / "clean.csv", ["img_IDS"], " (is --audit an audit folder?)")
    dups_path = audit_dir / "duplicates.csv"
    dups = pd.DataFrame(columns=["group", "img_IDS"])
    if dups_path.is_file() and dups_path.stat().st_size > 0:
        found = pd.read_csv(dups_path, dtype=str, keep_default_na=False)
        if {"group", "img_IDS"} <= set(found.columns) and len(found):
            dups = found
    return set(clean["img_IDS"]), dups


def audit_groups(ids: pd.Series, dups: pd.DataFrame | None) -> pd.Series | None:
    """The audit's sequence of each image (its copies and neighbouring video frames; NaN where it has none),
    from the audit's duplicates.csv, or None without an audit. A sequence must stay on one side of a split."""
    if dups is None:
        return None
    key = "sequence" if "sequence" in dups.columns else "group"  # sequences hold the groups and video frames
    return pd.Series(ids).map(dict(zip(dups["img_IDS"], dups[key], strict=False)))


def read_training_table(cfg: TrainConfig, dropped: list[str]) -> tuple[DataTable, pd.DataFrame | None]:
    """The data of `cfg`, cut to the audit's clean.csv with `--audit`; and the audit's duplicates.csv
    (None without an audit). Rows without an image are dropped into `dropped` with --skip-bad-images."""
    table = read_data_of(cfg, skip_missing=cfg.skip_bad_images, dropped=dropped)
    if not cfg.audit:
        return table, None
    keep, dups = load_audit(cfg.audit)
    table.train = table.train[table.train["img_IDS"].isin(keep)].reset_index(drop=True)
    if len(table.train) == 0:
        raise UserError(f"--audit {cfg.audit}: its clean.csv keeps none of this data's images (another data set?)")
    return table, dups


def check_cache_fits(n: int, cfg: TrainConfig) -> None:
    """Refuse a decoded-image cache that cannot fit, before decoding anything."""
    need = n * cfg.image_size * cfg.image_size * 3
    if cfg.cache == "memory":
        import psutil

        free = psutil.virtual_memory().available
        if need > 0.7 * free:
            raise UserError(
                f"--image-size {cfg.image_size}: caching {n} images needs {need / 2**30:.1f} GiB of memory, "
                f"{free / 2**30:.1f} GiB is free; use a smaller --image-size or --cache disk|none"
            )
    elif cfg.cache == "disk":
        import shutil

        where = Path(cfg.cache_dir or Path.home() / ".cache" / "signvision")
        probe = next((p for p in [where, *where.parents] if p.exists()), Path("/"))
        free = shutil.disk_usage(probe).free
        if need > 0.9 * free:
            raise UserError(
                f"--cache-dir {where}: caching {n} images needs {need / 2**30:.1f} GiB on disk, "
                f"{free / 2**30:.1f} GiB is free; use a smaller --image-size or --cache none"
            )


def prepare_run_data(
    cfg: TrainConfig, split_file: str | Path | None = None, *, rank: int = 0, classes: list[str] | None = None
) -> RunData:
    """Read the table, drop what the audit or bad files say, decode (cache) every image, split.
    `classes`: the classes the data must have (a resumed or evaluated run's), checked before decoding."""
    dropped: list[str] = []
    table, dups = read_training_table(cfg, dropped)
    if classes is not None and table.classes != list(classes):
        raise UserError(
            f"--data {cfg.data or cfg.csv}: its classes ({', '.join(table.classes)}) differ from the run's "
            f"({', '.join(classes)})"
        )
    check_cache_fits(len(table.train), cfg)
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
    if len(table.train) == 0:
        raise UserError(f"--skip-bad-images: every image was dropped ({len(dropped)}); first: {dropped[0]}")
    task = Task(table.classes, cfg.target, loss=cfg.loss, label_smoothing=cfg.label_smoothing)
    if split_file is not None:
        split = read_split(split_file, table.train["img_IDS"])
    else:
        split = make_split(
            table.train["img_IDS"],
            table.train["Label"],
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
            groups=audit_groups(table.train["img_IDS"], dups),
        )
    data = RunData(table, task, split, images, dropped, cfg.image_size)
    check_split(data, split_file)
    return data


def check_split(data: RunData, split_file) -> None:
    """Both sides need images, and validation needs two classes (ROC AUC and the temperature need them)."""
    where = f"--split {split_file}" if split_file is not None else "--val-fraction"
    train, val = data.rows("train"), data.rows("val")
    if len(train) == 0 or len(val) == 0:
        raise UserError(f"{where}: the split leaves no {'training' if len(train) == 0 else 'validation'} images")
    val_targets = np.unique(data.task.encode(data.table.train["Label"].iloc[val]))
    if len(val_targets) < 2:
        raise UserError(
            f"{where}: the validation side has {len(val)} image(s) of one class only; ROC AUC and calibration "
            "need two (use a larger --val-fraction)"
        )
