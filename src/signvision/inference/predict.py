"""What `Run.predict` returns, and the forms of "images" it takes.

`Predictions` holds calibrated probabilities, one row per image, one column per class in the run's class
order (one column, P(target), for a `target` run): the rows of a submission. In a notebook it shows each
image with its top classes as bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import DataError
from signvision.files import atomic_write, refuse_overwrite


def image_table(images) -> tuple[pd.DataFrame, list[np.ndarray] | None]:
    """(img_IDS + path table, None) for a folder, a Zindi folder, a CSV, a list of files or a DataFrame with a
    `path` column; (img_IDS table, the arrays) for image arrays (H, W, 3) uint8 RGB or one (N, H, W, 3)."""
    from signvision.data.tables import read_unlabelled

    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], np.ndarray):
        for i, a in enumerate(images):
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
                raise DataError(f"image {i}: expected an RGB uint8 array (H, W, 3), got {a.dtype} {a.shape}")
        return pd.DataFrame({"img_IDS": [f"image {i}" for i in range(len(images))]}), list(images)
    if isinstance(images, pd.DataFrame):
        if "path" not in images.columns:
            raise DataError(f"the DataFrame has no column 'path' (columns: {', '.join(map(str, images.columns))})")
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
        >>> preds = run.predict("../shared/data/sign-digits")       # doctest: +SKIP
        >>> preds.top(3).head(); preds.to_csv("submission.csv")     # doctest: +SKIP
    """

    def __init__(self, frame: pd.DataFrame, paths: list[str] | None = None, arrays: list[np.ndarray] | None = None):
        self.frame, self.paths, self.arrays = frame, paths, arrays

    @classmethod
    def of(cls, task, table: pd.DataFrame, probs: np.ndarray, arrays=None) -> Predictions:
        from signvision.inference.members import submission_frame

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
        """Write the submission (img_IDS + probability columns) atomically; an existing file only with
        `overwrite`."""
        path = Path(path)
        refuse_overwrite(path, overwrite)
        with atomic_write(path, newline="") as f:
            self.frame.to_csv(f, index=False, float_format="%.6f")
        return path

    def _repr_html_(self) -> str:
        from signvision.reports.html import predictions_card

        return predictions_card(self)

    def __repr__(self) -> str:
        head = self.top(3).head(10).to_string(index=False)
        return f"<Predictions: {len(self)} images x {len(self.classes)} classes>\n{head}"
