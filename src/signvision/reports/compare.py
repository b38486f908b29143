"""`compare_runs(RUN...)`: the validation figures of several runs (single or cross-validated) beside only the
settings that differ between them, as a table (compare.csv) and bars (compare.png)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from signvision.config import RECIPE, SOURCE
from signvision.errors import RunError
from signvision.files import atomic_write, read_json, refuse_overwrite

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


def compare_runs(runs: list[str | Path], out: str | Path | None = None, *, overwrite: bool = False) -> pd.DataFrame:
    """One row per run: the settings that differ between the runs, then validation figures (with the
    accuracy's interval, the leak share and the memory baseline; pooled out-of-fold for a `--folds` run).

    Args:
        runs: run folders.   out: a folder for compare.csv and compare.png (optional; files of those names
            already there are replaced only with `overwrite`).

    Returns:
        the table (a DataFrame).

    Example:
        >>> table = compare_runs(["runs/lenet", "runs/ksl-lenet"])
        >>> len(table)
        2
    """
    if out is not None:  # before any run is read: a user's file is never replaced unasked
        for name in ("compare.csv", "compare.png"):
            refuse_overwrite(Path(out) / name, overwrite)
    rows = []
    for run in map(Path, runs):
        if not (run / "summary.json").is_file() or not (run / "config.json").is_file():
            raise RunError(f"{run}: not a finished signvision run (no summary.json/config.json)")
        summary, config = read_json(run / "summary.json"), read_json(run / "config.json")
        row = {"run": str(run)}
        row.update({k: config[k] for k in (*SOURCE, *RECIPE) if k in config})  # the experiment, not the machine
        row.update({k: summary.get(k) for k in FIGURES})
        if "ensemble" in summary:  # its config is its heaviest run's; its model is all of them
            row["model"] = summary["model"]
        ci = row["val_accuracy_ci"]
        row["val_accuracy_ci"] = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else None
        rows.append(row)
    table = pd.DataFrame(rows)
    settings = [c for c in table.columns if c not in ("run", *FIGURES)]
    differing = [c for c in settings if table[c].map(json.dumps).nunique() > 1]
    table = table[["run", *differing, *FIGURES]]
    if out is not None:
        from signvision.reports.plots import plot_compare

        out = Path(out)
        with atomic_write(out / "compare.csv", newline="") as f:
            table.to_csv(f, index=False)
        plot_compare(table, out / "compare.png")
    return table
