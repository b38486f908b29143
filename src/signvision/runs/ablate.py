"""Ablations: did a change really help, beyond the noise that the seed alone makes?

`signvision ablate --grid augment=none,light --grid mix=none,cutmix --tta none,hflip --seeds 3 ...`
trains every combination of the grid with each seed, then evaluates every run with each TTA mode.
Seed k draws one validation split that every setting shares, and seeds training, so that the
comparison between two settings at the same seed is paired: same split, same initialisation.

The baseline is the first value of every grid (and the first TTA mode). For each other setting the
table gives the mean +- standard deviation over seeds and the paired difference to the baseline in the
figure compared (`metric`: the runs' `select` figure, log loss by default) with a 95% confidence
interval (Student's t over the per-seed differences). A difference is marked "beyond noise" when its
interval excludes zero. With `test_data` (a labelled test set, e.g. another capture session) every run is
also scored there, and the table has the same columns for the test set: did the change help on images
from elsewhere, not only on the validation split?

Probabilities are calibrated (each run's temperature, fitted on its validation split) before the log
loss is taken. Runs live in OUT/runs/; an interrupted ablation is continued by running the same command again:
finished runs are skipped and an unfinished one resumes from its last.pt.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from signvision.config import TrainConfig
from signvision.errors import OptionError
from signvision.files import atomic_write
from signvision.logs import get_logger, silenced
from signvision.progress import progress_bar

logger = get_logger(__name__)

METRICS = ("roc_auc", "log_loss", "accuracy")


def parse_grid(items: list[str]) -> dict[str, list]:
    """["augment=none,light", "mix=none,cutmix"] -> {"augment": ["none", "light"], ...}, typed like TrainConfig."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    defaults = asdict(TrainConfig())
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise OptionError("expected NAME=VALUE,VALUE (e.g. augment=none,light)", option="grid", value=item)
        name, values = item.split("=", 1)
        key = name.strip().replace("-", "_")
        if key not in types or key in ("data", "out", "seed", "split", "split_by", "folds"):
            raise OptionError(f"{name!r} is not a training setting that can be varied", option="grid", value=item)
        kind = type(defaults[key]) if defaults[key] is not None else str
        try:
            parsed = [_convert(v.strip(), kind) for v in values.split(",") if v.strip()]
        except ValueError:
            raise OptionError(f"values must be of type {kind.__name__}", option="grid", value=item) from None
        if not parsed:
            raise OptionError("no values", option="grid", value=item)
        grid[key] = parsed
    return grid


def _convert(text: str, kind: type):
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(text)
        return text.lower() in ("true", "1")
    return kind(text)


def slug(setting: dict) -> str:
    """A folder name for one setting of the grid: `augment=light_mix=none`."""
    text = "_".join(f"{k}={v}" for k, v in setting.items()) or "baseline"
    return "".join(c if c.isalnum() or c in "=_.-" else "-" for c in text)


def run_ablation(
    base: TrainConfig,
    grid: dict[str, list],
    tta_modes: list[str],
    seeds: int,
    out: str | Path,
    test_data: str | Path | None = None,
) -> pd.DataFrame:
    """Train and evaluate everything not yet done; write results.csv, table.csv, ablation.md, ablation.png;
    log the table. `test_data`: labelled images every run is also scored on (`evaluate --data`). The runs'
    own lines are not shown (a bar counts the runs)."""
    from signvision.reports.plots import plot_ablation
    from signvision.runs.jobs import job_folder

    out = Path(out)
    check_ablation(base, grid, tta_modes, seeds)
    spec = {
        "grid": grid,
        "tta": tta_modes,
        "seeds": seeds,
        "base": {k: v for k, v in base.experiment().items() if k not in ("split", "seed")},  # each cell its own
        "test_data": str(Path(test_data).resolve()) if test_data else None,
    }
    with job_folder(out, spec, "ablation.json", "an ablation"):
        draw_seed_splits(base, seeds, out / "splits")
        settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
        rows = []
        jobs = [(setting, seed) for seed in range(seeds) for setting in settings]
        bar = progress_bar(total=len(jobs), desc="ablation runs", unit="run")
        for setting, seed in jobs:
            run = out / "runs" / f"{slug(setting)}-seed{seed}"
            with silenced():
                train_cell(base, setting, seed, run, out / "splits" / f"seed{seed}.csv")
                for tta in tta_modes:
                    scores = validation_scores(run, tta, base.device)
                    row = {**setting, "tta": tta, "seed": seed, "run": str(run), **scores}
                    if test_data:
                        row.update(scores_on_test_data(run, test_data, tta, base.device))
                    rows.append(row)
            bar.update(1)
        bar.close()
        results = pd.DataFrame(rows)
        write_csv(results, out / "results.csv")
        table = ablation_table(results, list(grid) + ["tta"], metric=base.select)
        write_csv(table, out / "table.csv")
        with atomic_write(out / "ablation.md") as f:
            f.write(to_markdown(table, seeds) + "\n")
        plot_ablation(table, setting_keys(table), out / "ablation.png")
    logger.info(to_markdown(table, seeds))
    return table


