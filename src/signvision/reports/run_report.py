"""Pictures of runs: the run report (`report.html`), run comparison, and the augmentation grid.

`write_report(RUN)` scores the run's best model on its validation images (a cross-validated run: every
training image by the fold model that did not train on it) and writes, into the run folder, PNGs and
one self-contained `report.html` (images embedded, opens offline):

    curves.png       loss and ROC AUC per epoch, train and validation (one run; each fold for CV)
    roc.png          ROC curve per class and the macro average (or the one binary curve)
    confusion.png    confusion matrix of the validation images
    reliability.png  accuracy against confidence, before and after calibration
    wrong.png        the most confidently wrong validation images, given and predicted label

`compare_runs(RUN...)` tabulates validation figures of several runs (single or cross-validated) with
only the settings that differ between them, and draws them as bars.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import OptionError, RunError
from signvision.files import read_json, refuse_overwrite
from signvision.reports.html import escape, png_tag, write_page


def score_validation(run: Path, data: str | None, device: str):
    """(members, labels, calibrated probs, uncalibrated probs, (dataset, index) of each image) over the
    run's validation images (out-of-fold images for a cross-validated run)."""
    from signvision.inference.members import load_members, score_members

    members = load_members(run)
    scored = list(score_members(members, data, device))
    images = [(s.images, i) for s in scored for i in range(len(s.images))]
    y = np.concatenate([s.y for s in scored])
    calibrated = np.concatenate([s.calibrated for s in scored])
    raw = np.concatenate([s.outputs.probs for s in scored])
    return members, y, calibrated, raw, images


