"""Pseudo-labels: a trained run's confident predictions on unlabelled images (the images to predict: a new
capture session, a challenge's test set), as a table that `train --pseudo-labels` adds to the training images.

Lee, "Pseudo-Label: the simple and efficient semi-supervised learning method for deep neural networks"
(ICML 2013 workshop): train again on the unlabelled images the first model is sure of, labelled with its
guess. Competitions use it as a second round: round one (an ensemble) labels the test images, round two trains
on the labelled images plus the confident test images, and is scored on those same test images. No test label
is ever read: only the images.

    pseudo_labels(run, images, threshold=0.9)   -> img_IDS, path, Label, confidence (the kept images)

The kept images join the training side of every fold and split, never a validation side: the validation
figures stay on images with a person's label.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from signvision.config import PSEUDO_THRESHOLD
from signvision.errors import DataError, OptionError
from signvision.files import atomic_write, refuse_overwrite

COLUMNS = ["img_IDS", "path", "Label", "confidence"]


def pseudo_labels(
    run, images, *, threshold: float = PSEUDO_THRESHOLD, tta="none", device: str = "auto"
) -> pd.DataFrame:
    """The unlabelled images a run is sure of, labelled with its guess: what a second round trains on.

    Args:
        run: the first round, a `Run` (`sv.load_run(folder)`: a run, a `--folds` run or an ensemble).
        images: a folder (sub-folders included), a Zindi folder (its Test.csv), a CSV, a DataFrame with `path`.
        threshold: keep an image when its most probable class has a calibrated probability at least this.
        tta, device: as for `Run.predict`.

    Returns:
        a DataFrame img_IDS, path (absolute), Label (the class), confidence (its probability), most confident
        first; `.attrs["images"]` says how many images were labelled in all.

    Example:
        >>> first = sv.load_run("runs/ksl-ensemble")
        >>> table = pseudo_labels(first, "../shared/data/sign-digits", threshold=0.9)   # Test.csv's images
        >>> table.to_csv("pseudo.csv", index=False); list(table.columns)
        ['img_IDS', 'path', ...]
    """
    from signvision.inference.predict import image_table

    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise OptionError("must be a probability between 0 and 1 (e.g. 0.9)", option="threshold", value=threshold)
    task = run.members[0].task
    if task.target is not None or len(task.classes) < 2:
        raise OptionError(
            "pseudo-labels need a run of two classes or more without --target", option="run", value=run.folder
        )
    table, arrays = image_table(images)
    if arrays is not None:
        raise DataError("pseudo-labels are kept as image files: give a folder, files or a DataFrame with `path`")
    predictions = run.predict(table, tta=tta, device=device).frame
    probs = predictions[task.classes].to_numpy()
    best = probs.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "img_IDS": table["img_IDS"].to_numpy(),
            "path": [str(Path(p).resolve()) for p in table["path"]],
            "Label": [task.classes[k] for k in best],
            "confidence": probs.max(axis=1),
        }
    )
    kept = frame[frame["confidence"] >= threshold].sort_values("confidence", ascending=False, kind="stable")
    kept = kept.reset_index(drop=True)
    kept.attrs["images"] = len(frame)  # how many were labelled, kept or not
    return kept


def write_pseudo_labels(table: pd.DataFrame, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a `pseudo_labels` table as the CSV `train --pseudo-labels` reads (never over a file unless
    `overwrite`)."""
    path = Path(path)
    refuse_overwrite(path, overwrite)
    with atomic_write(path, newline="") as f:
        table[COLUMNS].to_csv(f, index=False, float_format="%.6f")
    return path
