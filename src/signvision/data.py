"""Reading labelled images: the three layouts on disk, the image decoder, the decoded-image cache,
the `Dataset` and the `DataLoader`s.

Layouts (detected by `read_data`, which names the one it found):

    zindi   DIR/Train.csv (img_IDS,Label), optional DIR/Test.csv (img_IDS), DIR/Images/<img_IDS>.<jpg|jpeg|png>
    folder  DIR/<class name>/<image files>
    csv     --csv FILE --image-col C --label-col C --image-dir D   (any CSV; the image column holds file
            names, with or without extension, relative to D)

Every layout becomes one table with the columns `img_IDS`, `path` and `Label` (test tables have no
`Label`). Images are decoded with OpenCV into RGB uint8 (grayscale, RGBA and 16-bit files included),
resized once to the training size and, by default, kept in a cache so that later epochs never decode
a JPEG again. The loader hands out uint8 tensors; `Runtime.prepare` (runtime.py) normalises them on
the device, which moves four times fewer bytes to a GPU than float32 would.

Very large files are decoded at reduced size: a JPEG over `LARGE_PIXELS` is read by OpenCV at 1/2, 1/4
or 1/8 of its side (libjpeg scales while decoding, so the full image never sits in memory); any image
over `MAX_PIXELS` in another format is refused with its name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from signvision.errors import BadImage, UserError
from signvision.runtime import cpu_threads, show_progress

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
ZINDI_EXTENSIONS = (".jpg", ".jpeg", ".png")
LARGE_PIXELS = 4096 * 4096  # JPEGs above this are decoded at reduced size (1/2, 1/4 or 1/8 a side)
MAX_PIXELS = 16384 * 16384  # other images above this are refused

cv2.setNumThreads(1)  # decoding runs in our own thread pool / loader workers; nested pools only fight


# ----------------------------------------------------------------------------------------------------
# The table of images
# ----------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into an RGB uint8 array (H, W, 3), whatever its channels and bit depth."""
    return decode_image(np.fromfile(str(path), dtype=np.uint8), path)  # fromfile: non-ASCII paths too


