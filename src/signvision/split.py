"""The validation split: random, stratified by label, seeded, and group-aware.

A *group* is a set of images that must stay on one side of the split: copies of one photo found by
the audit. Splitting groups instead of images keeps a copy of a training image out of the validation
set, where it would make the score look better than it is. Without groups every image is its own.

The split is written as `split.csv` (`img_IDS,fold`, fold `train` or `val`) and read back with
`--split FILE` so that several runs can share it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from signvision.errors import UserError


def make_split(
    ids: pd.Series, labels: pd.Series, *, val_fraction: float = 0.33, seed: int = 0, groups: pd.Series | None = None
) -> pd.DataFrame:
    """Return a DataFrame `img_IDS,fold`. Groups (any hashable; NaN = alone) never straddle the split.

    Groups are split, stratified by their most common label, with scikit-learn's `train_test_split`;
    when a class has too few groups to be stratified, the split falls back to a plain random one.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"--val-fraction {val_fraction}: must be between 0 and 1")
    ids = pd.Series(ids).reset_index(drop=True)
    labels = pd.Series(labels).reset_index(drop=True)
    if groups is None:
        group_of = ids.astype(str)
    else:
        g = pd.Series(groups).reset_index(drop=True)
        group_of = g.where(g.notna(), "solo:" + ids.astype(str)).astype(str)
    table = pd.DataFrame({"img_IDS": ids, "label": labels, "group": group_of})
    group_label = table.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    names = group_label.index.to_numpy()
    if len(names) < 2:
        raise UserError(f"split: need at least 2 images (or duplicate groups), got {len(names)}")
    counts = group_label.value_counts()
    n_val = max(1, round(val_fraction * len(names)))
    stratify = group_label.to_numpy() if counts.min() >= 2 and n_val >= len(counts) else None
    _, val_groups = train_test_split(names, test_size=val_fraction, random_state=seed, shuffle=True, stratify=stratify)
    fold = np.where(table["group"].isin(set(val_groups)), "val", "train")
    return pd.DataFrame({"img_IDS": ids, "fold": fold})


def read_split(path: str | Path, ids: pd.Series) -> pd.DataFrame:
    """Read a split.csv and check it covers exactly the given images."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--split {path}: file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"--split {path}: the file is empty (expected img_IDS,fold)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"--split {path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    if list(df.columns[:2]) != ["img_IDS", "fold"]:
        raise UserError(f"--split {path}: expected columns img_IDS,fold, found {','.join(df.columns)}")
    bad = df[~df["fold"].isin(["train", "val"])]
    if len(bad):
        raise UserError(f"--split {path} row {bad.index[0] + 2}: fold {bad['fold'].iloc[0]!r} is not train/val")
    known = set(ids)
    df = df[df["img_IDS"].isin(known)]  # images dropped since (a cleaned table) are simply not used
    missing = known - set(df["img_IDS"])
    if missing:
        raise UserError(f"--split {path}: {len(missing)} images of the data are not in it, e.g. {sorted(missing)[0]!r}")
    return df[["img_IDS", "fold"]]


def write_split(args) -> Path:
    """`signvision split`: a split.csv for the data of `args` (data options, audit, val_fraction, seed, out)."""
    from signvision.errors import refuse_overwrite
    from signvision.rundata import audit_groups, load_audit
    from signvision.tables import read_data

    out = Path(args.out)
    refuse_overwrite(out)
    table = read_data(
        args.data, csv=args.csv, image_col=args.image_col, label_col=args.label_col, image_dir=args.image_dir
    )
    groups = audit_groups(table.train["img_IDS"], load_audit(args.audit)[1] if args.audit else None)
    split = make_split(
        table.train["img_IDS"], table.train["Label"], val_fraction=args.val_fraction, seed=args.seed, groups=groups
    )
    split.to_csv(out, index=False)
    counts = split["fold"].value_counts()
    print(
        f"wrote {out}: {counts.get('train', 0)} train, {counts.get('val', 0)} val images"
        + (f"; {int(groups.notna().sum())} images in duplicate groups kept together" if groups is not None else "")
    )
    return out
