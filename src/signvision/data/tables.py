"""Data tables: the layouts on disk read into tables of image ids, paths and labels.

Layouts (detected by `read_data`, which names the one it found):

    zindi          DIR/Train.csv (img_IDS,Label), optional DIR/Test.csv (img_IDS),
                   DIR/Images/<img_IDS>.<jpg|jpeg|png> (the extension in any case)
    folder         DIR/<class name>/<image files>
    split folders  DIR/train/<class name>/...; optional DIR/val|valid|validation/<class name>/... (then the
                   validation set); optional DIR/test/<class name>/... (a labelled test set) or DIR/test/*.jpg
    csv            any CSV (`csv`, `image_col`, `label_col`, `image_dir`): the image column holds file names,
                   with or without extension, relative to `image_dir`
    frame          a pandas DataFrame with a column of paths and one of labels (`table_from_frame`)

Every layout becomes tables with the columns `img_IDS`, `path`, `Label` and `row` (where in the file the
image was listed, for messages); unlabelled test tables have no `Label`. Folder layouts name an image by
its path relative to DIR (`train/five/IMG_0042.jpg`). Hidden files and folders (`.ipynb_checkpoints/`,
macOS's `._x.jpg`) are not data, nor is a folder that holds a signvision run or audit. Reading a table
decodes no image: that is `images.py`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import DataError, MissingError, OptionError
from signvision.files import SIGNVISION_FILES

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
ZINDI_EXTENSIONS = (".jpg", ".jpeg", ".png")
VAL_FOLDERS = ("val", "valid", "validation")


@dataclass
class DataTable:
    """What `read_data` found: the labelled training images, an optional given validation set, optional test
    images (labelled or not), the layout's name and where it lies.

    Attributes:
        train: img_IDS, path, Label, row (the row or line where the image was listed, for messages).
        val: the layout's own validation images (split folders with a val/ folder), else None.
        test: img_IDS, path (+ Label when labelled), else None.   layout, root: what and where.

    Example:
        >>> table = read_data("../shared/data/sign-digits")
        >>> table.classes[:2], len(table.test)
        (['eight', 'five'], 412)
        >>> table.train[["img_IDS", "Label"]].head(2)
                    img_IDS  Label
        0  ImageID_00OR7OO8    two
        1  ImageID_03KP7H39  three
    """

    train: pd.DataFrame  # img_IDS, path, Label, row
    test: pd.DataFrame | None  # img_IDS, path (+ Label when the test images are labelled)
    layout: str  # "zindi" | "folder" | "split folders" | "csv" | "frame"
    root: Path | None
    val: pd.DataFrame | None = None  # img_IDS, path, Label, row: the layout's own validation images

    @property
    def classes(self) -> list[str]:
        """The class names, sorted (as numbers when every name is a whole number: "2" before "10")."""
        names = self.train["Label"].unique().tolist()
        if names and all(n.isdigit() for n in names):
            return sorted(names, key=int)
        return sorted(names)

    @property
    def labelled(self) -> pd.DataFrame:
        """Every labelled image the split may use: training images, then the given validation images."""
        return self.train if self.val is None else pd.concat([self.train, self.val], ignore_index=True)


def is_hidden(name: str) -> bool:
    """Hidden files and folders (`.ipynb_checkpoints`, `._x.jpg`, `.DS_Store`) and macOS's `__MACOSX`."""
    return name.startswith(".") or name == "__MACOSX"


