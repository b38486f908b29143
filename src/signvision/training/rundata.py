"""A run's images: read the table, apply the audit, decode every image once into the cache, split, and check
what the split leaks.

`prepare_run_data(cfg)` is what `train`, `evaluate`, `report` and `ablate` call to get the same images in
the same order with the same split; `RunData.subset("train" | "val")` gives a `Dataset` of one side.
Every check that can fail is made here, before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.config import TrainConfig
from signvision.data.cache import already_decoded, decode_all
from signvision.data.dataset import ImageDataset
from signvision.data.tables import DataTable, read_csv, read_data_of
from signvision.errors import DataError, MissingError, OptionError
from signvision.grouping.splits import SplitInfo, check_leaks, draw_split, load_audit, read_split
from signvision.logs import get_logger
from signvision.models.task import Task

logger = get_logger(__name__)


@dataclass
class RunData:
    """A run's images: the table, the task, the split and the decoded-image cache (rows aligned)."""

    table: DataTable
    task: Task
    split: pd.DataFrame  # img_IDS, fold ("train" | "val"), group ("" = no near copy)
    images: np.ndarray | None  # (N, S, S, 3) uint8 in RAM, a disk memmap, or None (decode on the fly)
    dropped: list[str]
    image_size: int
    info: SplitInfo | None = None  # how the split was made, what it leaks
    teacher: np.ndarray | None = None  # (N, outputs) float32 targets of a distilled run (training/teacher.py)

    def rows(self, fold: str) -> np.ndarray:
        folds = self.split.set_index("img_IDS")["fold"]
        return np.flatnonzero((folds.loc[self.table.train["img_IDS"]] == fold).to_numpy())

    def groups(self, fold: str) -> np.ndarray:
        """The group key of each image of one side (its near-copy group, or itself), in `rows(fold)` order."""
        from signvision.grouping.splits import split_group_keys_of

        return np.array(split_group_keys_of(self.split, self.table.train["img_IDS"].iloc[self.rows(fold)]), object)

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
            soft_targets=self.teacher[rows] if self.teacher is not None and fold == "train" else None,
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


def read_training_table(
    cfg: TrainConfig, dropped: list[str], table: DataTable | None = None
) -> tuple[DataTable, pd.DataFrame | None, pd.DataFrame | None]:
    """The labelled images of `cfg` (a layout's own validation folder included), cut to the audit's clean.csv
    with `audit`; the audit's duplicates.csv (None without one); the layout's own split (None if it gives no
    validation folder). Rows without an image are dropped into `dropped` with `skip_bad_images`. `table`: the
    data already read (a DataFrame's), instead of the config's data options."""
    if table is None:
        table = read_data_of(cfg, skip_missing=cfg.skip_bad_images, dropped=dropped)
    else:
        table = DataTable(table.train.copy(), table.test, table.layout, table.root, table.val)
    given = None
    if table.val is not None:
        given = pd.DataFrame(
            {"img_IDS": table.labelled["img_IDS"], "fold": ["train"] * len(table.train) + ["val"] * len(table.val)}
        )
        table.train, table.val = table.labelled, None
    if not cfg.audit:
        return table, None, given
    keep, dups = load_audit(cfg.audit)
    table.train = table.train[table.train["img_IDS"].isin(keep)].reset_index(drop=True)
    if len(table.train) == 0:
        raise DataError(
            "its clean.csv keeps none of this data's images (another data set?)", option="audit", value=cfg.audit
        )
    return table, dups, given


PSEUDO = "pseudo:"  # the img_IDS prefix of a pseudo-labelled image (never one of the data's own names)


def read_pseudo_labels(path: str | Path, classes: list[str]) -> pd.DataFrame:
    """A `pseudo-label` CSV (path, Label; img_IDS optional) as training rows img_IDS ("pseudo:<id>"), path, Label,
    row; a relative path is taken from the CSV's folder. One-line errors name the file and row."""
    path = Path(path)
    if not path.is_file():
        raise MissingError("file not found", option="pseudo_labels", value=path)
    frame = read_csv(path, ["path", "Label"], " (write it with `signvision pseudo-label`)")
    unknown = frame[~frame["Label"].isin(classes)]
    if len(unknown):
        raise DataError(
            f"{path}: row {unknown['row'].iloc[0]}: label {unknown['Label'].iloc[0]!r} is not a class of the data "
            f"({', '.join(classes)})"
        )
    paths = [p if Path(p).is_absolute() else str((path.parent / p).resolve()) for p in frame["path"]]
    missing = [(row, p) for row, p in zip(frame["row"], paths, strict=True) if not Path(p).is_file()]
    if missing:
        raise DataError(f"{path}: row {missing[0][0]}: {missing[0][1]}: file not found ({len(missing)} in all)")
    ids = frame["img_IDS"] if "img_IDS" in frame.columns else pd.Series(paths)
    twice = ids[ids.duplicated()]
    if len(twice):
        raise DataError(f"{path}: {twice.iloc[0]!r} is listed twice")
    return pd.DataFrame(
        {"img_IDS": PSEUDO + ids.astype(str), "path": paths, "Label": frame["Label"], "row": frame["row"]}
    )


