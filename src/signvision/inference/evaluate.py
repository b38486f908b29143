"""Scoring a run on its own validation images: each member on the images it was validated on (a run's validation
split, or every training image once by the fold model that did not train on it), one loop, and the figures
uncalibrated, calibrated and with test-time views.

    score_members      each member on its own labelled loader: what evaluate, the report and the CV summary share
    scored_set, table_scored_set   what a page shows of scored images (reports/run_report.py: ScoredSet)
    evaluate_members   their figures uncalibrated, calibrated and with test-time views (`Run.evaluate()`)
    evaluate_run       the same for a run folder, kept in RUN/evaluations/run-validation[-tta-<mode>]/ (an
                       ensemble: ensemble_scores.py); evaluate_scored: from members already scored

The other stories of scoring have files of their own: tta_choice.py (which views pay), ensemble_scores.py (an
ensemble out of fold), labelled.py (labelled images the run never trained on, and the leak check), report.py
(report.html again); results.py keeps them all in one layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.data.dataset import ImageDataset, make_loader
from signvision.inference.members import RunModel, input_size, load_members, runtime_for, validation_set
from signvision.inference.results import VALIDATION, output_folder, scored_figures, write_result
from signvision.models.augment import TTA, as_tta
from signvision.models.probs import scaled_probs
from signvision.reports.run_report import ScoredSet
from signvision.training.loop import Outputs, evaluate_loader
from signvision.training.runtime import Runtime, pick_device


@dataclass
class Scored:
    """One member scored on its own labelled images: the images, their loader, the runtime, the outputs of the
    plain (no TTA) pass and the labels; `calibrated`: the probabilities with the member's temperature."""

    member: RunModel
    images: ImageDataset
    loader: object
    runtime: Runtime
    outputs: Outputs
    y: np.ndarray

    @property
    def calibrated(self) -> np.ndarray:
        t = self.member.temperature
        return scaled_probs(self.outputs.logits, t) if t is not None else self.outputs.probs


def score_members(members: list[RunModel], loaders: list, device: str = "auto") -> list[Scored]:
    """Each member on its own labelled loader (together: a run's validation set, or every training image once
    for a cross-validated run): what evaluate, the report and the CV summary share."""
    dev = pick_device(device)
    scored = []
    for m, loader in zip(members, loaders):
        runtime = runtime_for(m, dev)
        m.model.to(dev)
        _, outputs, y = evaluate_loader(m.model, loader, runtime, m.task)
        scored.append(Scored(m, loader.dataset, loader, runtime, outputs, y))
    return scored


def score_validation(
    run: str | Path, data: str | None = None, device: str = "auto", batch_size: int = 128, skip_bad_images=False
) -> tuple[list[RunModel], list[Scored]]:
    """A run folder's members, each scored on its validation images (rebuilt from `data` if they moved)."""
    members = load_members(run)
    loaders = [make_loader(validation_set(m, data, skip_bad_images), batch_size=batch_size) for m in members]
    return members, score_members(members, loaders, device)


def scored_set(scored: list[Scored]) -> ScoredSet:
    """What the report shows of scored members: their images pooled, in order."""
    images = [(s.images, i) for s in scored for i in range(len(s.images))]
    return ScoredSet(
        y=np.concatenate([s.y for s in scored]),
        probs=np.concatenate([s.calibrated for s in scored]),
        raw=np.concatenate([s.outputs.probs for s in scored]),
        names=scored[0].member.task.names,
        picture=lambda i: images[i][0].load(images[i][1]),
        caption=lambda i: images[i][0].ids[images[i][1]],
        groups=validation_groups(scored),
        explain=scored_explainer(scored),
    )


def table_scored_set(members: list[RunModel], table: pd.DataFrame, y, probs, groups, *, raw=None, device="auto"):
    """What a page shows of the images of a table (img_IDS, path) scored by `members` (a labelled test set, an
    ensemble's out-of-fold images): each picture decoded at the run's size when shown, explained by them all."""
    from signvision.data.images import load_resized
    from signvision.inference.explain import explainer

    size = input_size(members)

    def picture(i: int) -> np.ndarray:
        return load_resized(table["path"].iloc[i], size)

    return ScoredSet(
        y=y,
        probs=probs,
        raw=raw,
        names=members[0].task.names,
        picture=picture,
        caption=lambda i: str(table["img_IDS"].iloc[i]),
        groups=list(groups),
        explain=explainer(members, picture, device),
    )


def scored_explainer(scored: list[Scored]):
    """`explain(indices, classes)` over scored members' pooled images: each image explained by the member that
    scored it (an out-of-fold image by the fold model that never trained on it)."""
    from signvision.inference.explain import explain_arrays

    owners = [(k, i) for k, s in enumerate(scored) for i in range(len(s.images))]

    def explain(indices, classes) -> np.ndarray:
        out: list = [None] * len(indices)
        by_member: dict[int, list] = {}
        for n, (index, c) in enumerate(zip(indices, classes)):
            k, i = owners[int(index)]
            by_member.setdefault(k, []).append((n, i, int(c)))
        for k, items in by_member.items():
            s = scored[k]
            arrays = [s.images.load(i) for _, i, _ in items]
            maps = explain_arrays([s.member], arrays, [c for _, _, c in items], device=s.runtime.device.type)[0]
            for (n, _, _), heat in zip(items, maps):
                out[n] = heat
        return np.stack(out)

    return explain


def evaluate_members(scored: list[Scored], tta: TTA | None = None) -> dict:
    """Figures of scored members pooled: uncalibrated, calibrated, and calibrated with `tta`'s views."""
    members = [s.member for s in scored]
    with_tta = None
    if tta is not None:
        with_tta = np.concatenate(
            [
                evaluate_loader(
                    s.member.model, s.loader, s.runtime, s.member.task, temperature=s.member.temperature, tta=tta
                )[1].probs
                for s in scored
            ]
        )
    figures = scored_figures(
        np.concatenate([s.y for s in scored]),
        np.concatenate([s.calibrated for s in scored]),
        members,
        validation_groups(scored),
        uncalibrated=np.concatenate([s.outputs.probs for s in scored]),
        with_tta=with_tta,
        tta=tta,
    )
    return {"cross_validated": len(members) > 1, "temperature": members[0].temperature, **figures}


def validation_groups(scored: list[Scored]) -> list[str]:
    """The group of near copies of each scored image (from the run's split.csv; each image alone without it):
    what intervals over the validation images are drawn over."""
    from signvision.grouping.splits import split_group_keys_of

    keys = []
    for s in scored:
        split = s.member.folder / "split.csv" if s.member.folder is not None else None
        if split is not None and split.is_file():
            keys += split_group_keys_of(pd.read_csv(split, dtype=str, keep_default_na=False), s.images.ids)
        else:
            keys += list(s.images.ids)
    return keys


def evaluate_run(
    run: str | Path,
    data: str | None = None,
    *,
    tta: TTA | str | None = None,
    device: str = "auto",
    batch_size: int = 128,
    skip_bad_images: bool = False,
) -> dict:
    """A run folder's validation figures (a cross-validated run: out-of-fold), uncalibrated, calibrated and
    with TTA, kept in RUN/evaluations/run-validation[-tta-<mode>]/evaluation.json. `data`: where the run's
    own images are now, if they moved."""
    from signvision.inference.ensemble_scores import evaluate_ensemble
    from signvision.training.finished import is_ensemble

    if is_ensemble(run):
        return evaluate_ensemble(run, tta=tta, device=device, batch_size=batch_size)
    members, scored = score_validation(run, data, device, batch_size, skip_bad_images)
    return evaluate_scored(run, members, scored, tta)


def evaluate_scored(run: str | Path, members: list[RunModel], scored: list[Scored], tta: TTA | str | None) -> dict:
    """`evaluate_run`'s figures from members already scored on their validation images (`score_validation`),
    so that `choose_tta` scores them once and tries each mode's views on the same pass."""
    views = as_tta(tta, image_size=members[0].cfg.image_size, seed=members[0].cfg.seed)
    result = {**evaluate_members(scored, views), "run": str(run)}
    write_result(output_folder(run, VALIDATION, views), result)
    return result