def draw_seed_splits(base: TrainConfig, seeds: int, folder: Path) -> None:
    """One split per seed, shared by every setting (so that comparisons are paired)."""
    from signvision.training.rundata import prepare_run_data

    folder.mkdir(exist_ok=True)
    for seed in range(seeds):
        split_file = folder / f"seed{seed}.csv"
        if not split_file.is_file():
            cfg = TrainConfig(**{**asdict(base), "seed": seed, "cache": "none"})
            write_csv(prepare_run_data(cfg).split, split_file)


def train_cell(base: TrainConfig, setting: dict, seed: int, run: Path, split_file: Path) -> None:
    """One run of the grid: trained (or continued) unless finished, with its report."""
    from signvision.runs.jobs import train_or_resume

    cfg = TrainConfig(**{**asdict(base), **setting, "seed": seed, "out": str(run), "split": str(split_file)})
    train_or_resume(run, cfg, report=True)


def validation_scores(run: Path, tta: str, device: str) -> dict:
    """A run's calibrated validation figures with a TTA mode (computed once, then read from the run)."""
    from signvision.inference.evaluate import evaluate_run
    from signvision.inference.results import VALIDATION, output_folder

    saved = output_folder(run, VALIDATION, tta) / "evaluation.json"
    if not saved.is_file():
        evaluate_run(run, tta=tta, device=device)
    result = json.loads(saved.read_text())
    metrics = result["without_tta"] if tta == "none" else result["with_tta"]
    return {m: metrics[m] for m in METRICS}


def scores_on_test_data(run: Path, test_data: str | Path, tta: str, device: str) -> dict:
    """A run's figures on a labelled test set (computed once, then read from its evaluations/ folder)."""
    from signvision.inference.results import data_name, output_folder
    from signvision.runs.api import evaluate_labelled

    saved = output_folder(run, data_name(Path(test_data)), tta) / "evaluation.json"
    result = json.loads(saved.read_text()) if saved.is_file() else None
    if result is None:
        result = evaluate_labelled(run, test_data, tta=tta, device=device)
    return {f"test_{m}": result[m] for m in METRICS}


def check_ablation(base: TrainConfig, grid: dict[str, list], tta_modes: list[str], seeds: int) -> None:
    """Every setting of the grid and every TTA mode is checked before the first run trains, so that a
    typo fails at once and never leaves a half-made ablation folder behind."""
    from signvision.models.augment import TTA, build_augment

    if seeds < 1:
        raise OptionError("must be positive", option="seeds", value=seeds)
    if not tta_modes:
        raise OptionError("give at least one mode (none, hflip, hflip+crops, capture or a .json file)", option="tta")
    for tta in tta_modes:
        TTA(tta, image_size=base.image_size)
    for values in itertools.product(*grid.values()):
        cfg = TrainConfig(**{**asdict(base), **dict(zip(grid, values))}).check()
        build_augment(cfg.augment, image_size=cfg.image_size)
        if cfg.folds > 1:
            raise OptionError(
                "an ablation does not cross-validate; the seeds already give the spread",
                option="folds",
                value=base.folds,
            )


