"""The validation split: seeded, stratified by label, and by default group-aware.

A *group* is a set of images that must stay on one side of the split: near copies of one photo and the
neighbouring frames of one clip (`nearcopies.py` finds them in seconds), and the copies and sequences of an
audit when one is given (`signvision audit`). Splitting groups instead of images keeps a copy of a training
image out of the validation set, where it would make the score measure memory. `split_by="random"` is the
course's plain random split of images (an audit's groups, when given, are still kept together).

`split(data)` (`sv.split`) draws the split of a data set: the audit's groups (`load_audit`) joined with the
near copies found now (`split_groups`), drawn (`draw_split`), and what it leaks measured (`check_leaks`).

The split is written as `split.csv` (`img_IDS,fold,group`; fold `train` or `val`; group empty for an image
that has no near copy) and read back with `split=FILE` so that several runs can share it. A class whose
images are all one group cannot be on both sides: its group stays in training, and the split says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.data.tables import DataTable, read_csv
from signvision.errors import DataError, MissingError, OptionError
from signvision.files import atomic_write, refuse_overwrite
from signvision.grouping.groups import group_keys, join_groups

SPLIT_BY = ("near-copies", "random")


@dataclass
class SplitInfo:
    """How a split was made and what it leaks (what `split` returns beside the split; a run's split.json).

    Attributes:
        split_by: near-copies | random | file | folders.
        grouping: images, grouped_images, groups, largest_group (near copies and neighbouring frames found).
        leak: val_images, val_near_copy_share (validation images with a near copy in training),
            memory_accuracy (a 1-nearest-neighbour on thumbnails across the split).
        train_only_classes: classes whose images are all one group, kept in training.

    Example:
        >>> split, info = signvision.split("../shared/data/sign-digits")
        >>> print(info.describe())
        split by near-copies: 70 of 1650 images are near copies or neighbouring frames, in 24 groups
        (largest 17), each kept on one side
        leak check: 0.0% of the 555 validation images have a near copy in training; memory baseline
        (1-nearest-neighbour on thumbnails) accuracy 0.692
    """

    split_by: str  # near-copies | random | file | folders
    grouping: dict = field(default_factory=dict)  # images, grouped_images, groups, largest_group
    leak: dict = field(default_factory=dict)  # val_images, val_near_copy_share, memory_accuracy
    train_only_classes: list[str] = field(default_factory=list)  # classes whose images are all one group

    def describe(self) -> str:
        """One or two lines for a run's log."""
        g, leak = self.grouping, self.leak
        lines = []
        if g and self.split_by == "random" and g["grouped_images"]:  # an audit's groups, with a random split
            lines.append(
                f"split at random, with the audit's copies and sequences: {g['grouped_images']} of {g['images']} "
                f"images in {g['groups']} groups (largest {g['largest_group']}), each kept on one side; other near "
                "copies were not looked for"
            )
        elif g and self.split_by == "random":
            lines.append(f"split at random ({g['images']} images): near copies were not looked for, nor kept together")
        elif g:
            lines.append(
                f"split by {self.split_by}: {g['grouped_images']} of {g['images']} images are near copies or "
                f"neighbouring frames, in {g['groups']} groups (largest {g['largest_group']}), each kept on one side"
            )
        if self.train_only_classes:
            lines.append(
                f"classes whose images are all one group, kept in training (validation cannot measure them): "
                f"{', '.join(self.train_only_classes)}"
            )
        share = leak.get("val_near_copy_share")
        if self.split_by == "random" and share:
            lines.append(
                f"warning: a random split: {share:.0%} of the validation images have a near copy in training, so "
                "their score partly measures memory (the default split keeps near copies together)"
            )
        if share is not None:
            lines.append(
                f"leak check: {leak['val_near_copy_share']:.1%} of the {leak['val_images']} validation images have a "
                f"near copy in training; memory baseline (1-nearest-neighbour on thumbnails) accuracy "
                f"{leak['memory_accuracy']:.3f}"
            )
        return "\n".join(lines)


def make_split(
    ids: pd.Series, labels: pd.Series, *, val_fraction: float = 0.33, seed: int = 0, groups: pd.Series | None = None
) -> pd.DataFrame:
    """Return a DataFrame `img_IDS,fold,group`. Groups (any hashable; NaN = alone) never straddle the split.

    Groups are split, stratified by their most common label, with scikit-learn's `train_test_split`; a
    class with a single group keeps it in training; when a class has too few groups to be stratified, the
    split falls back to a plain random one.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise OptionError("must be between 0 and 1", option="val_fraction", value=val_fraction)
    ids = pd.Series(ids).reset_index(drop=True).astype(str)
    labels = pd.Series(labels).reset_index(drop=True)
    grouped = pd.Series(groups).reset_index(drop=True) if groups is not None else pd.Series([np.nan] * len(ids))
    group_of = pd.Series(group_keys(grouped, ids)).astype(str)
    table = pd.DataFrame({"img_IDS": ids, "label": labels, "group": group_of})
    group_label = table.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    groups_per_class = group_label.value_counts()
    alone = set(groups_per_class[groups_per_class < 2].index)  # a class in one group (or image) trains
    candidates = group_label[~group_label.isin(alone)]
    names = candidates.index.to_numpy()
    if len(names) < 2:
        if alone:
            raise DataError(
                f"split: {len(alone)} classes each have one image (or one group of near copies), which stays in "
                "training: nothing is left to validate on; give each class at least 2 images (or 2 groups)"
            )
        raise DataError(f"split: need at least 2 images (or groups of near copies) to split, got {len(names)}")
    counts = candidates.value_counts()
    n_val = max(1, round(val_fraction * len(names)))
    if n_val >= len(names):
        raise OptionError(
            f"leaves no training images ({len(names)} images or groups to split)",
            option="val_fraction",
            value=val_fraction,
        )
    stratify = candidates.to_numpy() if counts.min() >= 2 and n_val >= len(counts) else None
    if len(names) - n_val < len(counts):
        raise OptionError(
            f"leaves {len(names) - n_val} training images (or groups) for {len(counts)} classes; use a smaller one",
            option="val_fraction",
            value=val_fraction,
        )
    _, val_groups = train_test_split(names, test_size=val_fraction, random_state=seed, shuffle=True, stratify=stratify)
    val_groups = set(val_groups)
    for _, of_class in candidates.groupby(candidates).groups.items():  # the unstratified fallback may take a class
        if val_groups >= set(of_class):  # whole: one of its groups goes back, so that the split can be trained on
            val_groups.discard(sorted(of_class)[0])
    fold = np.where(table["group"].isin(val_groups), "val", "train")
    return pd.DataFrame({"img_IDS": ids, "fold": fold, "group": grouped.where(grouped.notna(), "").astype(str)})


def single_group_classes(labels: pd.Series, groups: pd.Series | None) -> list[str]:
    """Classes all of whose images are in one group (they cannot be on both sides of a split)."""
    if groups is None:
        return []
    keys = group_keys(pd.Series(groups).reset_index(drop=True), pd.Series(range(len(labels))).astype(str))
    table = pd.DataFrame({"label": pd.Series(labels).values, "group": keys})
    per_class = table.groupby("label")["group"].nunique()
    return sorted(per_class[per_class < 2].index.astype(str))


def read_split(path: str | Path, ids: pd.Series) -> pd.DataFrame:
    """Read a split.csv and check it covers exactly the given images (a `group` column is optional)."""
    path = Path(path)
    if not path.is_file():
        raise MissingError("file not found", option="split", value=path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty (expected img_IDS,fold)", option="split", value=path) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"not a readable CSV ({str(e).splitlines()[0]})", option="split", value=path) from None
    if list(df.columns[:2]) != ["img_IDS", "fold"]:
        raise DataError(f"expected columns img_IDS,fold, found {','.join(df.columns)}", option="split", value=path)
    bad = df[~df["fold"].isin(["train", "val"])]
    if len(bad):
        raise DataError(
            f"row {bad.index[0] + 2}: fold {bad['fold'].iloc[0]!r} is not train/val", option="split", value=path
        )
    twice = df[df["img_IDS"].duplicated()]
    if len(twice):
        raise DataError(
            f"row {twice.index[0] + 2}: {twice['img_IDS'].iloc[0]!r} is listed twice", option="split", value=path
        )
    known = set(ids)
    df = df[df["img_IDS"].isin(known)]  # images dropped since (a cleaned table) are simply not used
    missing = known - set(df["img_IDS"])
    if missing:
        raise DataError(
            f"{len(missing)} images of the data are not in it, e.g. {sorted(missing)[0]!r}", option="split", value=path
        )
    if "group" not in df.columns:
        df = df.assign(group="")
    return df[["img_IDS", "fold", "group"]].reset_index(drop=True)


def split_group_keys(split: pd.DataFrame) -> np.ndarray:
    """Each image of a split's group key for statistics (`groups.group_keys` of its `group` column)."""
    return group_keys(split["group"] if "group" in split.columns else None, split["img_IDS"])


def split_group_keys_of(split: pd.DataFrame, ids) -> list:
    """The group key (`split_group_keys`) of each image of `ids`, in their order (each one of `split`'s images)."""
    keyed = pd.Series(split_group_keys(split), index=split["img_IDS"].astype(str))
    return keyed.loc[pd.Series(ids).astype(str)].tolist()


# ----------------------------------------------------------------------------------------------------
# A data set's split: the audit's groups, near copies, the draw and the leak check (`sv.split`)
# ----------------------------------------------------------------------------------------------------
def load_audit(audit_dir: str | Path) -> tuple[set[str], pd.DataFrame]:
    """(ids kept by the audit's clean.csv, duplicates.csv) for `train --audit` and `split --audit`."""
    audit_dir = Path(audit_dir)
    if not audit_dir.is_dir():
        raise MissingError("folder not found", option="audit", value=audit_dir)
    clean = read_csv(audit_dir / "clean.csv", ["img_IDS"], " (is `audit` an audit folder?)")
    dups_path = audit_dir / "duplicates.csv"
    dups = pd.DataFrame(columns=["group", "img_IDS"])
    if dups_path.is_file() and dups_path.stat().st_size > 0:
        try:
            found = pd.read_csv(dups_path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
            raise DataError(f"{dups_path}: not a readable CSV ({str(e).splitlines()[0]})") from None
        if "img_IDS" not in found.columns or not ({"sequence", "group"} & set(found.columns)):
            raise DataError(f"{dups_path}: no columns img_IDS and sequence or group (is `audit` an audit folder?)")
        dups = found  # no rows: the audit found no copies
    return set(clean["img_IDS"]), dups


def audit_groups(ids: pd.Series, dups: pd.DataFrame | None) -> pd.Series | None:
    """The audit's sequence of each image (its copies and neighbouring video frames; NaN where it has none),
    from the audit's duplicates.csv, or None without an audit. A sequence must stay on one side of a split."""
    if dups is None:
        return None
    key = "sequence" if "sequence" in dups.columns else "group"  # sequences hold the groups and video frames
    named = {i: f"audit:{g}" for i, g in zip(dups["img_IDS"], dups[key], strict=False) if str(g).strip()}
    return pd.Series(ids).reset_index(drop=True).map(named)


def split_groups(
    table: DataTable, *, split_by: str = "near-copies", dups: pd.DataFrame | None = None, fingerprints=None
) -> tuple[pd.Series | None, dict, object]:
    """The groups a split of `table.train` keeps on one side: near copies and neighbouring frames (unless
    `split_by` is "random") joined with an audit's copies and sequences (its duplicates.csv, `dups`).
    Returns (group per image, NaN alone, or None for none at all; how many are grouped; the fingerprints)."""
    from signvision.grouping.nearcopies import (
        describe_groups,
        fingerprint_images,
        group_near_copies,
        whole_clip_classes,
    )

    if split_by not in SPLIT_BY:
        raise OptionError(f"expected one of {', '.join(SPLIT_BY)}", option="split_by", value=split_by)
    near = None
    if split_by == "near-copies":
        fingerprints = fingerprints or fingerprint_images(table.train["path"].tolist())
        group = whole_clip_classes(group_near_copies(fingerprints), fingerprints, table.train["Label"])
        near = pd.Series([f"n{g}" if g >= 0 else np.nan for g in group], dtype=object)
    groups = join_groups(near, audit_groups(table.train["img_IDS"], dups))
    stats = describe_groups(pd.factorize(groups)[0] if groups is not None else np.full(len(table.train), -1))
    return groups, stats, fingerprints


def draw_split(
    table: DataTable,
    *,
    split_by: str = "near-copies",
    val_fraction: float = 0.33,
    seed: int = 0,
    dups: pd.DataFrame | None = None,
    fingerprints=None,
) -> tuple[pd.DataFrame, SplitInfo, object]:
    """A new split of `table.train` with the groups of `split_groups` kept on one side. Returns (split, info,
    the fingerprints it computed or was given)."""
    groups, stats, fingerprints = split_groups(table, split_by=split_by, dups=dups, fingerprints=fingerprints)
    labels = table.train["Label"]
    split = make_split(table.train["img_IDS"], labels, val_fraction=val_fraction, seed=seed, groups=groups)
    info = SplitInfo(split_by, grouping=stats, train_only_classes=single_group_classes(labels, groups))
    return split, info, fingerprints


def check_leaks(train: pd.DataFrame, split: pd.DataFrame, info: SplitInfo, fingerprints=None) -> SplitInfo:
    """Fill `info.leak` for the images `train` (img_IDS, path, Label) split by `split` (img_IDS, fold): the
    share of validation images with a near copy in training, and the memory baseline."""
    from signvision.grouping.nearcopies import fingerprint_images, leak_check

    fingerprints = fingerprints or fingerprint_images(train["path"].tolist())
    fold = split.set_index("img_IDS")["fold"].loc[train["img_IDS"]].to_numpy()
    info.leak = leak_check(fingerprints, train["Label"].to_numpy(), fold == "val")
    return info


@dataclass
class Split:
    """What `sv.split` returns: `table` (img_IDS, fold "train" | "val", group) and `info` (how many images were
    grouped, the largest group, the leak check; `info.describe()` in words). `split, info = sv.split(...)`
    unpacks it; `to_csv(path)` writes the split and its .json beside it (what `train --split` reads).

    Example:
        >>> result = split("../shared/data/sign-digits", seed=0)
        >>> table, info = result; result.to_csv("split.csv")
        PosixPath('split.csv')
        >>> sorted(table["fold"].unique())
        ['train', 'val']
    """

    table: pd.DataFrame
    info: SplitInfo

    def __iter__(self):
        return iter((self.table, self.info))

    def to_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        import json

        path = check_split_out(path, overwrite)
        with atomic_write(path, newline="") as f:
            self.table.to_csv(f, index=False)
        with atomic_write(path.with_suffix(".json")) as f:
            f.write(json.dumps(asdict(self.info), indent=2, ensure_ascii=False) + "\n")
        return path

    def _repr_html_(self) -> str:
        counts = self.table["fold"].value_counts()
        return f"<pre>{self.info.describe()}\n{counts.get('train', 0)} train, {counts.get('val', 0)} val</pre>"


def check_split_out(path: str | Path, overwrite: bool = False) -> Path:
    """Where a split goes: a CSV whose .json beside it is new too (or `overwrite`); a user's file is never replaced."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        raise OptionError(
            "the split is a CSV; its .json is written beside it: give a name ending in .csv", option="out", value=path
        )
    refuse_overwrite(path, overwrite)
    refuse_overwrite(path.with_suffix(".json"), overwrite)
    return path


def split(
    data, *, audit: str | Path | None = None, split_by: str = "near-copies", val_fraction: float = 0.33, seed: int = 0
) -> Split:
    """A validation split of a data set (a folder, CSV or DataFrame that `read_data` reads, or a DataTable):
    near copies and neighbouring frames kept on one side (unless `split_by="random"`), with an audit's
    copies and sequences too when `audit` is given, and what the split leaks measured.

    Returns a `Split`: `.table` has the columns img_IDS, fold ("train" | "val"), group; `.info` says how many
    images were grouped, the largest group, and the leak check. It unpacks as `table, info`.

    Example:
        >>> table, info = split("../shared/data/sign-digits", val_fraction=0.33, seed=0)
        >>> int(table["fold"].value_counts()["val"]), info.leak["val_near_copy_share"]
        (555, 0.0)
    """
    from signvision.config import typed
    from signvision.data.tables import read_data

    val_fraction, seed = typed("val_fraction", val_fraction, "float"), typed("seed", seed, "int")
    if not 0 <= seed < 2**31:
        raise OptionError("must be between 0 and 2**31 - 1", option="seed", value=seed)
    table = read_data(data)
    dups = load_audit(audit)[1] if audit else None
    drawn, info, fingerprints = draw_split(table, split_by=split_by, val_fraction=val_fraction, seed=seed, dups=dups)
    return Split(drawn, check_leaks(table.train, drawn, info, fingerprints))
