"""Predicting new images with a trained run, and the one submission writer.

    predict_images   the images of a table (img_IDS, path) -> probabilities: each image decoded once, the
                     members' mean, TTA as one `TTA` object
    image_table      the forms "images" take (a folder, a Zindi folder, a CSV, files, a DataFrame, arrays)
    Predictions      what `Run.predict` returns: one row per image, one column per class in the run's class
                     order (one column, P(target), for a `target` run); `to_csv` writes the submission

In a notebook `Predictions` shows each image with its top classes as bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signvision.data.dataset import ImageDataset, auto_workers, make_loader
from signvision.data.images import resize
from signvision.data.tables import read_unlabelled
from signvision.errors import BadImage, DataError
from signvision.files import atomic_write, refuse_overwrite
from signvision.inference.members import RunModel, ensemble_probs, input_size, runtime_for
from signvision.models.augment import TTA, as_tta
from signvision.models.task import ID_COLUMN, Task
from signvision.progress import progress_bar
from signvision.training.runtime import pick_device


def image_table(images) -> tuple[pd.DataFrame, list[np.ndarray] | None]:
    """(img_IDS + path table, None) for a folder, a Zindi folder, a CSV, a list of files or a DataFrame with a
    `path` column; (img_IDS table, the arrays) for image arrays (H, W, 3) uint8 RGB or one (N, H, W, 3)."""
    if isinstance(images, np.ndarray) and images.ndim in (3, 4):
        images = list(images) if images.ndim == 4 else [images]  # a batch, or one image
    if isinstance(images, (str, Path)) and Path(images).is_file() and Path(images).suffix.lower() != ".csv":
        images = [images]  # one image file (a CSV lists images: read_unlabelled)
    if not isinstance(images, (str, Path, pd.DataFrame, list, tuple, np.ndarray)) and hasattr(images, "__iter__"):
        images = list(images)  # a generator of paths or arrays
    if isinstance(images, (list, tuple)) and not images:
        raise DataError("no images to predict (an empty list)")
    if isinstance(images, (list, tuple)):
        kinds = {isinstance(a, np.ndarray) for a in images}
        if len(kinds) > 1:
            raise DataError("give either image arrays or image files, not a mix of both")
    if isinstance(images, (list, tuple)) and isinstance(images[0], np.ndarray):
        for i, a in enumerate(images):
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 1:
                raise DataError(f"image {i}: expected an RGB uint8 array (H, W, 3), got {a.dtype} {a.shape}")
        return pd.DataFrame({"img_IDS": [f"image {i}" for i in range(len(images))]}), list(images)
    if isinstance(images, pd.DataFrame):
        if "path" not in images.columns:
            raise DataError(f"the DataFrame has no column 'path' (columns: {', '.join(map(str, images.columns))})")
        if images["path"].isna().any():
            raise DataError(f"DataFrame row {int(np.flatnonzero(images['path'].isna())[0])}: no path")
        ids = images["img_IDS"] if "img_IDS" in images.columns else images["path"]
        return pd.DataFrame({"img_IDS": ids.astype(str).values, "path": images["path"].astype(str).values}), None
    if isinstance(images, (list, tuple)):
        paths = [str(p) for p in images]
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise DataError(f"{missing[0]}: file not found ({len(missing)} of the {len(paths)} files)")
        return pd.DataFrame({"img_IDS": paths, "path": paths}), None
    return read_unlabelled(images), None


class Predictions:
    """What `Run.predict` returns: calibrated probabilities per image, `frame` (img_IDS + one column per class in
    the run's class order: a submission's rows). In a notebook it shows each image with its top classes.

    Example:
        >>> preds = load_run("runs/lenet").predict("../shared/data/sign-digits")   # Test.csv's images
        >>> len(preds), preds.classes[:3]
        (412, ['eight', 'five', 'four'])
        >>> preds.to_csv("submission.csv")
        PosixPath('submission.csv')
    """

    def __init__(self, frame: pd.DataFrame, paths: list[str] | None = None, arrays: list[np.ndarray] | None = None):
        self.frame, self.paths, self.arrays = frame, paths, arrays

    @classmethod
    def of(cls, task, table: pd.DataFrame, probs: np.ndarray, arrays=None) -> Predictions:
        frame = submission_frame(task, table["img_IDS"].tolist(), probs)
        return cls(frame, table["path"].tolist() if "path" in table.columns else None, arrays)

    @property
    def classes(self) -> list[str]:
        return list(self.frame.columns[1:])

    def __len__(self) -> int:
        return len(self.frame)

    def labels(self) -> pd.Series:
        """The most probable class of each image (for a one-column `target` run: target or not)."""
        probs = self.frame[self.classes]
        if len(self.classes) == 1:
            name = self.classes[0]
            return pd.Series(np.where(probs[name] >= 0.5, name, f"not {name}"), index=self.frame["img_IDS"])
        return pd.Series(probs.idxmax(axis=1).values, index=self.frame["img_IDS"])

    def top(self, k: int = 3) -> pd.DataFrame:
        """img_IDS, then the k most probable classes and their probabilities."""
        probs = self.frame[self.classes].to_numpy()
        order = np.argsort(-probs, axis=1)[:, :k]
        out = {"img_IDS": self.frame["img_IDS"]}
        for j in range(order.shape[1]):
            out[f"class_{j + 1}"] = [self.classes[c] for c in order[:, j]]
            out[f"p_{j + 1}"] = probs[np.arange(len(probs)), order[:, j]]
        return pd.DataFrame(out)

    def to_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the submission (img_IDS + probability columns) atomically: the one submission writer (the
        command line's `predict` writes through it). An existing file is replaced only with `overwrite`."""
        path = Path(path)
        refuse_overwrite(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, newline="") as f:  # a full disk or Ctrl-C leaves the earlier file, not half of one
            self.frame.to_csv(f, index=False, float_format="%.6f")
        return path

    def _repr_html_(self) -> str:
        from signvision.reports.cards import predictions_card

        return predictions_card(self)

    def __repr__(self) -> str:
        head = self.top(3).head(10).to_string(index=False)
        return f"<Predictions: {len(self)} images x {len(self.classes)} classes>\n{head}"


