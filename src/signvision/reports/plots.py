"""Every picture signvision draws, with matplotlib (imported only by the code that draws).

Labels come from the data and are drawn literally: `text.parse_math` is off while signvision draws, so a class
named `$\\alpha_$` is text, not a broken formula. Nothing here changes the user's own plots: the setting
holds inside each drawing function only, and a notebook's inline backend is left as it is (its figures keep
showing after signvision has drawn); elsewhere the pictures are drawn by Agg, which needs no display.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

if "inline" not in matplotlib.get_backend().lower() and "ipympl" not in matplotlib.get_backend().lower():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix, roc_curve  # noqa: E402


def literal_text(draw):
    """Run a drawing function with `text.parse_math` off (labels are data, not formulas), for it alone."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper


def save_figure(fig, path, dpi: int = 90, software: str | None = None):
    """tight_layout, write the PNG (to a path, or a file object such as BytesIO), free the figure. `software`:
    the PNG's Software text, which says which command wrote it (so that a rerun can tell its own file)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png", metadata={"Software": software} if software else None)
    plt.close(fig)
    return Path(path) if isinstance(path, (str, Path)) else path


@literal_text
def plot_curves(metrics: pd.DataFrame, path: Path) -> Path:
    """Loss and ROC AUC per epoch, training and validation."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(metrics["epoch"], metrics["train_loss"], "o-", label="train")
    ax1.plot(metrics["epoch"], metrics["val_loss"], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax2.plot(metrics["epoch"], metrics["train_roc_auc"], "o-", label="train (augmented batches)")
    ax2.plot(metrics["epoch"], metrics["val_roc_auc"], "o-", label="validation")
    ax2.set(xlabel="epoch", ylabel="ROC AUC", title="ROC AUC")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


MANY_CLASSES = 30  # beyond this many classes a picture per class is unreadable: tables and averages instead


@literal_text
def plot_roc(y: np.ndarray, probs: np.ndarray, names: list[str], path: Path, what: str = "validation") -> Path:
    """ROC curves per class and their macro average (or the one binary curve); beyond MANY_CLASSES classes,
    the macro average alone."""
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
                if len(names) <= MANY_CLASSES:
                    ax.plot(fpr, tpr, lw=1, alpha=0.6, label=name)
                mean_tpr += np.interp(grid, fpr, tpr)
                drawn += 1
        ax.plot(grid, mean_tpr / max(drawn, 1), "k-", lw=2.5, label="macro average")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC on {what} images")
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


@literal_text
def plot_confusion(y: np.ndarray, pred: np.ndarray, names: list[str], path: Path, what: str = "validation") -> Path:
    """The confusion matrix of given against predicted labels, with counts."""
    cm = confusion_matrix(y, pred, labels=list(range(len(names))))
    size = max(4.5, 0.55 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, cm[i, j], ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="given label", title=f"confusion matrix ({what})")
    return save_figure(fig, path)


@literal_text
def plot_reliability(curves: dict[str, list[dict]], path: Path, what: str = "validation") -> Path:
    """Reliability diagram: accuracy against confidence per bin, one line per set of probabilities
    (e.g. before and after calibration); the diagonal is perfect calibration."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for name, bins in curves.items():
        conf = [b["confidence"] for b in bins]
        acc = [b["accuracy"] for b in bins]
        ax.plot(conf, acc, "o-", label=name, markersize=5)
    ax.set(
        xlabel="confidence of the predicted class",
        ylabel="accuracy",
        title=f"reliability ({what})",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return save_figure(fig, path)


@literal_text
def plot_gallery(images: list[np.ndarray], captions: list[str], path: Path, cols: int = 6, title: str = "") -> Path:
    """Images in a grid with a caption each."""
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2, rows * 2.7), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, cap in zip(axes.ravel(), images, captions):
        ax.imshow(img)
        ax.set_title(cap, fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


@literal_text
def plot_compare(table: pd.DataFrame, path: Path) -> Path:
    """ROC AUC, log loss and accuracy of several runs as bars."""
    fig, axes = plt.subplots(1, 3, figsize=(13, max(3, 0.45 * len(table) + 1.5)))
    labels = [Path(r).name for r in table["run"]]
    for ax, key in zip(axes, ("val_roc_auc", "val_log_loss", "val_accuracy")):
        ax.barh(labels, table[key])
        ax.set(title=key)
        ax.grid(axis="x", alpha=0.3)
        lo, hi = table[key].min(), table[key].max()
        if key != "val_log_loss":
            ax.set_xlim(max(0, lo - (hi - lo) - 0.01), min(1, hi + 0.005))
    return save_figure(fig, path)


@literal_text
def plot_ablation(table: pd.DataFrame, keys: list[str], path: Path) -> Path:
    """Each setting's difference to the baseline (in the compared figure) with its 95% interval, on the
    validation split and, when the table has them, on the test set."""
    labels = [" ".join(f"{k}={r[k]}" for k in keys) for _, r in table.iterrows()]
    sides = [("", "validation")] + ([("test_", "test set")] if "test_diff" in table.columns else [])
    metric = table["metric"].iloc[0] if "metric" in table.columns else "roc_auc"
    fig, axes = plt.subplots(1, len(sides), figsize=(8 * len(sides), 0.4 * len(table) + 1.5), squeeze=False)
    for ax, (side, title) in zip(axes[0], sides):
        diffs = table[f"{side}diff"].to_numpy()
        low, high = table[f"{side}diff_low"].to_numpy(), table[f"{side}diff_high"].to_numpy()
        # green: better beyond noise, red: worse beyond noise, grey: within seed noise
        colours = [
            ("tab:green" if b else "tab:red") if n else "tab:grey"
            for b, n in zip(table[f"{side}better"], table[f"{side}beyond_noise"])
        ]
        ax.barh(labels, diffs, xerr=np.nan_to_num(np.vstack([diffs - low, high - diffs])), color=colours, capsize=3)
        ax.axvline(0, color="black", lw=1)
        ax.set(
            xlabel=f"{metric} difference to the baseline (95% CI over seeds)", title=f"{title}: green better, red worse"
        )
        ax.invert_yaxis()
    return save_figure(fig, path)


LR_FIND_SOFTWARE = "signvision lr-find"  # the Software text of lr_find.png: a rerun knows its own picture


@literal_text
def plot_lr_find(found, path: Path, current_lr: float | None = None) -> Path:
    """The learning-rate finder's curve: loss (raw and smoothed) against the learning rate (log scale), with the
    suggestion, the minimum and the configured learning rate marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(found.lrs, found.losses, color="0.75", lw=0.8, label="loss per step")
    ax.plot(found.lrs, found.smoothed, lw=2, label="smoothed")
    ax.axvline(found.suggestion, color="tab:green", ls="--", label=f"suggested {found.suggestion:.1e}")
    ax.axvline(found.minimum, color="tab:red", ls=":", label=f"lowest loss {found.minimum:.1e}")
    if current_lr is not None:
        ax.axvline(current_lr, color="0.3", ls="-.", label=f"--lr now {current_lr:.1e}")
    top = np.nanpercentile(found.smoothed, 95) * 1.3
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="learning-rate finder")
    ax.set_ylim(max(0.0, np.nanmin(found.smoothed) * 0.8), top)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, software=LR_FIND_SOFTWARE)
