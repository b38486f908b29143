"""An ensemble scored on its out-of-fold images: fold k's model of every run on fold k's images, merged as
`predict` merges them (`predict_images`), with the figures of `evaluate --run ENSEMBLE` and its TTA gain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signvision.inference.members import Members, RunModel, input_size, load_members, validation_set
from signvision.inference.predict import predict_images
from signvision.inference.results import (
    VALIDATION,
    describe_columns,
    describe_gain,
    headline_figures,
    output_folder,
    write_result,
)
from signvision.logs import get_logger
from signvision.models.augment import TTA, as_tta
from signvision.training.metrics import compute_metrics, paired_bootstrap

logger = get_logger(__name__)


def ensemble_oof(members: Members, *, tta: TTA | None = None, device: str = "auto", batch_size: int = 128):
    """An ensemble's out-of-fold images (img_IDS, path), labels and merged probabilities: fold k's model of
    every run on fold k's images, through `predict_images` (the path `predict` and `serve` take)."""
    by_fold: dict[str, list[RunModel]] = {}
    for m in members:
        by_fold.setdefault(m.folder.name, []).append(m)
    tables, ys, probs = [], [], []
    for fold_members in by_fold.values():
        images = validation_set(fold_members[0], None)
        table = pd.DataFrame({"img_IDS": images.ids, "path": images.paths})
        subset = Members(fold_members, weights=members.weights, merge=members.merge, temperature=members.temperature)
        probs.append(predict_images(subset, table, tta=tta, device=device, batch_size=batch_size, workers=0))
        tables.append(table)
        ys.append(images.targets)
    return pd.concat(tables, ignore_index=True), np.concatenate(ys), np.concatenate(probs)


def ensemble_groups(run: Path, ids: pd.Series) -> list[str]:
    """The group of near copies of each out-of-fold image of an ensemble (its folds.csv)."""
    from signvision.grouping.splits import split_group_keys_of

    return split_group_keys_of(pd.read_csv(run / "folds.csv", dtype=str, keep_default_na=False), ids)


def evaluate_ensemble(run: Path, *, tta: TTA | str | None = None, device: str = "auto", batch_size: int = 128) -> dict:
    """An ensemble's out-of-fold figures (calibrated, and with `tta` with its paired gain), kept in
    RUN/evaluations/run-validation[-tta-<mode>]/evaluation.json."""
    members = load_members(run)
    views = as_tta(tta, image_size=input_size(members), seed=members[0].cfg.seed)
    table, y, probs = ensemble_oof(members, device=device, batch_size=batch_size)
    names = members[0].task.names
    columns = {"calibrated": compute_metrics(y, probs, names)}
    result = {"cross_validated": True, "ensemble": True, "images": int(len(y)), "temperature": members.temperature}
    result |= {
        "tta": views.spec if views is not None else "none",
        "without_tta": headline_figures(columns["calibrated"]),
    }
    if views is not None:
        with_tta = ensemble_oof(members, tta=views, device=device, batch_size=batch_size)[2]
        columns[f"TTA {views.spec}"] = compute_metrics(y, with_tta, names)
        result["with_tta"] = headline_figures(columns[f"TTA {views.spec}"])
        result["tta_gain"] = paired_bootstrap(y, with_tta, probs, ensemble_groups(Path(run), table["img_IDS"]))
    logger.info(describe_columns(columns, members, len(y)))
    if views is not None:
        logger.info(describe_gain(result["tta_gain"], views.spec))
    result["run"] = str(run)
    write_result(output_folder(run, VALIDATION, views), result)
    return result
