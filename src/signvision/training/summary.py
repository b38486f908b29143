"""summary.json: what a finished run, cross-validated run or ensemble says of itself, in one shape that
`compare`, `serve`, `evaluate`, `submit` and `ensemble` read alike.

    summary_record   the one builder: the head, each kind's details, the validation figures as val_<key>
    summarise        a single run's, from its metrics.csv's best epoch, its calibration and its split's leaks
    leak_summary, memory_warning   what the split leaks, and the line a run prints when it measures memory
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signvision.config import TrainConfig
from signvision.grouping.nearcopies import measures_memory

if TYPE_CHECKING:
    from signvision.grouping.splits import SplitInfo
    from signvision.training.rundata import RunData

VALIDATION_FIGURES = ("roc_auc", "log_loss", "accuracy", "ece")  # summary.json's val_<figure> keys


def summary_record(
    *, status: str, classes: list, target, model: str, train_seconds: float, figures: dict, **details
) -> dict:
    """summary.json of a run, a cross-validated run or an ensemble, in one shape: what `compare`, `serve`,
    `evaluate`, `submit` and `ensemble` read alike. `figures`: validation metrics under `compute_metrics`' keys
    (those present), kept as val_<key>; `details`: what each kind adds, after the head."""
    head = {"status": status, "classes": classes, "target": target, "model": model}
    head["train_seconds"] = round(float(train_seconds), 2)
    return {**head, **details, **{f"val_{k}": float(figures[k]) for k in VALIDATION_FIGURES if k in figures}}


def summarise(
    cfg: TrainConfig, data: RunData, history, best_epoch, figures: dict | None, *, status: str, seconds: float
) -> dict:
    """summary.json: the validation figures of the best epoch, calibrated (when `figures` has them), with
    their intervals, and what the split leaks."""
    rows = history[history["epoch"] == best_epoch] if best_epoch is not None and len(history) else []
    best = rows.iloc[0] if len(rows) else {}
    summary = summary_record(
        status=status,
        classes=data.task.classes,
        target=cfg.target,
        model=cfg.model,
        train_seconds=seconds,
        figures={k: best[f"val_{k}"] for k in ("roc_auc", "log_loss", "accuracy") if len(rows)},
        loss=cfg.loss,
        select=cfg.select,
        epochs=int(len(history)),
        dropped_images=len(data.dropped),
        train_images=int(len(data.rows("train"))),
        val_images=int(len(data.rows("val"))),
        **({"best_epoch": int(best_epoch)} if len(rows) else {}),
    )
    summary.update(figures or {"temperature": None})
    summary.update(leak_summary(data.info, summary.get("val_accuracy")))
    return summary


def memory_warning(summary: dict) -> str:
    """The line a run prints when remembering the nearest training image scores about as well as the model."""
    return (
        f"warning: this validation figure measures memory: a 1-nearest-neighbour on thumbnails (no learning) "
        f"scores accuracy {summary['memory_accuracy']:.3f} against the model's {summary['val_accuracy']:.3f}, and "
        f"{summary['val_near_copy_share']:.0%} of the validation images have a near copy in training"
        + ("; the split was random: drop `split_by` random" if summary.get("split_by") == "random" else "")
    )


def leak_summary(info: SplitInfo | None, val_accuracy: float | None) -> dict:
    """The split's leak figures for summary.json, and whether the validation accuracy measures memory."""
    leak = (info.leak if info is not None else None) or {}
    grouping = (info.grouping if info is not None else None) or {}
    return {
        "split_by": info.split_by if info is not None else None,
        "grouped_images": grouping.get("grouped_images"),
        "largest_group": grouping.get("largest_group"),
        "val_near_copy_share": leak.get("val_near_copy_share"),
        "memory_accuracy": leak.get("memory_accuracy"),
        "measures_memory": measures_memory(leak, val_accuracy),
    }
