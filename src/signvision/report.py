"""Pictures of runs: the run report (`report.html`), run comparison, and the augmentation grid.

`write_report(RUN)` evaluates the run's best checkpoint on its validation images and writes, into the
run folder, PNGs and one self-contained `report.html` (images embedded, opens offline):

    curves.png      loss and ROC AUC per epoch, train and validation
    roc.png         ROC curve per class and the macro average (or the one binary curve)
    confusion.png   confusion matrix of the validation images
    wrong.png       the most confidently wrong validation images, given and predicted label

`compare_runs(RUN...)` tabulates validation figures of several runs with only the settings that
differ between them, and draws them as bars.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix, roc_curve  # noqa: E402

from signvision.errors import UserError, refuse_overwrite  # noqa: E402


def _png_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, body: str) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}img{max-width:100%}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f3f3f3}.l{text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto}"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def plot_curves(metrics: pd.DataFrame, path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(metrics["epoch"], metrics["train_loss"], "o-", label="train")
    ax1.plot(metrics["epoch"], metrics["val_loss"], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="BCE loss", title="loss")
    ax2.plot(metrics["epoch"], metrics["train_roc_auc"], "o-", label="train (augmented batches)")
    ax2.plot(metrics["epoch"], metrics["val_roc_auc"], "o-", label="validation")
    ax2.set(xlabel="epoch", ylabel="ROC AUC", title="ROC AUC")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_roc(y: np.ndarray, probs: np.ndarray, names: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5.5))
    if probs.ndim == 1:
        fpr, tpr, _ = roc_curve(y, probs)
        ax.plot(fpr, tpr, label=names[-1])
    else:
        grid = np.linspace(0, 1, 201)
        mean_tpr = np.zeros_like(grid)
        drawn = 0
        for k, name in enumerate(names):
            if 0 < (y == k).sum() < len(y):
                fpr, tpr, _ = roc_curve(y == k, probs[:, k])
                ax.plot(fpr, tpr, lw=1, alpha=0.6, label=name)
                mean_tpr += np.interp(grid, fpr, tpr)
                drawn += 1
        ax.plot(grid, mean_tpr / max(drawn, 1), "k-", lw=2.5, label="macro average")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on validation images")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_confusion(y: np.ndarray, pred: np.ndarray, names: list[str], path: Path) -> Path:
    cm = confusion_matrix(y, pred, labels=list(range(len(names))))
    size = max(4.5, 0.55 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, cm[i, j], ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="given label", title="confusion matrix (validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_gallery(images: list[np.ndarray], captions: list[str], path: Path, cols: int = 6, title: str = "") -> Path:
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2, rows * 2.7), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, cap in zip(axes.ravel(), images, captions):
        ax.imshow(img)
        ax.set_title(cap, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(run: str | Path, *, device: str = "auto", top_wrong: int = 12) -> Path:
    """Evaluate RUN's best.pt on its validation images and write the PNGs and report.html into RUN."""
    from signvision.engine import evaluate, load_run_validation, make_loader

    run = Path(run)
    rv = load_run_validation(run, device=device)
    val, ckpt = rv.val, rv.ckpt
    metrics, probs, y = evaluate(rv.model, make_loader(val, batch_size=128), rv.step)
    names = rv.task.names
    if probs.ndim == 1:  # binary: P(positive)
        pred = (probs >= 0.5).astype(int)
        confidence = np.where(pred == 1, probs, 1 - probs)
    else:
        pred, confidence = probs.argmax(1), probs.max(1)
    history = pd.read_csv(run / "metrics.csv")
    pngs = [
        plot_curves(history, run / "curves.png"),
        plot_roc(y, probs, names, run / "roc.png"),
        plot_confusion(y, pred, names, run / "confusion.png"),
    ]
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-confidence[wrong])][:top_wrong]
    if len(wrong):
        images = [val.load(int(i)) for i in wrong]
        captions = [f"{val.ids[i][:18]}\ngiven {names[y[i]]}\npred {names[pred[i]]} {confidence[i]:.2f}" for i in wrong]
        pngs.append(plot_gallery(images, captions, run / "wrong.png", title="most confidently wrong"))
    rows = "".join(
        f"<tr><td class=l>{html.escape(str(k))}</td><td>{'' if v is None else f'{v:.4f}'}</td></tr>"
        for k, v in metrics["per_class_roc_auc"].items()
    )
    body = (
        f"<p>Best checkpoint: epoch {ckpt['epoch']} of {len(history)}. Validation images: {len(y)}.</p>"
        f"<table><tr><th class=l>metric</th><th>value</th></tr>"
        + "".join(
            f"<tr><td class=l>{k}</td><td>{metrics[k]:.4f}</td></tr>" for k in ("roc_auc", "log_loss", "accuracy")
        )
        + "</table><h2>ROC AUC per class</h2><table>"
        + rows
        + "</table>"
        + "".join(f"<h2>{p.stem}</h2>{_png_tag(p, p.stem)}" for p in pngs)
        + f"<h2>config</h2><pre>{html.escape(json.dumps(ckpt['config'], indent=2))}</pre>"
    )
    out = run / "report.html"
    out.write_text(_page(f"signvision run {run.name}", body))
    return out