def read_images(table: pd.DataFrame) -> list[np.ndarray]:
    """The images of an image table's `path` column, decoded (RGB uint8, at their own size)."""
    from signvision.data.images import read_image

    return [read_image(p) for p in table["path"]]


def predict_images(
    members: list[RunModel],
    table: pd.DataFrame,
    *,
    tta: TTA | str | None = None,
    device: str = "auto",
    batch_size: int = 128,
    workers: int = -1,
    arrays: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Probabilities (N, K) or (N,) for the images of `table` (img_IDS, path; or `arrays`, RGB uint8 images in
    the table's order): the mean over members, merged over the views of `tta`. Each image is decoded once,
    whatever the number of members."""
    dev = pick_device(device)
    size, seed = input_size(members), members[0].cfg.seed
    views = as_tta(tta, image_size=size, seed=seed)
    ids = table[ID_COLUMN].tolist()
    if arrays is not None:
        cached = np.stack([resize(a, size) for a in arrays]) if arrays else np.zeros((0, size, size, 3), np.uint8)
        dataset = ImageDataset([""] * len(ids), size, ids=ids, images=cached)
    else:
        dataset = ImageDataset(table["path"].tolist(), size, ids=ids)
    cuda = dev.type == "cuda"
    n_workers = 0 if arrays is not None else auto_workers(workers, cached=False, augmented=True, cuda=cuda)
    loader = make_loader(dataset, batch_size=batch_size, workers=n_workers, pin_memory=dev.type == "cuda")
    for m in members:
        m.model.to(dev).eval()
    runtimes = [runtime_for(m, dev) for m in members]
    probs, seen = [], []
    bar = progress_bar(total=len(dataset), desc="predict", unit="img", min_total=500)
    try:
        for images, keys in loader:
            probs.append(ensemble_probs(members, runtimes, images, views))
            seen += list(keys)
            bar.update(len(keys))
    except BadImage as e:  # a corrupt image; from a loader process the message ends with the original
        raise BadImage(str(e).strip().splitlines()[-1].removeprefix("signvision.errors.BadImage: ")) from None
    finally:
        bar.close()
    if seen != ids:
        raise RuntimeError("predictions came back out of order")
    return np.concatenate(probs) if probs else np.zeros((0,))


def probability_columns(task: Task) -> list[str]:
    """The probability columns of a submission: one per class, in the run's class order (rows sum to 1),
    or the target alone for a `--target` run."""
    return [task.target] if task.target is not None else list(task.classes)


def probability_table(task: Task, probs: np.ndarray) -> np.ndarray:
    """Probabilities (N, K), or P(positive) (N,) of a binary run, as the columns of `probability_columns`."""
    if task.target is not None:
        return probs.reshape(-1, 1)
    if task.binary:
        return np.stack([1 - probs, probs], axis=1)
    return probs


def submission_frame(task: Task, ids: list[str], probs: np.ndarray) -> pd.DataFrame:
    """img_IDS + the probability columns (what `predict` writes)."""
    frame = pd.DataFrame(probability_table(task, probs), columns=probability_columns(task))
    frame.insert(0, ID_COLUMN, ids)
    return frame
