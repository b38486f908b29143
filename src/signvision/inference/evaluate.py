"""Scoring a run on labelled images it never trained on: a labelled test set (the `test/` folder of the
split-folders layout), another folder of class sub-folders, or a CSV of img_IDS,Label.

`evaluate_labelled(RUN, DATA)` predicts every image with the run's calibrated model (the mean of the folds
for a cross-validated run, with TTA if asked) and writes RUN/evaluations/<name>/: evaluation.json and
evaluation.html (accuracy, log loss, ROC AUC, calibration, per-class figures, the confusion matrix, the
most confidently wrong images). Each figure has a 95% interval from a bootstrap over the test images'
groups of near copies, and the page says how many test images have a near copy among the run's training
images (a test set that leaks from training scores memory, too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import DataError
from signvision.reports.html import escape, write_page


def output_folder(run: Path, data: Path, tta: str) -> Path:
    """RUN/evaluations/<data's name>[-tta-<mode>]: one folder per scored set (a rerun replaces it)."""
    name = data.parent.name + "-" + data.stem if data.suffix.lower() == ".csv" else data.name
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-") or "data"
    return run / "evaluations" / (name + ("" if tta == "none" else f"-tta-{Path(tta).stem}"))


def labelled_targets(task, table: pd.DataFrame, data) -> np.ndarray:
    """The labels of a scored set as the run's targets; DataError naming a class the run does not know."""
    if task.target is None:
        unknown = sorted(set(table["Label"]) - set(task.classes))
        if unknown:
            count = int((table["Label"] == unknown[0]).sum())
            raise DataError(
                f"class {unknown[0]!r} ({count} images, {len(unknown)} unknown class(es) in all) is not one of the "
                f"run's classes ({', '.join(task.classes)})",
                option="data",
                value=data,
            )
    return task.encode(table["Label"])


def training_paths(run) -> list[str] | None:
    """The files a run trained on (its split's training side), or None when they cannot be found now."""
    from signvision.grouping.splits import read_split
    from signvision.training.rundata import read_training_table

    prepared = getattr(run, "_prepared", None)
    if prepared is not None:  # a run in memory
        return prepared.data.table.train["path"].iloc[prepared.data.rows("train")].tolist()
    try:
        train = read_training_table(run.members[0].cfg, dropped=[])[0].train
        fold = read_split(run.members[0].folder / "split.csv", train["img_IDS"]).set_index("img_IDS")["fold"]
    except Exception:  # the training images moved or changed: the check is skipped, not the evaluation
        return None
    return train.loc[train["img_IDS"].map(fold).eq("train").to_numpy(), "path"].tolist()


def test_leak(run, table: pd.DataFrame) -> float | None:
    """The share of scored images that have a near copy among the images the run trained on."""
    from signvision.grouping.nearcopies import fingerprint_images, leak_check

    paths = training_paths(run)
    if paths is None:
        return None
    fp = fingerprint_images(paths + table["path"].tolist())
    is_scored = np.r_[np.zeros(len(paths), bool), np.ones(len(table), bool)]
    labels = np.r_[np.zeros(len(paths)), np.ones(len(table))]  # labels unused: only the share is read
    return leak_check(fp, labels, is_scored)["val_near_copy_share"]


