"""Knowledge distillation's targets: a teacher's out-of-fold probabilities, one row per training image.

Hinton, Vinyals and Dean (2015), "Distilling the Knowledge in a Neural Network": a small network trained to
match a larger model's (or an ensemble's) probabilities learns more from each image than from its label alone,
because the probabilities also say which other classes the image resembles. Here the teacher is a `--folds`
run or an ensemble of them: its `oof.csv` holds, for every training image, the calibrated probabilities of
models that did not train on that image, so the targets are what the teacher *predicts* for a new image, not
what it memorised. `train --teacher T` (and `signvision distill T`) trains on them; the validation images are
still scored against their labels, so every figure of the run means what it always means.

    read_teacher     TEACHER (a folder with oof.csv, or the CSV itself) -> (N, outputs) targets for N images
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import DataError, MissingError
from signvision.models.task import Task

TOLERANCE = 1e-3  # how far a row of per-class probabilities may be from adding up to 1 (oof.csv keeps 6 digits)


def teacher_file(teacher: str | Path) -> Path:
    """The CSV a teacher names: FOLDER/oof.csv (a finished `--folds` run or ensemble), or the CSV itself."""
    path = Path(teacher)
    file = path / "oof.csv" if path.is_dir() else path
    if not file.is_file():
        what = "has no oof.csv: give a finished --folds run or ensemble" if path.is_dir() else "does not exist"
        raise MissingError(f"{teacher} {what}", option="teacher")
    return file


def read_teacher(teacher: str | Path, ids, task: Task) -> np.ndarray:
    """The teacher's probabilities of the images `ids`, as training targets: (len(ids), task.num_outputs)
    float32, in the task's class order (a binary task: the probability of its positive class). A one-line
    DataError naming the file, column or row if a class, an image or a probability is missing or wrong.

    Example:
        >>> targets = read_teacher("runs/ksl-ensemble", table.train["img_IDS"], task)   # doctest: +SKIP
        >>> targets.shape, targets.sum(1).round(3).min()                                # doctest: +SKIP
        ((1650, 9), 1.0)
    """
    from signvision.data.tables import read_csv

    file = teacher_file(teacher)
    table = read_csv(file, ["img_IDS"])
    columns = task.names[-1:] if task.binary else list(task.classes)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{file}: no column {missing[0]!r}: the teacher was trained on other classes", option="teacher")
    table = table.drop_duplicates("img_IDS").set_index("img_IDS")
    wanted = pd.Index([str(i) for i in ids])
    absent = wanted[~wanted.isin(table.index)]
    if len(absent):
        raise DataError(
            f"{file}: no row for {absent[0]!r} ({len(absent)} of the {len(wanted)} training images in all): distil "
            "from a teacher trained with --folds on the same data",
            option="teacher",
        )
    rows = table.loc[wanted]
    probs = rows[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    if not bad.any() and not task.binary:
        bad[np.abs(probs.sum(axis=1) - 1) > TOLERANCE, 0] = True
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"{file}: row {rows['row'].iloc[i]} ({wanted[i]!r}): {columns[j]!r} {rows[columns[j]].iloc[i]!r} is not "
            "a probability (or the row does not add up to 1)",
            option="teacher",
        )
    return probs.astype(np.float32)