def predictions_of(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted index, its confidence) per image from probabilities (N, K) or P(positive) (N,)."""
    if probs.ndim == 1:  # binary: P(positive)
        pred = (probs >= 0.5).astype(int)
        return pred, np.where(pred == 1, probs, 1 - probs)
    return probs.argmax(1), probs.max(1)


def scored_sections(folder: Path, y, probs, raw, names, picture, caption, *, top_wrong: int = 12, what="validation"):
    """The pictures and tables every scored set gets (a run's validation images, a labelled test set): the
    metrics before and after calibration, per-class figures, ROC curves, the confusion matrix, the
    reliability diagram and the most confidently wrong images. `picture(i)` / `caption(i)`: image i and
    its name. Writes the PNGs into `folder`; returns (HTML parts, metrics)."""
    from sklearn.metrics import precision_recall_fscore_support

    from signvision.reports.plots import plot_confusion, plot_gallery, plot_reliability, plot_roc
    from signvision.training.calibrate import reliability
    from signvision.training.metrics import SCORES, compute_metrics

    metrics = compute_metrics(y, probs, names)
    metrics_raw = compute_metrics(y, raw, names) if raw is not None else metrics
    pred, confidence = predictions_of(probs)
    pngs = [
        plot_roc(y, probs, names, folder / "roc.png"),
        plot_confusion(y, pred, names, folder / "confusion.png"),
        plot_reliability(
            {**({"uncalibrated": reliability(raw, y)} if raw is not None else {}), "calibrated": reliability(probs, y)},
            folder / "reliability.png",
        ),
    ]
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-confidence[wrong])][:top_wrong]
    if len(wrong):
        captions = [f"{caption(i)[:18]}\ngiven {names[y[i]]}\npred {names[pred[i]]} {confidence[i]:.2f}" for i in wrong]
        pngs.append(
            plot_gallery([picture(i) for i in wrong], captions, folder / "wrong.png", title="most confidently wrong")
        )
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=list(range(len(names))), zero_division=0
    )
    auc = metrics["per_class_roc_auc"]
    parts = [
        "<table><tr><th class=l>metric</th><th>uncalibrated</th><th>calibrated</th></tr>",
        *(f"<tr><td class=l>{k}</td><td>{metrics_raw[k]:.4f}</td><td>{metrics[k]:.4f}</td></tr>" for k in SCORES),
        f"</table><h2>Per class ({what})</h2><table><tr><th class=l>class</th><th>images</th><th>precision</th>"
        "<th>recall</th><th>F1</th><th>ROC AUC</th></tr>",
        *(
            f"<tr><td class=l>{escape(n)}</td><td>{support[k]}</td><td>{precision[k]:.3f}</td><td>{recall[k]:.3f}</td>"
            f"<td>{f1[k]:.3f}</td><td>{'' if auc.get(n) is None else f'{auc[n]:.4f}'}</td></tr>"
            for k, n in enumerate(names)
        ),
        "</table>",
        *(f"<h2>{p.stem}</h2>{png_tag(p, p.stem)}" for p in pngs),
    ]
    return parts, metrics


def leak_section(summary: dict) -> str:
    """What the split leaks and what the validation figure is worth, from a run's summary.json."""
    if summary.get("val_near_copy_share") is None and summary.get("val_accuracy_ci") is None:
        return ""
    rows = []
    if summary.get("split_by"):
        rows.append(
            (
                "split",
                f"{summary['split_by']} ({summary.get('grouped_images', 0)} images in near-copy "
                f"groups, largest {summary.get('largest_group', 0)})",
            )
        )
    if summary.get("val_near_copy_share") is not None:
        rows.append(("validation images with a near copy in training", f"{summary['val_near_copy_share']:.1%}"))
        rows.append(
            ("memory baseline: accuracy of a 1-nearest-neighbour on thumbnails", f"{summary['memory_accuracy']:.4f}")
        )
    for key in ("accuracy", "log_loss"):
        ci = summary.get(f"val_{key}_ci")
        if ci:
            rows.append(
                (
                    f"validation {key.replace('_', ' ')}, 95% interval over {summary['val_groups']} groups",
                    f"{summary[f'val_{key}']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]",
                )
            )
    warn = ""
    if summary.get("measures_memory"):
        warn = (
            '<p class="warn">This validation figure measures memory: remembering the nearest training image '
            "scores about as well as the model. Split with near copies kept together (the default).</p>"
        )
    table = "".join(f"<tr><th class=l>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>What the validation figure is worth</h2>{warn}<table>{table}</table>"


def write_report(run: str | Path, *, data: str | None = None, device: str = "auto", top_wrong: int = 12) -> Path:
    """Score RUN's best model(s) on its validation images and write the PNGs and report.html into RUN."""
    from signvision.reports.plots import plot_curves

    run = Path(run)
    members, y, probs, raw, images = score_validation(run, data, device)
    names = members[0].task.names
    curves = []
    for m in members:
        suffix = f"-{m.folder.name}" if len(members) > 1 else ""
        curves.append(plot_curves(pd.read_csv(m.folder / "metrics.csv"), run / f"curves{suffix}.png"))
    sections, _ = scored_sections(
        run,
        y,
        probs,
        raw,
        names,
        lambda i: images[i][0].load(images[i][1]),
        lambda i: images[i][0].ids[images[i][1]],
        top_wrong=top_wrong,
    )
    t = members[0].temperature
    cv = len(members) > 1
    what = f"{len(y)} validation images"
    if cv:
        what = f"{len(y)} out-of-fold images of a {len(members)}-fold cross-validation"
    epochs = "" if cv else f"Best checkpoint: epoch {members[0].ckpt['epoch']}. "
    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    body = [
        f"<p>{epochs}Scored on {what}. "
        + (f"Temperature {t:.3f} (probabilities = softmax(logits / T)).</p>" if t else "Not calibrated.</p>"),
        leak_section(summary),
        *sections[:2],
    ]
    if cv:
        header = "".join(f"<th>{k}</th>" for k in summary["per_fold"][0])
        body.append(f"<h2>Per fold</h2><table><tr><th>fold</th>{header}</tr>")
        for k, row in enumerate(summary["per_fold"], 1):
            body.append(f"<tr><td>{k}</td>" + "".join(f"<td>{v:.4f}</td>" for v in row.values() if v is not None))
        body.append("</table>")
    body += [f"<h2>{p.stem}</h2>{png_tag(p, p.stem)}" for p in curves] + sections[2:]
    config = json.dumps(members[0].ckpt["config"], indent=2, ensure_ascii=False)
    body.append(f"<h2>config</h2><pre>{escape(config)}</pre>")
    return write_page(run / "report.html", f"signvision run {run.name}", "".join(body))


# ----------------------------------------------------------------------------------------------------
# Comparing runs
# ----------------------------------------------------------------------------------------------------
IGNORED_SETTINGS = {"out", "resume", "cache_dir", "workers", "device", "split"}
FIGURES = (
    "val_roc_auc",
    "val_log_loss",
    "val_accuracy",
    "val_accuracy_ci",
    "val_near_copy_share",
    "memory_accuracy",
    "epochs",
    "train_seconds",
)


def compare_runs(runs: list[str | Path], out: str | Path | None = None) -> pd.DataFrame:
    """One row per run: the settings that differ between the runs, then validation figures (with the
    accuracy's interval, the leak share and the memory baseline; pooled out-of-fold for a `--folds` run).

    Args:
        runs: run folders.   out: a folder for compare.csv and compare.png (optional).

    Returns:
        the table (a DataFrame).

    Example:
        >>> compare_runs(["runs/lenet", "runs/r18"])   # doctest: +SKIP
    """
    rows = []
    for run in map(Path, runs):
        if not (run / "summary.json").is_file() or not (run / "config.json").is_file():
            raise RunError(f"{run}: not a finished signvision run (no summary.json/config.json)")
        summary, config = read_json(run / "summary.json"), read_json(run / "config.json")
        row = {"run": str(run)}
        row.update({k: v for k, v in config.items() if k not in IGNORED_SETTINGS})
        row.update({k: summary.get(k) for k in FIGURES})
        ci = row["val_accuracy_ci"]
        row["val_accuracy_ci"] = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else None
        rows.append(row)
    table = pd.DataFrame(rows)
    settings = [c for c in table.columns if c not in ("run", *FIGURES)]
    differing = [c for c in settings if table[c].map(json.dumps).nunique() > 1]
    table = table[["run", *differing, *FIGURES]]
    if out is not None:
        from signvision.files import check_writable_folder
        from signvision.reports.plots import plot_compare

        out = Path(out)
        check_writable_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "compare.csv", index=False)
        plot_compare(table, out / "compare.png")
    return table


# ----------------------------------------------------------------------------------------------------
# What an augmentation does
# ----------------------------------------------------------------------------------------------------
def augment_grid(
    data: str | Path,
    augment: str,
    out: str | Path,
    *,
    image_size: int = 96,
    rows: int = 4,
    cols: int = 6,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Each row: one training image, then cols-1 augmented draws of it; `out` a .png file."""
    from signvision.data.images import load_resized
    from signvision.data.tables import read_data
    from signvision.models.augment import build_augment
    from signvision.reports.plots import plot_gallery

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise OptionError("the picture is a PNG file: give a name ending in .png", option="out", value=out)
    refuse_overwrite(out, overwrite)
    transform = build_augment(augment, image_size=image_size, seed=seed)
    table = read_data(data)
    picks = table.train.sample(n=min(rows, len(table.train)), random_state=seed)
    images, captions = [], []
    for _, r in picks.iterrows():
        img = load_resized(r["path"], image_size)
        images.append(img)
        captions.append(f"{r['Label']} (original)")
        for k in range(cols - 1):
            images.append(transform(image=img)["image"] if transform is not None else img)
            captions.append(f"{augment} #{k + 1}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return plot_gallery(images, captions, out, cols=cols, title=f"--augment {augment}")