def without_labelled_images(extra: pd.DataFrame, labelled: pd.DataFrame, cfg: TrainConfig) -> pd.DataFrame:
    """The pseudo-labelled rows that are not labelled images themselves: the same file (by path), the same
    name (img_IDS), or a near copy of one (the thumbnail likeness that groups the split). Such a row would put
    a validation image, under a guessed label, on the training side; they are dropped, and a line says so."""
    import os

    from signvision.grouping.nearcopies import fingerprint_images, near_copies_of

    if extra.empty:
        return extra
    paths = {os.path.realpath(p) for p in labelled["path"]}
    same_path = np.array([os.path.realpath(p) in paths for p in extra["path"]])
    same_name = extra["img_IDS"].str.removeprefix(PSEUDO).isin(set(labelled["img_IDS"].astype(str))).to_numpy()
    rest = np.flatnonzero(~(same_path | same_name))
    near = np.zeros(len(extra), bool)
    if len(rest):
        both = fingerprint_images([*labelled["path"], *extra["path"].iloc[rest]], desc="pseudo-labels: near copies")
        n = len(labelled)
        near[rest] = near_copies_of(both.subset(np.arange(n)), both.subset(np.arange(n, n + len(rest))))
    dropped = same_path | same_name | near
    if dropped.any():
        logger.info(
            f"pseudo-labels: {int(dropped.sum())} of the {len(extra)} rows of {cfg.pseudo_labels} are labelled images "
            f"({int(same_path.sum())} the same file, {int((same_name & ~same_path).sum())} the same img_IDS, "
            f"{int(near.sum())} near copies), left out: they would train on validation images under a guessed "
            f"label (first: row {extra['row'].iloc[int(np.argmax(dropped))]})"
        )
    return extra[~dropped].reset_index(drop=True)


