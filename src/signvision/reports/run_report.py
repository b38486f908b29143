"""The run report (`report.html`) and the sections every scored set's page gets.

`write_report(RUN, scored, ...)` renders scores it is given (the run's validation images, as training scored
them; a cross-validated run's out-of-fold images) into the run folder: PNGs and one self-contained
`report.html` (images embedded, opens offline). It never trains or predicts (`inference.evaluate.report_run`
scores a run folder again and calls it):

    curves.png       loss and ROC AUC per epoch, train and validation (one run; each fold for CV)
    roc.png          ROC curve per class and the macro average (or the one binary curve)
    confusion.png    confusion matrix of the validation images
    reliability.png  accuracy against confidence, before and after calibration
    wrong.png        the most confidently wrong validation images, given and predicted label
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.reports.html import escape, png_tag, write_page


@dataclass
class ScoredSet:
    """Labelled images and what a model gave them, for a page: labels (N,), calibrated probabilities (N, K) or
    P(positive) (N,), the uncalibrated ones (None when the same), the class names, and `picture(i)` /
    `caption(i)`: image i as RGB uint8 and its name; `groups`: each image's group of near copies (the gallery of
    mistakes shows one image per group; None: every image its own); `explain(indices, classes)`: heatmaps
    (n, S, S) in [0, 1] of those images for those classes (None: the gallery shows no heatmaps)."""

    y: np.ndarray
    probs: np.ndarray
    raw: np.ndarray | None
    names: list[str]
    picture: Callable[[int], np.ndarray]
    caption: Callable[[int], str]
    groups: list | None = None
    explain: Callable | None = None


def worst_mistakes(scored: ScoredSet, pred: np.ndarray, confidence: np.ndarray, limit: int) -> np.ndarray:
    """The most confidently wrong images, most confident first, one per group of near copies (twelve frames of
    one clip say one thing twelve times)."""
    wrong = np.flatnonzero(pred != scored.y)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    if scored.groups is None:
        return wrong[:limit]
    seen, kept = set(), []
    for i in wrong:
        if scored.groups[i] not in seen:
            seen.add(scored.groups[i])
            kept.append(i)
        if len(kept) == limit:
            break
    return np.array(kept, dtype=int)


def mistakes_gallery(folder: Path, scored: ScoredSet, pred, confidence, limit: int) -> Path | None:
    """wrong.png: the worst mistakes (one per group), each beside its heatmap for the predicted class."""
    from signvision.reports.plots import plot_gallery

    wrong = worst_mistakes(scored, pred, confidence, limit)
    if not len(wrong):
        return None
    names = scored.names
    captions = [
        f"{scored.caption(i)[:18]}\ngiven {names[scored.y[i]]}\npred {names[pred[i]]} {confidence[i]:.2f}"
        for i in wrong
    ]
    pictures = [scored.picture(i) for i in wrong]
    title = "most confidently wrong" + (", one per group of near copies" if scored.groups is not None else "")
    if scored.explain is not None:
        from signvision.data.images import resize
        from signvision.reports.heatmaps import side_by_side

        maps = scored.explain(wrong, pred[wrong])
        pictures = [side_by_side(resize(p, m.shape[-1]), m) for p, m in zip(pictures, maps)]
        title += " (right: where the evidence for the predicted class came from)"
    return plot_gallery(pictures, captions, folder / "wrong.png", title=title)


def scored_sections(folder: Path, scored: ScoredSet, *, top_wrong: int = 12, what: str = "validation"):
    """The pictures and tables every scored set gets (a run's validation images, a labelled test set): the
    metrics before and after calibration, per-class figures, ROC curves, the confusion matrix, the
    reliability diagram and the most confidently wrong images, each titled with `what` set it shows. Writes
    the PNGs into `folder`; returns (HTML parts, metrics)."""
    from sklearn.metrics import precision_recall_fscore_support

    from signvision.reports.plots import MANY_CLASSES, plot_confusion, plot_reliability, plot_roc
    from signvision.training.calibrate import predicted, reliability
    from signvision.training.metrics import SCORES, compute_metrics

    y, probs, raw, names = scored.y, scored.probs, scored.raw, scored.names
    metrics = compute_metrics(y, probs, names)
    metrics_raw = compute_metrics(y, raw, names) if raw is not None else metrics
    pred, confidence = predicted(probs)
    pngs = [
        plot_roc(y, probs, names, folder / "roc.png", what),
        *([plot_confusion(y, pred, names, folder / "confusion.png", what)] if len(names) <= MANY_CLASSES else []),
        plot_reliability(
            {**({"uncalibrated": reliability(raw, y)} if raw is not None else {}), "calibrated": reliability(probs, y)},
            folder / "reliability.png",
            what,
        ),
    ]
    gallery = mistakes_gallery(folder, scored, pred, confidence, top_wrong)
    pngs += [gallery] if gallery is not None else []
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=list(range(len(names))), zero_division=0
    )
    auc = metrics["per_class_roc_auc"]
    columns = {"uncalibrated": metrics_raw, "calibrated": metrics} if raw is not None else {"calibrated": metrics}
    metrics_table = "".join(
        [
            "<table><tr><th class=l>metric</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>",
            *(
                f"<tr><td class=l>{k}</td>" + "".join(f"<td>{m[k]:.4f}</td>" for m in columns.values()) + "</tr>"
                for k in SCORES
            ),
            "</table>",
        ]
    )
    per_class = "".join(
        [
            f"<h2>Per class ({what})</h2><table><tr><th class=l>class</th><th>images</th><th>precision</th>"
            "<th>recall</th><th>F1</th><th>ROC AUC</th></tr>",
            *(
                f"<tr><td class=l>{escape(n)}</td><td>{support[k]}</td><td>{precision[k]:.3f}</td>"
                f"<td>{recall[k]:.3f}</td><td>{f1[k]:.3f}</td><td>{_figure(auc.get(n))}</td></tr>"
                for k, n in enumerate(names)
            ),
            "</table>",
        ]
    )
    parts = [  # the metrics table, the per-class table, then the pictures: whole parts, in page order
        metrics_table,
        per_class,
        top_confusions(y, pred, names) if len(names) > MANY_CLASSES else "",
        *(f"<h2>{p.stem}</h2>{png_tag(p, p.stem)}" for p in pngs),
    ]
    return parts, metrics


def _figure(value) -> str:
    return "" if value is None else f"{value:.4f}"


def top_confusions(y: np.ndarray, pred: np.ndarray, names: list[str], limit: int = 30) -> str:
    """The most frequent (given, predicted) mistakes as a table: a confusion matrix of many classes, readable
    (its size grows with the mistakes, not with the square of the classes)."""
    wrong = pred != y
    pairs = pd.Series(list(zip(y[wrong].tolist(), pred[wrong].tolist()))).value_counts().head(limit)
    rows = "".join(
        f"<tr><td class=l>{escape(names[g])}</td><td class=l>{escape(names[p])}</td><td>{n}</td></tr>"
        for (g, p), n in pairs.items()
    )
    return (
        f"<h2>Top confusions</h2><p>{len(names)} classes: the {len(pairs)} most frequent mistakes instead of a "
        f"{len(names)} x {len(names)} matrix.</p><table><tr><th class=l>given</th><th class=l>predicted</th>"
        f"<th>images</th></tr>{rows}</table>"
    )


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


def write_report(
    run: Path,
    scored: ScoredSet,
    *,
    summary: dict,
    histories: dict[str, pd.DataFrame],
    config: dict,
    temperature: float | None,
    best_epoch: int | None,
    folds: int = 1,
    top_wrong: int = 12,
) -> Path:
    """Write the PNGs and report.html of a run into RUN from its scored validation images (out-of-fold images
    of a `folds`-fold cross-validation), its summary, its histories (one per run or fold: metrics.csv's rows,
    named by the suffix of their curves picture) and its config."""
    from signvision.reports.plots import plot_curves

    run = Path(run)
    curves = [plot_curves(history, run / f"curves{suffix}.png") for suffix, history in histories.items()]
    sections, _ = scored_sections(run, scored, top_wrong=top_wrong)
    n, cv = len(scored.y), folds > 1
    what = f"{n} out-of-fold images of a {folds}-fold cross-validation" if cv else f"{n} validation images"
    epochs = "" if cv or best_epoch is None else f"Best checkpoint: epoch {best_epoch}. "
    t = temperature
    body = [
        f"<p>{epochs}Scored on {what}. "
        + (f"Temperature {t:.3f} (probabilities = softmax(logits / T)).</p>" if t else "Not calibrated.</p>"),
        leak_section(summary),
        *sections[:2],
    ]
    if summary.get("ensemble"):
        body.append(ensemble_section(summary))
    elif cv:
        header = "".join(f"<th>{k}</th>" for k in summary["per_fold"][0])
        body.append(f"<h2>Per fold</h2><table><tr><th>fold</th>{header}</tr>")
        for k, row in enumerate(summary["per_fold"], 1):
            body.append(f"<tr><td>{k}</td>" + "".join(f"<td>{v:.4f}</td>" for v in row.values() if v is not None))
        body.append("</table>")
    body += [f"<h2>{p.stem}</h2>{png_tag(p, p.stem)}" for p in curves] + sections[2:]
    body.append(f"<h2>config</h2><pre>{escape(json.dumps(config, indent=2, ensure_ascii=False))}</pre>")
    return write_page(run / "report.html", f"signvision run {run.name}", "".join(body))


def ensemble_section(summary: dict) -> str:
    """An ensemble's runs: weight and out-of-fold figures of each, how they merge, the gain over the best."""
    e = summary["ensemble"]
    rows = "".join(
        f"<tr><td>{escape(Path(r['run']).name)}</td><td>{escape(str(r['model']))}</td><td>{r['weight']:.2f}</td>"
        f"<td>{r['log_loss']:.4f}</td><td>{r['accuracy']:.4f}</td></tr>"
        for r in e["runs"]
    )
    g = e["gain_over_best_run"]
    ci = g.get("log_loss_ci")
    gain = f"{g['log_loss']:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "")
    return (
        f"<h2>Ensemble</h2><p>{'Arithmetic' if e['merge'] == 'mean' else 'Geometric'} mean of the runs' "
        f"probabilities with the weights below, fitted on the out-of-fold predictions, then temperature "
        f"{e['temperature']:.3f}. Out-of-fold log loss against the best run, paired over {g['groups']} groups: "
        f"{gain}.</p><table><tr><th>run</th><th>model</th><th>weight</th><th>OOF log loss</th>"
        f"<th>OOF accuracy</th></tr>{rows}</table>"
    )