# ----------------------------------------------------------------------------------------------------
# Comparing runs
# ----------------------------------------------------------------------------------------------------
IGNORED_SETTINGS = {"out", "resume", "cache_dir", "workers", "device"}


def compare_runs(runs: list[str | Path], out: str | Path | None = None) -> pd.DataFrame:
    """One row per run: the settings that differ between the runs, then validation figures."""
    rows = []
    for run in map(Path, runs):
        summary_path, config_path = run / "summary.json", run / "config.json"
        if not summary_path.is_file() or not config_path.is_file():
            raise UserError(f"{run}: not a finished signvision run (no summary.json/config.json)")
        summary, config = json.loads(summary_path.read_text()), json.loads(config_path.read_text())
        row = {"run": str(run)}
        row.update({k: v for k, v in config.items() if k not in IGNORED_SETTINGS})
        row.update({k: summary.get(k) for k in ("val_roc_auc", "val_log_loss", "val_accuracy", "epochs")})
        row["train_seconds"] = summary.get("train_seconds")
        rows.append(row)
    table = pd.DataFrame(rows)
    settings = [
        c
        for c in table.columns
        if c not in ("run", "val_roc_auc", "val_log_loss", "val_accuracy", "epochs", "train_seconds")
    ]
    differing = [c for c in settings if table[c].map(json.dumps).nunique() > 1]
    table = table[["run", *differing, "epochs", "val_roc_auc", "val_log_loss", "val_accuracy", "train_seconds"]]
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "compare.csv", index=False)
        fig, axes = plt.subplots(1, 3, figsize=(13, max(3, 0.45 * len(table) + 1.5)))
        labels = [Path(r).name for r in table["run"]]
        for ax, key in zip(axes, ("val_roc_auc", "val_log_loss", "val_accuracy")):
            ax.barh(labels, table[key])
            ax.set(title=key)
            ax.grid(axis="x", alpha=0.3)
            lo, hi = table[key].min(), table[key].max()
            if key != "val_log_loss":
                ax.set_xlim(max(0, lo - (hi - lo) - 0.01), min(1, hi + 0.005))
        fig.tight_layout()
        fig.savefig(out / "compare.png", dpi=90)
        plt.close(fig)
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
    """Each row: one training image, then cols-1 augmented draws of it."""
    from signvision.augment import build_augment
    from signvision.data import load_resized, read_data

    out = Path(out)
    refuse_overwrite(out, overwrite)
    table = read_data(data)
    transform = build_augment(augment, image_size=image_size, seed=seed)
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


def register_cli(sub, make) -> None:
    p = make(sub, "report", "rebuild a run's report.html and its PNGs", "signvision report runs/lenet")
    p.add_argument("run")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=lambda a: print(f"wrote {write_report(a.run, device=a.device)}") or 0)

    p = make(
        sub,
        "compare",
        "compare runs: validation figures and the settings that differ",
        "signvision compare runs/lenet runs/r18 --out runs/compare",
    )
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", help="folder for compare.csv and compare.png")

    def cmd_compare(a) -> int:
        table = compare_runs(a.runs, a.out)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if a.out:
            print(f"wrote {Path(a.out) / 'compare.csv'} and compare.png")
        return 0

    p.set_defaults(func=cmd_compare)