def paired_interval(diffs: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its Student-t confidence interval."""
    diffs = np.asarray(diffs, dtype=float)
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return mean, mean - half, mean + half


LOWER_IS_BETTER = {"log_loss"}


def ablation_table(results: pd.DataFrame, keys: list[str], metric: str = "log_loss") -> pd.DataFrame:
    """Mean +- std per setting, and the paired difference in `metric` to the baseline (first row), on the
    validation split and, when the results have test columns, on the test set."""
    keyed = results.assign(setting=results[keys].astype(str).agg(" ".join, axis=1))
    order = list(dict.fromkeys(keyed["setting"]))
    baseline = keyed[keyed["setting"] == order[0]].set_index("seed")
    sides = [""] + (["test_"] if f"test_{metric}" in results.columns else [])
    rows = []
    for name in order:
        part = keyed[keyed["setting"] == name].set_index("seed")
        row = {k: part[k].iloc[0] for k in keys}
        for side in sides:
            for m in METRICS:
                values = part[side + m]
                row[f"{side}{m}_mean"], row[f"{side}{m}_std"] = (
                    values.mean(),
                    values.std(ddof=1) if len(part) > 1 else 0.0,
                )
            diffs = (part[side + metric] - baseline[side + metric]).dropna()
            mean, low, high = paired_interval(diffs.to_numpy())
            better = (high < 0) if metric in LOWER_IS_BETTER else (low > 0)
            worse = (low > 0) if metric in LOWER_IS_BETTER else (high < 0)
            row.update({f"{side}diff": mean, f"{side}diff_low": low, f"{side}diff_high": high})
            row[f"{side}beyond_noise"] = bool(name != order[0] and (better or worse))
            row[f"{side}better"] = bool(name != order[0] and better)
        row["metric"], row["seeds"] = metric, len(part)
        rows.append(row)
    return pd.DataFrame(rows)


FIGURE_COLUMNS = ("diff", "beyond_noise", "better", "metric", "seeds")


def setting_keys(table: pd.DataFrame) -> list[str]:
    """The columns of a summary table that name a setting (not a figure)."""
    figures = tuple(f"{side}{m}" for side in ("", "test_") for m in (*METRICS, *FIGURE_COLUMNS))
    return [c for c in table.columns if not c.startswith(figures)]


def to_markdown(table: pd.DataFrame, seeds: int) -> str:
    """The summary table as Markdown, one row per setting, the baseline first."""
    keys = setting_keys(table)
    metric = table["metric"].iloc[0].replace("_", " ") if "metric" in table.columns else "ROC AUC"
    sides = [""] + (["test_"] if "test_diff" in table.columns else [])
    head = "| " + " | ".join(keys)
    for side in sides:
        where = "test " if side else "val "
        head += f" | {where}ROC AUC | {where}log loss | {where}accuracy"
        head += f" | {where}{metric} vs baseline (95% CI) | beyond noise"
    lines = [head + " |", "|" + "---|" * (len(keys) + 5 * len(sides))]
    for i, r in table.iterrows():
        cells = [str(r[k]) for k in keys]
        for side in sides:
            low, high, diff = r[f"{side}diff_low"], r[f"{side}diff_high"], r[f"{side}diff"]
            cells += [
                f"{r[side + 'roc_auc_mean']:.4f} ± {r[side + 'roc_auc_std']:.4f}",
                f"{r[side + 'log_loss_mean']:.3f} ± {r[side + 'log_loss_std']:.3f}",
                f"{r[side + 'accuracy_mean']:.3f} ± {r[side + 'accuracy_std']:.3f}",
                "baseline" if i == 0 else f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]",
                ("**better**" if r[f"{side}better"] else "**worse**")
                if r[f"{side}beyond_noise"]
                else ("" if i == 0 else "no"),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n(mean ± std over {seeds} seeds; differences paired by seed)"


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A table as CSV, written atomically (an interruption leaves the earlier file whole)."""
    with atomic_write(path, newline="") as f:
        frame.to_csv(f, index=False)