def decode_image(buf: np.ndarray, path: str | Path, pixels: int | None = None) -> np.ndarray:
    """The bytes of an image file (named `path` in errors) -> RGB uint8 (H, W, 3).

    JPEGs are decoded in colour with their EXIF orientation applied; other formats unchanged first so
    that 16-bit and RGBA files are seen as such. A JPEG without its end marker (a truncated download)
    is refused rather than silently padded with grey. `pixels`: image_pixels(buf) if the caller has it.
    """
    if buf.size == 0:
        raise BadImage(f"{path}: empty file")
    is_jpeg = buf[:2].tobytes() == b"\xff\xd8"
    flag = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    pixels = image_pixels(buf) if pixels is None else pixels
    if pixels > LARGE_PIXELS and is_jpeg:
        reduced = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
        factor = next((f for f in (2, 4, 8) if pixels / f**2 <= LARGE_PIXELS), 8)
        flag = reduced[factor]
    elif pixels > MAX_PIXELS:
        raise BadImage(f"{path}: {pixels / 1e6:.0f} megapixels, over the limit of {MAX_PIXELS / 1e6:.0f}")
    if is_jpeg and not _ends_with_eoi(buf):
        raise BadImage(f"{path}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(buf, flag)
    if img is None:
        raise BadImage(f"{path}: not a readable image")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:  # float TIFF/EXR: assume 0..1
        img = (np.clip(img.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[0], img.shape[1]), cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_pixels(buf: np.ndarray) -> int:
    """Width x height from the file's header alone (Pillow reads no pixels for this); 0 if unknown."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(buf.tobytes())) as im:
            return int(im.size[0]) * int(im.size[1])
    except Exception:  # not a format Pillow knows: OpenCV decides below
        return 0


def _ends_with_eoi(buf: np.ndarray) -> bool:
    """A JPEG ends with the EOI marker FF D9, possibly followed by zero padding."""
    nonzero = np.flatnonzero(buf)
    return len(nonzero) > 1 and buf[nonzero[-1]] == 0xD9 and buf[nonzero[-1] - 1] == 0xFF


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize (the aspect ratio is not kept); area interpolation when shrinking."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrink = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def load_resized(path: str, size: int) -> np.ndarray:
    """Read an image file and resize it to size x size (RGB uint8)."""
    return resize(read_image(path), size)


# ----------------------------------------------------------------------------------------------------
# The decoded-image cache: every image decoded and resized once
# ----------------------------------------------------------------------------------------------------
def cache_key(paths: Sequence[str], size: int) -> str:
    """Changes when any path, file size, modification time or the image size changes."""
    h = hashlib.sha1(f"size={size}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def decode_all(
    paths: Sequence[str],
    size: int,
    *,
    cache: str = "memory",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    desc: str = "decoding images",
) -> tuple[np.ndarray | None, list[int], list[str]]:
    """Decode and resize every image once, on a thread pool (OpenCV releases the GIL).

    Returns (array, bad_indices, bad_messages). `cache`: "memory" keeps a (N, size, size, 3) uint8 array
    in RAM; "disk" writes a uint8 memmap under `cache_dir` (reused by later runs while the files and
    the size are unchanged); "none" only checks that every image decodes and returns None.
    """
    n = len(paths)
    threads = threads or cpu_threads()
    arr: np.ndarray | None = None
    done_marker = None
    if cache == "memory":
        arr = np.empty((n, size, size, 3), dtype=np.uint8)
    elif cache == "disk":
        cache_dir = Path(cache_dir or Path.home() / ".cache" / "signvision")
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = cache_key(paths, size)
        file = cache_dir / f"images-{key}-{n}x{size}.u8"
        done_marker = file.with_suffix(".json")
        if done_marker.is_file() and file.is_file():
            info = json.loads(done_marker.read_text())
            arr = np.memmap(file, dtype=np.uint8, mode="r", shape=(n, size, size, 3))
            return arr, info["bad"], info["messages"]
        arr = np.memmap(file, dtype=np.uint8, mode="w+", shape=(n, size, size, 3))
    elif cache != "none":
        raise UserError(f"--cache {cache}: expected memory, disk or none")

    bad: list[int] = []
    messages: list[str] = []

    def work(i: int) -> tuple[int, str | None]:
        try:
            img = load_resized(paths[i], size)
        except BadImage as e:
            return i, str(e)
        if arr is not None:
            arr[i] = img
        return i, None

    with ThreadPoolExecutor(threads) as pool:
        for i, err in tqdm(
            pool.map(work, range(n), chunksize=64),
            total=n,
            desc=desc,
            unit="img",
            leave=False,
            disable=n < 500 or not show_progress(),
        ):
            if err is not None:
                bad.append(i)
                messages.append(err)
                if arr is not None:
                    arr[i] = 0
    if cache == "disk":
        assert isinstance(arr, np.memmap) and done_marker is not None
        arr.flush()
        done_marker.write_text(json.dumps({"bad": bad, "messages": messages, "paths": len(paths), "size": size}))
        arr = np.memmap(arr.filename, dtype=np.uint8, mode="r", shape=(n, size, size, 3))
    return arr, bad, messages


# ----------------------------------------------------------------------------------------------------
# Dataset and loaders
# ----------------------------------------------------------------------------------------------------
class ImageDataset(Dataset):
    """Images (from the cache, or decoded on the fly) with integer targets, or unlabelled with ids.

    Labelled items are `(image, target)`, unlabelled items `(image, img_id)`; `image` is a uint8 tensor
    (3, size, size). `transform` is an albumentations pipeline that keeps the size (augmentation).
    `__getitems__` fetches a whole batch at once, so a batch of cached images costs one numpy
    fancy-index instead of `batch_size` Python calls.
    """

    def __init__(
        self,
        paths: Sequence[str],
        size: int,
        *,
        targets: Sequence[int] | np.ndarray | None = None,
        ids: Sequence[str] | None = None,
        images: np.ndarray | None = None,
        transform=None,
    ):
        self.paths = list(paths)
        self.size = size
        self.targets = None if targets is None else np.asarray(targets, dtype=np.int64)
        self.ids = list(ids) if ids is not None else [Path(p).stem for p in self.paths]
        self.images = images  # cached (N, size, size, 3) uint8, or None
        self.transform = transform
        assert self.targets is None or len(self.targets) == len(self.paths)
        assert images is None or len(images) == len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        return self.images[i] if self.images is not None else load_resized(self.paths[i], self.size)

    def _augment(self, img: np.ndarray) -> np.ndarray:
        return self.transform(image=img)["image"] if self.transform is not None else img

    def __getitem__(self, i: int):
        img = torch.from_numpy(np.ascontiguousarray(self._augment(self.load(i)))).permute(2, 0, 1)
        return (img, int(self.targets[i])) if self.targets is not None else (img, self.ids[i])

    def __getitems__(self, indices: list[int]):
        idx = np.asarray(indices)
        if self.images is not None and self.transform is None:
            batch = np.ascontiguousarray(self.images[idx])  # (B, H, W, 3)
        else:
            batch = np.stack([self._augment(self.load(int(i))) for i in idx])
        images = torch.from_numpy(batch).permute(0, 3, 1, 2)  # (B, 3, H, W), uint8, a view
        if self.targets is not None:
            return images, torch.from_numpy(self.targets[idx])
        return images, [self.ids[int(i)] for i in idx]


def collate_batch(batch):
    """`__getitems__` already returns a collated batch; a list of single items is stacked here."""
    if isinstance(batch, tuple):
        return batch
    images = torch.stack([b[0] for b in batch])
    second = [b[1] for b in batch]
    return images, (torch.tensor(second) if isinstance(second[0], int) else second)


class ShardSampler(Sampler[int]):
    """Evaluation sampler for several processes: rank r takes indices r, r+W, r+2W, ... so every image
    is seen exactly once over all ranks (unlike DistributedSampler, which pads with duplicates)."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _worker_init(_: int) -> None:
    """One thread per loader process, and a distinct augmentation stream per process (albumentations
    pipelines carry their own generator, which every worker would otherwise copy unchanged)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(info.seed % 2**32)


def auto_workers(requested: int, *, cached: bool, augmented: bool, cuda: bool) -> int:
    """Loader processes: `requested` if >= 0. Otherwise none when batches are slices of the in-memory
    cache (nothing left to parallelise), else one per spare core (all cores but the one the model
    needs; on CUDA the model runs on the GPU, so up to 8)."""
    if requested >= 0:
        return requested
    cores = cpu_threads(limit=1024)
    if cached and not augmented:
        return 0
    return min(8, cores) if cuda else max(0, min(8, cores - 1))


def make_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    shuffle: bool = False,
    workers: int = 0,
    pin_memory: bool = False,
    sampler: Sampler | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """Shuffling draws from torch's global generator, which `fit` seeds at every epoch, so that a
    resumed run sees the same batches as an uninterrupted one."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=collate_batch,
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )
