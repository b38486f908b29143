"""Where a run's scored sets are kept and how their figures are said: one layout for every set a run is scored on,
RUN/evaluations/<name>[-tta-<mode>]/evaluation.json (+ the page of a labelled set), and the tables `evaluate`
prints.

    output_folder, data_name, write_result   the layout
    scored_figures                           the figures of a scored set, with and without test-time views and
                                             their paired gain: what a run's and an ensemble's evaluation share
    describe_columns, describe_gain          the printed table (one column per set of probabilities) and the
                                             paired gain of test-time views
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from signvision.files import atomic_write
from signvision.logs import get_logger
from signvision.models.augment import TTA
from signvision.training.metrics import SCORES, compute_metrics, paired_bootstrap

logger = get_logger(__name__)

VALIDATION = "run-validation"  # the name of a run's own validation images under RUN/evaluations/


def output_folder(run: Path, name: str, tta: TTA | str | None) -> Path:
    """RUN/evaluations/<name>[-tta-<mode>]: one folder per scored set (a rerun replaces its files)."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-") or "data"
    spec = tta.spec if isinstance(tta, TTA) else (tta or "none")
    return Path(run) / "evaluations" / (name + ("" if spec == "none" else f"-tta-{Path(spec).stem}"))


def data_name(data: Path) -> str:
    """The name a labelled set is kept under: its folder's name, or <folder>-<stem> for a CSV."""
    return data.parent.name + "-" + data.stem if data.suffix.lower() == ".csv" else data.name


def write_result(folder: Path, result: dict) -> Path:
    """evaluation.json of a scored set, written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "evaluation.json") as f:
        f.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return folder / "evaluation.json"


def scored_figures(
    y: np.ndarray,
    calibrated: np.ndarray,
    members,
    groups: list,
    *,
    uncalibrated: np.ndarray | None = None,
    with_tta: np.ndarray | None = None,
    tta: TTA | None = None,
) -> dict:
    """The figures of one scored set (labels `y`, the members' calibrated probabilities, optionally before
    calibration and with `tta`'s views), its TTA gain paired over `groups` of near copies, printed as the table
    `evaluate` shows. What a run's validation (`evaluate_members`) and an ensemble's out-of-fold images
    (`evaluate_ensemble`) are both scored by."""
    names = members[0].task.names
    columns = {"uncalibrated": compute_metrics(y, uncalibrated, names)} if uncalibrated is not None else {}
    columns["calibrated"] = compute_metrics(y, calibrated, names)
    result: dict = {"images": int(len(y)), "tta": tta.spec if tta is not None else "none"}
    if uncalibrated is not None:
        result["uncalibrated"] = headline_figures(columns["uncalibrated"])
    result["without_tta"] = headline_figures(columns["calibrated"])
    if with_tta is not None and tta is not None:
        columns[f"TTA {tta.spec}"] = compute_metrics(y, with_tta, names)
        result["with_tta"] = headline_figures(columns[f"TTA {tta.spec}"])
        result["tta_gain"] = paired_bootstrap(y, with_tta, calibrated, groups)
    logger.info(describe_columns(columns, members, len(y)))
    if "tta_gain" in result:
        logger.info(describe_gain(result["tta_gain"], tta.spec))
    return result


def describe_columns(columns: dict, members, n: int) -> str:
    """The table `evaluate` prints: one column per set of probabilities, and the TTA gain."""
    what = "out-of-fold images" if len(members) > 1 else "validation images"
    t = getattr(members, "temperature", None) or members[0].temperature
    where = f", run {members[0].folder}" if members[0].folder is not None else ""
    tta = next((name for name in columns if name.startswith("TTA ")), None)
    lines = [f"{what}: {n} (" + (f"temperature {t:.3f}" if t else "not calibrated") + f"{where})"]
    header = f"{'metric':<10}" + "".join(f" {name:>16}" for name in columns)
    lines.append(header + (f" {'TTA gain':>9}" if tta else ""))
    for key in SCORES:
        line = f"{key:<10}" + "".join(f" {c[key]:>16.4f}" for c in columns.values())
        if tta:
            line += f" {columns[tta][key] - columns['calibrated'][key]:>+9.4f}"
        lines.append(line)
    return "\n".join(lines)


def describe_gain(gain: dict, spec: str) -> str:
    """One line: what test-time views changed, with the paired interval, and whether it is beyond noise."""
    interval = gain["log_loss_ci"]
    verdict = ""
    if interval:
        verdict = " (better)" if interval[1] < 0 else " (worse)" if interval[0] > 0 else " (within noise)"
    ci = f" [{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else ""
    return (
        f"TTA {spec} against none, paired over {gain['groups']} groups: log loss {gain['log_loss']:+.4f}{ci}{verdict}, "
        f"accuracy {gain['accuracy']:+.4f}"
    )


def headline_figures(metrics: dict) -> dict:
    return {k: metrics[k] for k in (*SCORES, "loss", "per_class_roc_auc") if k in metrics}