def with_pseudo_rows(split: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """`split` (of the labelled images) with every pseudo-labelled image of `train` added on the training side."""
    pseudo = train["img_IDS"][train["img_IDS"].str.startswith(PSEUDO)]
    if pseudo.empty:
        return split
    return pd.concat([split, pd.DataFrame({"img_IDS": pseudo, "fold": "train", "group": ""})], ignore_index=True)


def check_cache_fits(n: int, cfg: TrainConfig) -> None:
    """Refuse a decoded-image cache that cannot fit, before decoding anything."""
    need = n * cfg.image_size * cfg.image_size * 3
    if cfg.cache == "memory":
        import psutil

        free = psutil.virtual_memory().available
        if need > 0.7 * free:
            raise OptionError(
                f"caching {n} images needs {need / 2**30:.1f} GiB of memory, {free / 2**30:.1f} GiB is free; use a "
                "smaller `image_size` or `cache` disk|none",
                option="image_size",
                value=cfg.image_size,
            )
    elif cfg.cache == "disk":
        import shutil

        where = Path(cfg.cache_dir or Path.home() / ".cache" / "signvision")
        if where.exists() and not where.is_dir():
            raise OptionError("is a file, not a folder", option="cache_dir", value=where)
        probe = next((p for p in [where, *where.parents] if p.exists()), Path("/"))
        free = shutil.disk_usage(probe).free
        if need > 0.9 * free:
            raise OptionError(
                f"caching {n} images needs {need / 2**30:.1f} GiB on disk, {free / 2**30:.1f} GiB is free; use a "
                "smaller `image_size` or `cache` none",
                option="cache_dir",
                value=where,
            )


def prepare_run_data(
    cfg: TrainConfig,
    split_file: str | Path | None = None,
    *,
    rank: int = 0,
    classes: list[str] | None = None,
    leak_check: bool = False,
    table: DataTable | None = None,
    pseudo: bool = True,
    side: str | None = None,
) -> RunData:
    """Read the table, drop what the audit or bad files say, add the `pseudo_labels` images (unless not
    `pseudo`: evaluating needs only the labelled ones), decode (cache) every image, split.
    `classes`: the classes the data must have (a resumed or evaluated run's), checked before decoding.
    `leak_check`: also measure what the split leaks (RunData.info.leak). `table`: data already read.
    `side`: "val": only that side of `split_file` is decoded (the images a finished run is scored on), unless
    every image is decoded already (the cache); the split is not checked again."""
    dropped: list[str] = []
    table, dups, given = read_training_table(cfg, dropped, table)
    if classes is not None and table.classes != list(classes):
        raise DataError(
            f"its classes ({', '.join(table.classes)}) differ from the run's ({', '.join(classes)})",
            option="data",
            value=cfg.data or cfg.csv,
        )
    if cfg.pseudo_labels and pseudo:
        extra = without_labelled_images(read_pseudo_labels(cfg.pseudo_labels, table.classes), table.train, cfg)
        table.train = pd.concat([table.train, extra], ignore_index=True)
    # one side of a finished run's split alone, unless every image is decoded already (by the folds' training
    # in this process, say: then all are kept and nothing is decoded again)
    if side is not None and not already_decoded(table.train["path"].tolist(), cfg.image_size, cfg.cache, cfg.cache_dir):
        folds = read_split(split_file, table.train["img_IDS"])  # the whole file checked, then one side kept
        table.train = table.train[table.train["img_IDS"].isin(folds.loc[folds["fold"] == side, "img_IDS"])]
        table.train = table.train.reset_index(drop=True)
    task = Task(table.classes, cfg.target, loss=cfg.loss, label_smoothing=cfg.label_smoothing)
    teacher = teacher_targets(cfg.teacher, table.train, task) if cfg.teacher else None  # checked before decoding
    check_cache_fits(len(table.train), cfg)
    paths = table.train["path"].tolist()
    images, bad, messages = decode_all(paths, cfg.image_size, cache=cfg.cache, cache_dir=cfg.cache_dir, rank=rank)
    if bad:
        if not cfg.skip_bad_images:
            raise DataError(f"{messages[0]} ({len(bad)} bad image(s) in all; `skip_bad_images` drops them)")
        dropped += messages
        keep_rows = np.setdiff1d(np.arange(len(paths)), bad)
        table.train = table.train.iloc[keep_rows].reset_index(drop=True)
        if images is not None:
            images = images[keep_rows]
        if teacher is not None:
            teacher = teacher[keep_rows]
    if len(table.train) == 0:
        raise DataError(f"every image was dropped ({len(dropped)}); first: {dropped[0]}", option="skip_bad_images")
    fingerprints = None
    labelled = replace(table, train=table.train[~table.train["img_IDS"].str.startswith(PSEUDO)])
    if split_file is not None:
        split, info = read_split(split_file, labelled.train["img_IDS"]), SplitInfo("file")
    elif given is not None:
        split, info = given.assign(group="")[given["img_IDS"].isin(set(table.train["img_IDS"]))], SplitInfo("folders")
    else:
        split, info, fingerprints = draw_split(
            labelled, split_by=cfg.split_by, val_fraction=cfg.val_fraction, seed=cfg.seed, dups=dups
        )
    split = with_pseudo_rows(split, table.train)
    data = RunData(table, task, split, images, dropped, cfg.image_size, info, teacher)
    if side is not None:
        pass  # one side of a finished run's split: checked when the run was trained
    elif split_file is not None:
        check_split(data, option="split", value=split_file)
    elif given is not None:  # the layout's own validation folder (val/)
        check_split(data, remedy="the val/ folder needs images of two classes or more")
    else:
        check_split(data, option="val_fraction", value=cfg.val_fraction)
    if leak_check:  # what reached training, pseudo-labelled images included
        check_leaks(table.train, split, info, None if len(table.train) > len(labelled.train) else fingerprints)
    return data


def teacher_targets(teacher: str, train: pd.DataFrame, task: Task) -> np.ndarray:
    """A distilled run's training targets, row for row with `train`: the teacher's out-of-fold probabilities
    (training/teacher.py), and the label itself for a pseudo-labelled image (the teacher never saw it)."""
    from signvision.training.teacher import read_teacher

    pseudo = train["img_IDS"].str.startswith(PSEUDO).to_numpy()
    targets = np.zeros((len(train), task.num_outputs), np.float32)
    labels = task.encode(train["Label"])
    if task.binary:
        targets[:, 0] = labels
    else:
        targets[np.arange(len(train)), labels] = 1.0
    if (~pseudo).any():
        targets[~pseudo] = read_teacher(teacher, train["img_IDS"][~pseudo], task)
    return targets


def check_split(data: RunData, remedy: str = "use a larger `val_fraction`", **blame) -> None:
    """Both sides need images, every class needs training images, and validation needs two classes (ROC
    AUC and the temperature need them) and at least as many images as there are classes. `blame`: the
    option and value an error names (the split file, or the validation fraction that drew the split);
    `remedy`: what to do about a validation side too small."""
    if blame.get("option") == "split":
        remedy = "the split file's validation side needs more images"
    train, val = data.rows("train"), data.rows("val")
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"the split leaves no {'training' if len(train) == 0 else 'validation'} images", **blame)
    labels = data.table.train["Label"]
    untrained = sorted(set(labels) - set(labels.iloc[train]))
    if untrained:
        where = f" (no train/{untrained[0]}/ folder with images)" if not blame else ""
        raise DataError(
            f"the split leaves class {untrained[0]!r} without a training image{where} ({len(untrained)} class(es) "
            "in all)",
            **blame,
        )
    val_targets = np.unique(data.task.encode(labels.iloc[val]))
    if len(val_targets) < 2:
        raise DataError(
            f"the validation side has {len(val)} image(s) of one class only; ROC AUC and calibration need two "
            f"({remedy})",
            **blame,
        )
    if len(val) < data.task.num_outputs:
        raise DataError(
            f"the validation side has {len(val)} images for {len(data.task.classes)} classes ({remedy})",
            **blame,
        )
