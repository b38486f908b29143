"""Data tables: the three layouts on disk read into one table of image ids, paths and labels.

Layouts (detected by `read_data`, which names the one it found):

    zindi   DIR/Train.csv (img_IDS,Label), optional DIR/Test.csv (img_IDS), DIR/Images/<img_IDS>.<jpg|jpeg|png>
    folder  DIR/<class name>/<image files>
    csv     --csv FILE --image-col C --label-col C --image-dir D   (any CSV; the image column holds file
            names, with or without extension, relative to D)

Every layout becomes one table with the columns `img_IDS`, `path` and `Label` (test tables have no
`Label`). Reading a table decodes no image: that is `images.py`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
ZINDI_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass
class DataTable:
    """What `read_data` found: labelled images, optional unlabelled test images, and the layout name."""

    train: pd.DataFrame  # img_IDS, path, Label (+ row: the CSV line number, for error messages)
    test: pd.DataFrame | None  # img_IDS, path
    layout: str  # "zindi" | "folder" | "csv"
    root: Path

    @property
    def classes(self) -> list[str]:
        return sorted(self.train["Label"].unique().tolist())


def read_csv(path: Path, required: Sequence[str], what: str = "") -> pd.DataFrame:
    """Read a CSV as strings (so a label 'NA' or '01' stays as written) with one-line errors."""
    if not path.is_file():
        raise UserError(f"{path}: file not found{what}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty (expected a header row with {', '.join(required)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    for col in required:
        if col not in df.columns:
            if len(df.columns) == 1:
                for sep in (";", "\t", "|"):
                    if sep in df.columns[0]:
                        raise UserError(
                            f"{path}: columns are separated by {sep!r}, not commas; save it as a comma-separated CSV "
                            f"(found the header {df.columns[0]!r})"
                        )
            raise UserError(f"{path}: no column {col!r} (columns are: {', '.join(df.columns)})")
    if len(df) == 0:
        raise UserError(f"{path}: has a header but no rows")
    df["row"] = np.arange(len(df)) + 2  # line number in the file, header is line 1
    return df


def _index_images(image_dir: Path) -> dict[str, str]:
    """Map both 'name.ext' and 'name' (extension any case) to the file name, listing the folder once."""
    index: dict[str, str] = {}
    with os.scandir(image_dir) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS:
                index[entry.name] = entry.name
                index.setdefault(stem, entry.name)
    return index


def _attach_paths(
    df: pd.DataFrame, id_col: str, image_dir: Path, csv_path: Path, skip_missing: bool, dropped: list[str]
) -> pd.DataFrame:
    if not image_dir.is_dir():
        raise UserError(f"{image_dir}: image folder not found (needed by {csv_path.name})")
    index = _index_images(image_dir)
    names = df[id_col].map(lambda s: index.get(s.strip()))
    missing = names.isna()
    if missing.any():
        if not skip_missing:
            r = df[missing].iloc[0]
            raise UserError(
                f"{csv_path} row {r['row']}: no image for {id_col}={r[id_col]!r} in {image_dir} "
                f"(tried {', '.join(ZINDI_EXTENSIONS)}, any case); {int(missing.sum())} rows "
                "lack an image; --skip-bad-images drops them"
            )
        dropped += [f"{csv_path.name} row {r['row']} ({r[id_col]}): image not found" for _, r in df[missing].iterrows()]
    df = df[~missing].copy()
    df["path"] = [str(image_dir / n) for n in names[~missing]]
    ids = df[id_col].str.strip()
    repeated = ids.duplicated()
    if repeated.any():
        r = df[repeated.values].iloc[0]
        first = df[(ids == ids[repeated].iloc[0]).values].iloc[0]
        raise UserError(
            f"{csv_path} row {r['row']}: {id_col}={r[id_col]!r} appears twice (first at row {first['row']})"
        )
    twice = df["path"].duplicated(keep=False)
    if twice.any():
        rows = df[twice]
        first = rows.iloc[0]
        other = rows[rows["path"] == first["path"]].iloc[1]
        raise UserError(
            f"{csv_path} rows {first['row']} and {other['row']}: {first[id_col]!r} and {other[id_col]!r} name the "
            f"same file {Path(first['path']).name}"
        )
    return df


def _labelled(df: pd.DataFrame, id_col: str, label_col: str, csv_path: Path) -> pd.DataFrame:
    labels = df[label_col].str.strip()
    if (labels == "").any():
        r = df[labels == ""].iloc[0]
        raise UserError(f"{csv_path} row {r['row']}: empty {label_col!r} for {id_col}={r[id_col]!r}")
    return pd.DataFrame(
        {
            "img_IDS": df[id_col].str.strip().values,
            "path": df["path"].values,
            "Label": labels.values,
            "row": df["row"].values,
        }
    )


def _unlabelled(df: pd.DataFrame) -> pd.DataFrame:
    """img_IDS, path of rows `_attach_paths` has checked (ids unique, one file each)."""
    return pd.DataFrame({"img_IDS": df["img_IDS"].str.strip().values, "path": df["path"].values})


def detect_layout(root: Path) -> str:
    """Which layout a data folder has: zindi, folder, or none."""
    if (root / "Train.csv").is_file():
        return "zindi"
    if (root / "Images").is_dir() or (root / "Test.csv").is_file():
        return "zindi without Train.csv"
    if root.is_dir() and any(p.is_dir() and _has_images(p) for p in root.iterdir()):
        return "folder"
    return "none"


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


def read_data(
    data: str | Path | None = None,
    *,
    csv: str | Path | None = None,
    image_col: str = "img_IDS",
    label_col: str = "Label",
    image_dir: str | Path | None = None,
    skip_missing: bool = False,
    dropped: list[str] | None = None,
) -> DataTable:
    """Read any of the three layouts into a `DataTable`. Rows without an image raise `UserError`,
    or with `skip_missing` are dropped and described in `dropped`."""
    dropped = [] if dropped is None else dropped
    if csv is not None:
        csv = Path(csv)
        image_dir = Path(image_dir) if image_dir else (Path(data) if data else csv.parent)
        df = read_csv(csv, [image_col, label_col])
        df = _attach_paths(df, image_col, image_dir, csv, skip_missing, dropped)
        return DataTable(_labelled(df, image_col, label_col, csv), None, "csv", image_dir)
    if data is None:
        raise UserError("--data: no data folder given (or use --csv FILE --image-dir DIR)")
    root = Path(data)
    if not root.exists():
        raise UserError(f"--data {root}: folder not found")
    layout = detect_layout(root)
    if layout == "zindi":
        train_csv = root / "Train.csv"
        df = read_csv(train_csv, ["img_IDS", label_col])
        df = _attach_paths(df, "img_IDS", root / "Images", train_csv, skip_missing, dropped)
        train = _labelled(df, "img_IDS", label_col, train_csv)
        test = None
        if (root / "Test.csv").is_file():
            tdf = read_csv(root / "Test.csv", ["img_IDS"])
            tdf = _attach_paths(tdf, "img_IDS", root / "Images", root / "Test.csv", skip_missing, dropped)
            test = _unlabelled(tdf)
        return DataTable(train, test, "zindi", root)
    if layout == "folder":
        rows = []
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for f in sorted(class_dir.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    rows.append((f"{class_dir.name}/{f.name}", str(f), class_dir.name))
        train = pd.DataFrame(rows, columns=["img_IDS", "path", "Label"])
        train["row"] = np.arange(len(train)) + 1
        return DataTable(train, None, "folder", root)
    if layout == "zindi without Train.csv":
        raise UserError(
            f"{root / 'Train.csv'}: file not found (the folder has the Zindi layout's Images/ or "
            "Test.csv; Train.csv with img_IDS,Label is needed to train)"
        )
    raise UserError(
        f"--data {root}: no Train.csv (Zindi layout) and no class sub-folders with images "
        "(folder layout); for another CSV use --csv FILE --image-col C --label-col C --image-dir D"
    )


def read_data_of(cfg, *, skip_missing: bool, dropped: list[str]) -> DataTable:
    """`read_data` with the data options of a config (TrainConfig or AuditConfig: data, csv, image_col,
    label_col, image_dir)."""
    return read_data(
        cfg.data,
        csv=cfg.csv,
        image_col=cfg.image_col,
        label_col=cfg.label_col,
        image_dir=cfg.image_dir,
        skip_missing=skip_missing,
        dropped=dropped,
    )


def read_unlabelled(data: str | Path) -> pd.DataFrame:
    """Images to predict: DIR/Test.csv of a Zindi folder, or every image file in a flat folder."""
    root = Path(data)
    if (root / "Test.csv").is_file():
        table = read_data(root)
        assert table.test is not None
        return table.test
    if root.is_file() and root.suffix.lower() == ".csv":
        df = read_csv(root, ["img_IDS"])
        df = _attach_paths(df, "img_IDS", root.parent / "Images", root, False, [])
        return _unlabelled(df)
    if root.is_dir():
        files = sorted(f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            return pd.DataFrame({"img_IDS": [f.stem for f in files], "path": [str(f) for f in files]})
    raise UserError(f"--data {root}: no Test.csv and no image files to predict")
