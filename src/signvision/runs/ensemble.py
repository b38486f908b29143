"""Ensembles across recipes: `signvision ensemble RUN... --out E` and `sv.ensemble([...], out=E)`.

Several `--folds` runs of different recipes (a LeNet, a pretrained EfficientNet, ...) trained on the same
folds each hold out-of-fold (OOF) probabilities for every training image. Their ensemble is fitted on those,
never on a test set:

1. **Weights** that minimise the pooled OOF log loss over the simplex (>= 0, summing to 1; SLSQP), or, for
   `select` accuracy or ROC AUC (not smooth), by greedy ensemble selection (Caruana et al., 2004, "Ensemble
   Selection from Libraries of Models": start from the best run, add with replacement the run that helps
   most). A run whose weight can be zero without raising the loss (by 1e-4) gets zero: every weight above
   zero earns its place.
2. **Merge**: the weighted arithmetic mean of the runs' probabilities, or the weighted geometric mean (the
   Zindi KSL podium's choice), whichever has the lower OOF loss.
3. **One temperature on top**, fitted on the merged OOF probabilities (`models.probs.merge_probs`).

Weights, merge and temperature are chosen on the same OOF images they are scored on, so the ensemble's OOF
figures are a little optimistic; its gain over the best run comes with a paired 95% interval over groups of
near copies (clips), the honest measure of whether the ensemble helps.

    E/ensemble.json   the request: the runs and `select` (the same command again finishes an interrupted one)
    E/folds.csv       the runs' folds (all the same: checked)
    E/oof.csv         img_IDS,Label,fold + the ensemble's calibrated out-of-fold probabilities
    E/config.json     the config of the run with the largest weight (its image size decodes the images)
    E/summary.json    written last: the weights, merge and temperature, each run's and the ensemble's OOF
                      figures with intervals; a folder without it is an unfinished ensemble

The ensemble is a run: `predict`, `evaluate` (also `--data`), `report`, `compare`, `serve` and `export` take E.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import DataError, OptionError
from signvision.files import atomic_write, read_json, write_json
from signvision.logs import get_logger
from signvision.models.probs import MERGES, merge_probs
from signvision.training.calibrate import fit_temperature
from signvision.training.metrics import compute_metrics, group_bootstrap, paired_bootstrap, per_image_figures

logger = get_logger(__name__)

SELECT = ("log_loss", "accuracy", "roc_auc")  # what the weights minimise (log loss) or maximise
ROUNDS = 50  # most greedy additions; each weight is then a multiple of 1/50 at the finest


@dataclass
class OofRun:
    """One cross-validated run as an ensemble sees it: its folder, the name it was given by (what messages
    say), its summary, folds and OOF probabilities (checked against each other: `check_oof`)."""

    folder: Path
    given: str
    summary: dict
    folds: pd.DataFrame  # img_IDS, Label, fold, group
    oof: pd.DataFrame  # img_IDS, Label, fold, one float column per probability


def read_oof_run(run: str | Path) -> OofRun:
    """A finished `--folds` run's out-of-fold predictions, checked (a one-line error naming the run, file or
    row for anything else)."""
    from signvision.data.tables import read_csv
    from signvision.errors import MissingError, RunError
    from signvision.training.finished import check_run_folder, ensemble_runs, is_cv_run, is_ensemble

    given = str(run)
    try:
        folder = check_run_folder(run).resolve()
    except (MissingError, RunError) as e:
        raise type(e)(f"{given}: {e.message}") from None
    if is_ensemble(folder):
        names = ", ".join(os.path.relpath(f) for f, _ in ensemble_runs(folder))
        raise OptionError(f"{given}: is an ensemble; give its runs ({names}) instead")
    if not is_cv_run(folder):
        raise OptionError(
            f"{given}: is not a --folds run: an ensemble's weights are fitted on out-of-fold predictions; train "
            "each recipe with --folds K (the same K, data and seed)"
        )
    if not (folder / "config.json").is_file():  # the heaviest run's settings become the ensemble's
        raise MissingError(
            f"{Path(given) / 'config.json'}: file not found (the run's settings, which the ensemble keeps)"
        )
    folds = read_csv(folder / "folds.csv", ["img_IDS", "Label", "fold"]).drop(columns="row")
    oof = read_csv(folder / "oof.csv", ["img_IDS", "Label", "fold"])
    summary = read_json(folder / "summary.json")
    return OofRun(folder, given, summary, folds, check_oof(Path(given) / "oof.csv", oof, folds, summary))


def check_oof(path: Path, oof: pd.DataFrame, folds: pd.DataFrame, summary: dict) -> pd.DataFrame:
    """oof.csv against folds.csv and the run's classes: one row per validated image (no more, no fewer, none
    twice), the same labels and folds, a column per class, probabilities finite, in [0, 1] and (one per class)
    adding up to 1. Returns it with the probabilities as floats; a DataError naming the file and row otherwise."""
    columns = [c for c in oof.columns if c not in ("img_IDS", "Label", "fold", "row")]
    classes = [str(c) for c in summary.get("classes") or []]
    per_class = summary.get("target") is None and len(classes) > 2
    missing = [c for c in classes if c not in columns] if per_class else ([] if columns else ["(a probability)"])
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (one per class: {', '.join(classes)})")
    twice = oof[oof["img_IDS"].duplicated()]
    if len(twice):
        raise DataError(f"{path}: row {twice['row'].iloc[0]}: {twice['img_IDS'].iloc[0]!r} is listed twice")
    validated = folds[folds["fold"] != "0"].set_index("img_IDS")
    foreign = oof[~oof["img_IDS"].isin(validated.index)]
    if len(foreign):
        raise DataError(
            f"{path}: row {foreign['row'].iloc[0]}: {foreign['img_IDS'].iloc[0]!r} is not validated in folds.csv"
        )
    if len(oof) < len(validated):
        absent = validated.index[~validated.index.isin(oof["img_IDS"])]
        raise DataError(
            f"{path}: {len(oof)} rows, but folds.csv validates {len(validated)} images (first missing: {absent[0]!r}); "
            "the file is damaged: train the run again"
        )
    for column in ("Label", "fold"):
        expected = validated[column].loc[oof["img_IDS"]].to_numpy()
        wrong = np.flatnonzero(oof[column].to_numpy() != expected)
        if len(wrong):
            i = wrong[0]
            raise DataError(
                f"{path}: row {oof['row'].iloc[i]}: {column} {oof[column].iloc[i]!r} differs from folds.csv "
                f"({expected[i]!r}) for {oof['img_IDS'].iloc[i]!r} ({len(wrong)} rows in all)"
            )
    probs = oof[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        text = oof[columns[j]].iloc[i]
        what = "is empty" if text.strip() == "" else f"{text!r} is not a probability"
        raise DataError(f"{path}: row {oof['row'].iloc[i]}: column {columns[j]!r} {what}")
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > 1e-3) if per_class else []
    if len(off):
        raise DataError(f"{path}: row {oof['row'].iloc[off[0]]}: the probabilities add up to {sums[off[0]]:.4f}, not 1")
    return pd.concat([oof[["img_IDS", "Label", "fold"]], pd.DataFrame(probs, columns=columns)], axis=1)


def check_same_folds(runs: list[OofRun]) -> None:
    """Every run has the classes, the images, the labels and the folds of the first (one line naming the run
    that differs)."""
    first = runs[0]
    key = first.folds.set_index("img_IDS")
    for r in runs[1:]:
        if r.summary.get("classes") != first.summary.get("classes") or r.summary.get("target") != first.summary.get(
            "target"
        ):
            raise OptionError(
                f"{r.given}: has other classes than {first.given} ({', '.join(map(str, r.summary.get('classes', [])))})"
            )
        other = r.folds.set_index("img_IDS")
        if set(other.index) != set(key.index):
            raise OptionError(
                f"{r.given}: was trained on other images than {first.given} ({len(other)} against {len(key)}); train "
                "every recipe on the same data"
            )
        if not other["Label"].loc[key.index].equals(key["Label"]):
            raise OptionError(
                f"{r.given}: its folds.csv has other labels than {first.given}'s; train every recipe on the same data"
            )
        if not other["fold"].loc[key.index].equals(key["fold"]):
            raise OptionError(
                f"{r.given}: has other folds than {first.given}; train every recipe with the same --folds, --seed and "
                "--split-by (the folds do not depend on the model)"
            )
    columns = [c for c in first.oof.columns if c not in ("img_IDS", "Label", "fold")]
    for r in runs[1:]:
        if [c for c in r.oof.columns if c not in ("img_IDS", "Label", "fold")] != columns:
            raise DataError(
                f"{r.given}/oof.csv: other probability columns than {first.given}/oof.csv ({', '.join(columns)})"
            )


def objective(y: np.ndarray, probs: np.ndarray, select: str, names: list[str]) -> float:
    """The figure the weights are chosen by, as a loss (lower is better)."""
    correct, loss = per_image_figures(y, probs)
    if select == "log_loss":
        return float(loss.mean())
    if select == "accuracy":
        return float(-correct.mean() + 1e-6 * loss.mean())  # log loss breaks ties
    return float(-compute_metrics(y, probs, names)["roc_auc"] + 1e-6 * loss.mean())


def greedy_weights(parts: list[np.ndarray], y, merge: str, score) -> np.ndarray:
    """Caruana's ensemble selection with replacement: counts per part (normalised to weights), then each part
    whose weight can be zero without a higher loss set to zero."""
    counts = np.zeros(len(parts))
    counts[int(np.argmin([score(merge_probs([p], [1.0])) for p in parts]))] = 1
    best = score(merge_probs(parts, counts, merge))
    for _ in range(ROUNDS - 1):
        trials = [score(merge_probs(parts, counts + np.eye(len(parts))[i], merge)) for i in range(len(parts))]
        i = int(np.argmin(trials))
        if trials[i] >= best - 1e-6:
            break
        counts[i] += 1
        best = trials[i]
    for i in np.argsort(counts):  # the smallest weights first
        if counts[i] > 0 and (counts > 0).sum() > 1:
            trial = counts.copy()
            trial[i] = 0
            if score(merge_probs(parts, trial, merge)) <= best + 1e-9:
                counts, best = trial, score(merge_probs(parts, trial, merge))
    return counts / counts.sum()


def simplex_weights(parts: list[np.ndarray], merge: str, score) -> np.ndarray:
    """The weights (>= 0, summing to 1) that minimise a smooth `score` (the log loss) of the blend, by SLSQP;
    then, smallest first, each weight that can be zero without raising the loss by 1e-4 is set to zero and the
    rest fitted again: every weight above zero earns its place."""
    from scipy.optimize import minimize

    def fit(active: list[int]) -> tuple[np.ndarray, float]:
        def loss(w):
            full = np.zeros(len(parts))
            full[active] = np.clip(w, 0, None)
            return score(merge_probs(parts, full + 1e-12, merge))

        start = np.full(len(active), 1 / len(active))
        found = minimize(
            loss,
            start,
            method="SLSQP",
            bounds=[(0, 1)] * len(active),
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
            options={"ftol": 1e-9, "maxiter": 200},
        )
        w = np.clip(found.x if found.success else start, 0, None)
        full = np.zeros(len(parts))
        full[active] = w / w.sum()
        return full, score(merge_probs(parts, full, merge))

    weights, best = fit(list(range(len(parts))))
    for i in np.argsort(weights):
        active = [j for j in np.flatnonzero(weights > 0) if j != i]
        if weights[i] == 0 or not active:
            continue
        trial, loss = fit(active)
        if loss <= best + 1e-4:
            weights, best = trial, min(best, loss)
    return weights


def fit_blend(parts: list[np.ndarray], y: np.ndarray, names: list[str], select: str = "log_loss") -> dict:
    """Weights, merge and temperature fitted on out-of-fold probabilities (one array per run, same images)."""
    if select not in SELECT:
        raise OptionError(f"expected one of {', '.join(SELECT)}", option="select", value=select)

    def score(p):
        return objective(y, p, select, names)

    fits = []
    for merge in MERGES:  # the log loss is smooth: fitted on the simplex; accuracy and ROC AUC greedily
        weights = (
            simplex_weights(parts, merge, score) if select == "log_loss" else greedy_weights(parts, y, merge, score)
        )
        fits.append((score(merge_probs(parts, weights, merge)), merge, weights))
    _, merge, weights = min(fits, key=lambda f: f[0])
    merged = merge_probs(parts, weights, merge)
    log_p = np.log(np.clip(merged, 1e-7, 1))
    logits = log_p if merged.ndim == 2 else (log_p - np.log(np.clip(1 - merged, 1e-7, 1))).reshape(-1, 1)
    temperature = fit_temperature(logits, y)
    return {"weights": weights, "merge": merge, "temperature": temperature}


def oof_arrays(runs: list[OofRun], task) -> tuple[pd.DataFrame, np.ndarray, list[np.ndarray]]:
    """The out-of-fold images (in the first run's order; every run holds the same ones: `check_oof`), their
    labels and each run's probabilities, aligned."""
    base = runs[0].oof[["img_IDS", "Label", "fold"]]
    columns = [c for c in runs[0].oof.columns if c not in ("img_IDS", "Label", "fold")]
    parts = []
    for r in runs:
        probs = r.oof.set_index("img_IDS").loc[base["img_IDS"], columns].to_numpy(np.float64)
        parts.append(probs[:, 0] if task.binary or task.target is not None else probs)
    return base, task.encode(base["Label"]), parts


def figures(y, probs, groups, names) -> dict:
    """OOF figures with 95% intervals over groups."""
    m, interval = compute_metrics(y, probs, names), group_bootstrap(y, probs, groups)
    return {
        **{k: m[k] for k in ("log_loss", "accuracy", "roc_auc", "ece")},
        "log_loss_ci": interval["log_loss"],
        "accuracy_ci": interval["accuracy"],
    }


def make_ensemble(runs: list[str | Path], out: str | Path, *, select: str = "log_loss") -> dict:
    """Fit an ensemble of `--folds` runs on their out-of-fold predictions and keep it in OUT (a new folder, or
    the folder of the same request interrupted). Returns its summary (also OUT/summary.json)."""
    from signvision.grouping.splits import split_group_keys_of
    from signvision.inference.members import load_run_model
    from signvision.runs.jobs import job_folder
    from signvision.training.finished import run_digest

    if isinstance(runs, (str, Path)) or len(runs) < 2:
        given = runs if isinstance(runs, (str, Path)) else ", ".join(map(str, runs))
        raise OptionError(f"an ensemble needs two or more runs (given: {given})")
    if select not in SELECT:
        raise OptionError(f"expected one of {', '.join(SELECT)}", option="select", value=select)
    read = [read_oof_run(r) for r in runs]  # every check before the folder is touched
    check_same_folds(read)
    if len({r.folder for r in read}) < len(read):
        raise OptionError(f"names the same run twice ({', '.join(r.given for r in read)})")
    out = Path(out)
    spec = {"runs": [stored_path(r.folder, out) for r in read], "select": select}
    with job_folder(out, spec, "ensemble.json", "an ensemble"):
        task = load_run_model(read[0].folder / "fold1").task
        base, y, parts = oof_arrays(read, task)
        groups = split_group_keys_of(read[0].folds, base["img_IDS"])
        fit = fit_blend(parts, y, task.names, select)
        probs = merge_probs(parts, fit["weights"], fit["merge"], fit["temperature"])
        best = int(np.argmin([per_image_figures(y, p)[1].mean() for p in parts]))
        gain = paired_bootstrap(y, probs, parts[best], groups)
        members = [
            {
                "run": stored_path(r.folder, out),
                "digest": run_digest(r.folder),
                "model": r.summary.get("model"),
                "weight": round(float(w), 6),
                "train_seconds": r.summary.get("train_seconds"),
                **figures(y, p, groups, task.names),
            }
            for r, p, w in zip(read, parts, fit["weights"])
        ]
        write_files(out, read, base, task, probs, fit)
        summary = ensemble_summary(read, members, fit, figures(y, probs, groups, task.names), gain, best, len(y))
        write_json(out / "summary.json", summary)  # last: its presence makes OUT a finished ensemble
    logger.info(describe_ensemble(summary))
    return summary


def stored_path(run: Path, out: Path) -> str:
    """How an ensemble records a run: relative to the ensemble's folder where both lie below a common folder
    (a project moved or copied elsewhere keeps working), absolute otherwise."""
    run, out = Path(run).resolve(), Path(out).resolve()
    if os.path.commonpath([run, out]) == os.path.sep:
        return str(run)
    return os.path.relpath(run, out)


def write_files(out: Path, read: list[OofRun], base: pd.DataFrame, task, probs: np.ndarray, fit: dict) -> None:
    """folds.csv, oof.csv and config.json (the heaviest run's) of an ensemble."""
    import shutil

    with atomic_write(out / "folds.csv", newline="") as f:
        read[0].folds.to_csv(f, index=False)
    columns = [c for c in read[0].oof.columns if c not in ("img_IDS", "Label", "fold")]
    blended = pd.DataFrame(probs.reshape(len(base), -1), columns=columns)
    table = pd.concat([base.reset_index(drop=True), blended], axis=1)
    with atomic_write(out / "oof.csv", newline="") as f:
        table.to_csv(f, index=False, float_format="%.6f")
    heaviest = read[int(np.argmax(fit["weights"]))].folder
    with atomic_write(out / "config.json") as f, open(heaviest / "config.json") as src:
        shutil.copyfileobj(src, f)


def ensemble_summary(read, members, fit, pooled, gain, best, n) -> dict:
    """summary.json of an ensemble: what `compare`, `serve` and `evaluate` read like a run's."""
    from signvision.training.summary import summary_record

    weighed = [m for m in members if m["weight"] > 0]
    return summary_record(
        status="finished",
        classes=read[0].summary.get("classes"),
        target=read[0].summary.get("target"),
        model=" + ".join(f"{m['model']} {m['weight']:.2f}" for m in weighed),
        train_seconds=sum(m["train_seconds"] or 0 for m in weighed),
        figures=pooled,
        cross_validated=True,
        folds=read[0].summary.get("folds"),
        oof_images=n,
        temperature=fit["temperature"],
        val_log_loss_ci=pooled["log_loss_ci"],
        val_accuracy_ci=pooled["accuracy_ci"],
        val_groups=gain["groups"],
        ensemble={
            "merge": fit["merge"],
            "temperature": fit["temperature"],
            "runs": members,
            "best_run": members[best]["run"],
            "gain_over_best_run": gain,
        },
    )


def describe_ensemble(summary: dict) -> str:
    """The table `ensemble` prints: each run's weight and OOF figures, then the ensemble's and its gain."""

    def ci(pair):
        return f"[{pair[0]:.3f}, {pair[1]:.3f}]" if pair else ""

    e = summary["ensemble"]
    lines = [f"{'run':<40} {'weight':>6} {'OOF log loss':>24} {'OOF accuracy':>24}"]
    for m in e["runs"]:
        lines.append(
            f"{Path(m['run']).name:<40} {m['weight']:>6.2f} {m['log_loss']:>8.4f} {ci(m['log_loss_ci']):>15} "
            f"{m['accuracy']:>8.4f} {ci(m['accuracy_ci']):>15}"
        )
    name = f"ensemble ({'arithmetic' if e['merge'] == 'mean' else 'geometric'} mean, T {e['temperature']:.3f})"
    lines.append(
        f"{name:<40} {'':>6} "
        f"{summary['val_log_loss']:>8.4f} {ci(summary['val_log_loss_ci']):>15} {summary['val_accuracy']:>8.4f} "
        f"{ci(summary['val_accuracy_ci']):>15}"
    )
    g = e["gain_over_best_run"]
    lines.append(
        f"against the best run ({Path(e['best_run']).name}), paired over {g['groups']} groups: log loss "
        f"{g['log_loss']:+.4f} {ci(g['log_loss_ci'])}, accuracy {g['accuracy']:+.4f} {ci(g['accuracy_ci'])} "
        f"({summary['oof_images']} out-of-fold images; weights, merge and temperature were fitted on them)"
    )
    return "\n".join(lines)