def evaluate_labelled(
    run,
    data: str | Path,
    *,
    tta: str = "none",
    tta_merge: str = "mean",
    tta_views: int = 4,
    device: str = "auto",
    batch_size: int = 128,
    workers: int = -1,
    log=print,
) -> dict:
    """Score a run (a run folder, or a `Run`) on the labelled images of DATA; write
    RUN/evaluations/<name>/evaluation.json and evaluation.html (a run in memory writes no files).

    Returns the figures: images, groups, accuracy, log_loss, roc_auc, ece (each with an `_ci` interval
    where defined), per_class_roc_auc, near_copy_share (test images with a near copy in training).

    Example:
        >>> evaluate_labelled("runs/lenet", "data/sessions")      # its test/ folder   # doctest: +SKIP
    """
    from types import SimpleNamespace

    from signvision.data.tables import read_labelled
    from signvision.grouping.nearcopies import fingerprint_images, group_near_copies
    from signvision.inference.members import load_members, predict_images
    from signvision.training.metrics import compute_metrics, group_bootstrap

    data = Path(data)
    if isinstance(run, (str, Path)):  # a run folder; otherwise a Run (its members, folder, and data in memory)
        run = SimpleNamespace(members=load_members(run), folder=Path(run))
    members, folder = run.members, run.folder
    table = read_labelled(data)
    labelled = table.train
    task = members[0].task
    y = labelled_targets(task, labelled, data)
    probs = predict_images(
        members,
        labelled,
        tta=tta,
        tta_merge=tta_merge,
        tta_views=tta_views,
        device=device,
        batch_size=batch_size,
        workers=workers,
    )
    groups = group_near_copies(fingerprint_images(labelled["path"].tolist()))
    keys = np.where(groups >= 0, groups.astype(str), "solo:" + labelled["img_IDS"].to_numpy())
    interval = group_bootstrap(y, probs, keys)
    metrics = compute_metrics(y, probs, task.names)
    result = {
        "run": str(folder) if folder is not None else "in memory",
        "data": str(data),
        "layout": table.layout,
        "tta": tta,
        "images": int(len(y)),
        "groups": interval["groups"],
        **{k: metrics[k] for k in ("accuracy", "log_loss", "roc_auc", "ece")},
        "accuracy_ci": interval["accuracy"],
        "log_loss_ci": interval["log_loss"],
        "per_class_roc_auc": metrics["per_class_roc_auc"],
        "near_copy_share": test_leak(run, labelled),
    }
    log(describe(result))
    if folder is not None:
        page = write_evaluation(
            output_folder(folder, data, tta), result, y, probs, task, labelled, members[0].cfg.image_size
        )
        log(f"page: {page}")
    return result


def write_evaluation(out: Path, result: dict, y, probs, task, labelled: pd.DataFrame, size: int) -> Path:
    """evaluation.json, the figures and evaluation.html of a scored set, in `out`."""
    from signvision.data.images import load_resized
    from signvision.reports.run_report import scored_sections

    out.mkdir(parents=True, exist_ok=True)
    sections, _ = scored_sections(
        out,
        y,
        probs,
        None,
        task.names,
        lambda i: load_resized(labelled["path"].iloc[i], size),
        lambda i: str(labelled["img_IDS"].iloc[i]),
        what="scored images",
    )
    (out / "evaluation.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    title = f"signvision: {Path(result['run']).name} on {Path(result['data']).name}"
    return write_page(out / "evaluation.html", title, page_head(result) + "".join(sections))


def describe(result: dict) -> str:
    """The figures of a scored set in a few lines."""

    def ci(key):
        interval = result.get(f"{key}_ci")
        return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""

    lines = [
        f"{result['images']} labelled images of {result['data']} ({result['groups']} groups of near copies)"
        + (f", TTA {result['tta']}" if result["tta"] != "none" else ""),
        f"accuracy {result['accuracy']:.4f}{ci('accuracy')}  log loss {result['log_loss']:.4f}{ci('log_loss')}  "
        f"ROC AUC {result['roc_auc']:.4f}  ECE {result['ece']:.4f}   (95% intervals over groups)",
    ]
    if result.get("near_copy_share"):
        lines.append(
            f"warning: {result['near_copy_share']:.1%} of these images have a near copy among the run's training "
            "images; their score partly measures memory"
        )
    return "\n".join(lines)


def page_head(result: dict) -> str:
    """The opening paragraph of evaluation.html."""
    share = result.get("near_copy_share")
    leak = f" {share:.1%} of them have a near copy among the run's training images." if share is not None else ""
    return (
        f"<p>{result['images']} labelled images ({escape(result['layout'])} layout), "
        f"{result['groups']} groups of near copies; 95% intervals are taken over groups.{escape(leak)}</p>"
        f"<pre>{escape(describe(result))}</pre>"
    )
