"""A run folder's report.html made again (`signvision report RUN`): its validation (or out-of-fold) images scored
by its models once more and rendered by reports/run_report.py; an ensemble's with its weights, and its
uncalibrated column the blend before the ensemble's temperature.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from signvision.files import read_json
from signvision.inference.ensemble_scores import ensemble_groups, ensemble_oof
from signvision.inference.evaluate import score_validation, scored_set, table_scored_set
from signvision.inference.members import load_members
from signvision.models.probs import merge_probs
from signvision.reports.run_report import write_report


def report_run(run: str | Path, *, data: str | None = None, device: str = "auto") -> Path:
    """Score a run folder's best model(s) on its validation images again and write report.html into it."""
    from signvision.training.finished import is_ensemble

    run = Path(run)
    if is_ensemble(run):
        return report_ensemble(run, device=device)
    members, scored = score_validation(run, data, device)
    histories = {
        (f"-{m.folder.name}" if len(members) > 1 else ""): pd.read_csv(m.folder / "metrics.csv") for m in members
    }
    return write_report(
        run,
        scored_set(scored),
        summary=read_json(run / "summary.json") if (run / "summary.json").is_file() else {},
        histories=histories,
        config=members[0].ckpt["config"],
        temperature=members[0].temperature,
        best_epoch=members[0].ckpt["epoch"],
        folds=len(members),
    )


def report_ensemble(run: Path, *, device: str = "auto") -> Path:
    """report.html of an ensemble: its out-of-fold images scored by the merged runs, and its weights."""
    members = load_members(run)
    table, y, probs = ensemble_oof(members, device=device)
    t = members.temperature  # the merged runs before it: p^T renormalised undoes p^(1/T) (merge_probs)
    raw = merge_probs([probs], merge="geometric", temperature=1 / t) if t else None
    groups = ensemble_groups(run, table["img_IDS"])
    scored = table_scored_set(members, table, y, probs, groups, raw=raw, device=device)
    summary = read_json(run / "summary.json")
    return write_report(
        run,
        scored,
        summary=summary,
        histories={},
        config=read_json(run / "config.json"),
        temperature=members.temperature,
        best_epoch=None,
        folds=int(summary.get("folds") or 2),
    )
