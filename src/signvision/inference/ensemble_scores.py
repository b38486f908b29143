"""An ensemble scored on its out-of-fold images: fold k's model of every run on fold k's images, merged as
`predict` merges them (`predict_images`), with the figures of `evaluate --run ENSEMBLE` and its TTA gain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signvision.inference.members import Members, RunModel, input_size, load_members, validation_set
from signvision.inference.predict import predict_images
from signvision.inference.results import VALIDATION, output_folder, scored_figures, write_result
from signvision.models.augment import TTA, as_tta


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
    with_tta = ensemble_oof(members, tta=views, device=device, batch_size=batch_size)[2] if views is not None else None
    groups = ensemble_groups(Path(run), table["img_IDS"])
    figures = scored_figures(y, probs, members, groups, with_tta=with_tta, tta=views)
    result = {"cross_validated": True, "ensemble": True, "temperature": members.temperature, **figures}
    result["run"] = str(run)
    write_result(output_folder(run, VALIDATION, views), result)
    return result