def read_csv(path: Path, required: Sequence[str], what: str = "") -> pd.DataFrame:
    """Read a CSV as strings (so a label 'NA' or '01' stays as written) with one-line errors."""
    if not path.is_file():
        raise MissingError(f"{path}: file not found{what}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header row with {', '.join(required)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    for col in required:
        if col not in df.columns:
            if len(df.columns) == 1:
                for sep in (";", "\t", "|"):
                    if sep in df.columns[0]:
                        raise DataError(
                            f"{path}: columns are separated by {sep!r}, not commas; save it as a comma-separated CSV "
                            f"(found the header {df.columns[0]!r})"
                        )
            raise DataError(f"{path}: no column {col!r} (columns are: {', '.join(df.columns)})")
    if len(df) == 0:
        raise DataError(f"{path}: has a header but no rows")
    df["row"] = np.arange(len(df)) + 2  # line number in the file, header is line 1
    return df


def _is_file(entry: os.DirEntry) -> bool:
    """A regular file (not a folder, FIFO or device; a symlink loop or a dangling link is not one either)."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _index_images(image_dir: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Map both 'name.ext' and 'name' (extension any case) to the file name, listing the folder once; also
    the names without extension that more than one file answers to ('X' for X.jpg and X.png)."""
    index: dict[str, str] = {}
    stems: dict[str, list[str]] = {}
    with os.scandir(image_dir) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS and not is_hidden(entry.name) and _is_file(entry):
                index[entry.name] = entry.name
                stems.setdefault(stem, []).append(entry.name)
    for stem, names in stems.items():
        index.setdefault(stem, names[0])
    return index, {s: sorted(n) for s, n in stems.items() if len(n) > 1}


def _attach_paths(
    df: pd.DataFrame, id_col: str, image_dir: Path, csv_path: Path, skip_missing: bool, dropped: list[str]
) -> pd.DataFrame:
    if not image_dir.is_dir():
        raise MissingError(f"{image_dir}: image folder not found (needed by {csv_path.name})")
    index, ambiguous = _index_images(image_dir)
    keys = df[id_col].str.strip()
    unclear = keys.isin(ambiguous.keys())
    if unclear.any():
        r = df[unclear.values].iloc[0]
        names = ambiguous[r[id_col].strip()]
        raise DataError(
            f"{csv_path} row {r['row']}: {id_col}={r[id_col]!r} could be any of {', '.join(names)} in {image_dir}; "
            f"rename the others or write the extension in {csv_path.name}"
        )
    names = keys.map(index.get)
    missing = names.isna()
    if missing.any():
        if not skip_missing:
            r = df[missing].iloc[0]
            raise DataError(
                f"{csv_path} row {r['row']}: no image for {id_col}={r[id_col]!r} in {image_dir} "
                f"(tried {', '.join(ZINDI_EXTENSIONS)}, any case); {int(missing.sum())} rows "
                "lack an image; `skip_bad_images` drops them"
            )
        dropped += [f"{csv_path.name} row {r['row']} ({r[id_col]}): image not found" for _, r in df[missing].iterrows()]
    df = df[~missing].copy()
    df["path"] = [str(image_dir / n) for n in names[~missing]]
    ids = df[id_col].str.strip()
    repeated = ids.duplicated()
    if repeated.any():
        r = df[repeated.values].iloc[0]
        first = df[(ids == ids[repeated].iloc[0]).values].iloc[0]
        raise DataError(
            f"{csv_path} row {r['row']}: {id_col}={r[id_col]!r} appears twice (first at row {first['row']})"
        )
    twice = df["path"].duplicated(keep=False)
    if twice.any():
        rows = df[twice]
        first = rows.iloc[0]
        other = rows[rows["path"] == first["path"]].iloc[1]
        raise DataError(
            f"{csv_path} rows {first['row']} and {other['row']}: {first[id_col]!r} and {other[id_col]!r} name the "
            f"same file {Path(first['path']).name}"
        )
    return df


def _labelled(df: pd.DataFrame, id_col: str, label_col: str, csv_path: Path) -> pd.DataFrame:
    labels = df[label_col].str.strip()
    if (labels == "").any():
        r = df[labels == ""].iloc[0]
        raise DataError(f"{csv_path} row {r['row']}: empty {label_col!r} for {id_col}={r[id_col]!r}")
    return pd.DataFrame(
        {"img_IDS": df[id_col].str.strip().values, "path": df["path"].values, "Label": labels.values, "row": df["row"]}
    ).reset_index(drop=True)


def _unlabelled(df: pd.DataFrame) -> pd.DataFrame:
    """img_IDS, path of rows `_attach_paths` has checked (ids unique, one file each)."""
    return pd.DataFrame({"img_IDS": df["img_IDS"].str.strip().values, "path": df["path"].values})


# ----------------------------------------------------------------------------------------------------
# Folders of images
# ----------------------------------------------------------------------------------------------------
def holds_signvision_output(folder: Path) -> bool:
    """A run, cross-validation, ablation or audit folder (written inside a data folder, it is no class)."""
    return any((folder / f).exists() for f in SIGNVISION_FILES)


def data_folders(root: Path) -> list[Path]:
    """The sub-folders of `root` that may hold data: not hidden, not signvision's own outputs."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name) and not holds_signvision_output(p))


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files of a folder (sorted; hidden ones and, when recursive, hidden folders left out)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d) and not holds_signvision_output(Path(dirpath, d)))
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(name) and path.is_file():
                found.append(path)
        if not recursive:
            break
    return sorted(found)


def _has_images(folder: Path) -> bool:
    return bool(image_files(folder))


def class_folders(root: Path, base: Path) -> pd.DataFrame:
    """img_IDS (the path relative to `base`), path, Label (the sub-folder's name), row of DIR/<class>/<files>.
    A class folder whose images are not where they are read (in a sub-folder, or in a format signvision does
    not read) is a DataError naming it, once the folder holds other classes: no class vanishes unsaid."""
    rows, empty = [], []
    for class_dir in data_folders(root):
        files = image_files(class_dir)
        rows += [(f.relative_to(base).as_posix(), str(f), class_dir.name) for f in files]
        if not files:
            empty.append(class_dir)
    if rows and empty:
        raise DataError(f"{empty[0]}: {why_no_images(empty[0])} (the other class folders hold images)")
    table = pd.DataFrame(rows, columns=["img_IDS", "path", "Label"])
    table["row"] = np.arange(len(table)) + 1
    return table


def why_no_images(folder: Path) -> str:
    """What a class folder without readable images holds instead, in words."""
    nested = image_files(folder, recursive=True)
    if nested:
        return f"its {len(nested)} images are in sub-folders (e.g. {nested[0].relative_to(folder)}); put them in it"
    other = sorted({p.suffix.lower() or p.name for p in folder.iterdir() if p.is_file() and not is_hidden(p.name)})
    if other:
        return (
            f"no image signvision reads ({', '.join(other[:4])} files; it reads {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return "an empty class folder"


def _split_folder(root: Path, names: Sequence[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def detect_layout(root: Path) -> str:
    """Which layout a data folder has: zindi, split folders, folder, or none."""
    if (root / "Train.csv").is_file():
        return "zindi"
    if (root / "Images").is_dir() or (root / "Test.csv").is_file():
        return "zindi without Train.csv"
    if (root / "train").is_dir() and any(_has_images(p) for p in data_folders(root / "train")):
        return "split folders"
    if root.is_dir() and any(_has_images(p) for p in data_folders(root)):
        return "folder"
    return "none"


def _read_split_folders(root: Path) -> DataTable:
    train = class_folders(root / "train", root)
    val_dir = _split_folder(root, VAL_FOLDERS)
    val = class_folders(val_dir, root) if val_dir is not None else None
    if val is not None and len(val) == 0:
        raise DataError(f"{val_dir}: no class sub-folders with images (a validation folder holds DIR/<class>/...)")
    test_dir = _split_folder(root, ("test",))
    test = None
    if test_dir is not None:
        test = class_folders(test_dir, root)
        loose = image_files(test_dir)
        if len(test) and loose:
            raise DataError(
                f"{test_dir}: {len(loose)} images lie beside its class folders (e.g. {loose[0].name}): labelled test "
                "images go in test/<class>/, unlabelled ones elsewhere"
            )
        if len(test) == 0:  # a flat folder of unlabelled test images
            files = image_files(test_dir, recursive=True)
            test = pd.DataFrame({"img_IDS": [f.relative_to(root).as_posix() for f in files], "path": map(str, files)})
    return DataTable(train, test, "split folders", root, val)


# ----------------------------------------------------------------------------------------------------
# Reading any layout
# ----------------------------------------------------------------------------------------------------
def read_data(
    data: str | Path | pd.DataFrame | DataTable | None = None,
    *,
    csv: str | Path | None = None,
    image_col: str = "img_IDS",
    label_col: str = "Label",
    image_dir: str | Path | None = None,
    skip_missing: bool = False,
    dropped: list[str] | None = None,
) -> DataTable:
    """Read a data set into a `DataTable`: a folder in any layout (module docstring), a CSV, or a DataFrame.

    Args:
        data: a data folder, a DataFrame of `path` and `Label` (see `table_from_frame`), a saved frame CSV,
            or a DataTable (returned as it is).
        csv, image_col, label_col, image_dir: any other CSV: its image and label columns, and the folder its
            image names are relative to.
        skip_missing: drop rows without an image (described in `dropped`) instead of raising DataError.

    Returns:
        a DataTable (train, val, test, layout, root; `classes`).

    Example:
        >>> table = read_data("../shared/data/sign-digits")
        >>> table.layout, len(table.train), table.classes[:3]
        ('zindi', 1650, ['eight', 'five', 'four'])
    """
    dropped = [] if dropped is None else dropped
    if isinstance(data, DataTable):
        return data
    if isinstance(data, pd.DataFrame):
        return table_from_frame(data, image_col="path" if image_col == "img_IDS" else image_col, label_col=label_col)
    if csv is not None:
        csv = Path(csv)
        image_dir = Path(image_dir) if image_dir else (Path(data) if data else csv.parent)
        df = _attach_paths(read_csv(csv, [image_col, label_col]), image_col, image_dir, csv, skip_missing, dropped)
        return DataTable(_labelled(df, image_col, label_col, csv), None, "csv", image_dir)
    if data is None:
        raise OptionError("no data folder given (or give `csv` and `image_dir`)", option="data")
    root = Path(data)
    if not root.exists():
        raise MissingError("folder not found", option="data", value=root)
    if root.is_file() and root.suffix.lower() == ".csv":  # a DataFrame saved with its paths (a run's data.csv)
        return table_from_frame(read_csv(root, ["path", label_col], " (a CSV of path,Label)"), label_col=label_col)
    layout = detect_layout(root)
    if layout == "zindi":
        train_csv = root / "Train.csv"
        df = _attach_paths(
            read_csv(train_csv, ["img_IDS", label_col]), "img_IDS", root / "Images", train_csv, skip_missing, dropped
        )
        test = None
        if (root / "Test.csv").is_file():
            tdf = read_csv(root / "Test.csv", ["img_IDS"])
            test = _unlabelled(_attach_paths(tdf, "img_IDS", root / "Images", root / "Test.csv", skip_missing, dropped))
        return DataTable(_labelled(df, "img_IDS", label_col, train_csv), test, "zindi", root)
    if layout == "split folders":
        return _read_split_folders(root)
    if layout == "folder":
        return DataTable(class_folders(root, root), None, "folder", root)
    if layout == "zindi without Train.csv":
        raise MissingError(
            f"{root / 'Train.csv'}: file not found (the folder has the Zindi layout's Images/ or "
            "Test.csv; Train.csv with img_IDS,Label is needed to train)"
        )
    raise DataError(
        "no Train.csv (Zindi layout), no train/ folder of classes (split folders) and no class sub-folders with "
        "images (folder layout); for another CSV give `csv` `image_col` `label_col` `image_dir`",
        option="data",
        value=root,
    )


def table_from_frame(frame: pd.DataFrame, *, image_col: str = "path", label_col: str = "Label") -> DataTable:
    """A DataTable from a DataFrame with a column of image paths and one of labels (ids: the paths, or an
    `img_IDS` column if the frame has one)."""
    for col in (image_col, label_col):
        if col not in frame.columns:
            raise DataError(f"the DataFrame has no column {col!r} (columns: {', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise DataError("the DataFrame has no rows: no images to train on")
    for col, what in ((image_col, "path"), (label_col, "label")):
        blank = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
        if blank.any():
            raise DataError(
                f"DataFrame row {int(np.flatnonzero(blank)[0])} (index {frame.index[blank][0]!r}): no {what} in "
                f"column {col!r} ({int(blank.sum())} rows like it)"
            )
    paths = frame[image_col].map(lambda p: os.path.abspath(str(p)))  # from here on, whatever the working folder
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise MissingError(f"{missing[0]}: file not found ({len(missing)} of the DataFrame's paths are missing)")
    ids = frame["img_IDS"].astype(str) if "img_IDS" in frame.columns else frame[image_col].astype(str)
    if ids.duplicated().any():
        raise DataError(f"the DataFrame lists {ids[ids.duplicated()].iloc[0]!r} twice")
    train = pd.DataFrame({"img_IDS": ids.values, "path": paths.values, "Label": label_strings(frame[label_col])})
    train["row"] = np.arange(len(train)) + 1
    return DataTable(train, None, "frame", None)


def label_strings(labels: pd.Series) -> np.ndarray:
    """Labels as class names: whole numbers (ints, or floats that are whole) as "0", "1", ..., "10" (not "10.0"),
    anything else as its text, stripped."""
    if pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels):
        numbers = labels.to_numpy(dtype=float)
        if np.all(numbers == np.round(numbers)):
            return labels.astype(np.int64).astype(str).to_numpy()
    return labels.astype(str).str.strip().to_numpy()


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
    """Images to predict: DIR/Test.csv of a Zindi folder, DIR/test/ of split folders, a Test-style CSV, or
    every image file in a folder and its sub-folders (each named by its path relative to the folder)."""
    root = Path(data)
    if (root / "Test.csv").is_file():
        table = read_data(root)
        assert table.test is not None
        return table.test
    if root.is_file() and root.suffix.lower() == ".csv":
        df = read_csv(root, ["img_IDS"])
        image_dir = root.parent / "Images" if (root.parent / "Images").is_dir() else root.parent
        return _unlabelled(_attach_paths(df, "img_IDS", image_dir, root, False, []))
    if root.is_dir() and detect_layout(root) == "split folders" and (root / "test").is_dir():
        root = root / "test"
    if root.is_dir():
        files = image_files(root, recursive=True)
        if files:
            return pd.DataFrame({"img_IDS": [f.relative_to(root).as_posix() for f in files], "path": map(str, files)})
    if not root.exists():
        raise MissingError("not found", option="data", value=root)
    raise DataError("no Test.csv and no image files (in it or its sub-folders) to predict", option="data", value=root)


def read_labelled(data: str | Path) -> DataTable:
    """Labelled images to score a run on (`evaluate --data`): the labelled test/ folder of split folders,
    a folder of class sub-folders, a Zindi folder (its Train.csv), or a CSV of img_IDS,Label whose images
    lie beside it or in Images/ beside it. DataError for unlabelled images."""
    root = Path(data)
    if root.is_file() and root.suffix.lower() == ".csv":
        df = read_csv(root, ["img_IDS", "Label"], " (a labelled CSV has img_IDS,Label)")
        image_dir = root.parent / "Images" if (root.parent / "Images").is_dir() else root.parent
        return DataTable(
            _labelled(_attach_paths(df, "img_IDS", image_dir, root, False, []), "img_IDS", "Label", root),
            None,
            "csv",
            root.parent,
        )
    if root.is_dir() and detect_layout(root) == "split folders":
        table = read_data(root)
        if table.test is None:
            raise DataError(
                "a split-folders layout without a test/ folder: nothing held out to score", option="data", value=root
            )
        if len(table.test) == 0:
            raise DataError("its test/ folder holds no images", option="data", value=root)
        if "Label" not in table.test.columns:
            raise DataError(
                "its test/ folder holds images without class sub-folders: unlabelled, nothing to score them against",
                option="data",
                value=root,
            )
        return DataTable(table.test.assign(row=np.arange(len(table.test)) + 1), None, "split folders (test)", root)
    if root.is_dir() and detect_layout(root) == "none" and image_files(root, recursive=True):
        raise DataError(
            "holds images but no labels (no class sub-folders, no Train.csv); use `predict` for unlabelled images",
            option="data",
            value=root,
        )
    return read_data(root)
