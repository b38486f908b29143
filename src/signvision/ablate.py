"""Ablations: did a change really help, beyond the noise that the seed alone makes?

`signvision ablate --grid augment=none,light --grid mix=none,cutmix --tta none,hflip --seeds 3 ...`
trains every combination of the grid with each seed, then evaluates every run with each TTA mode.
Seed k draws one validation split that every setting shares, and seeds training, so that the
comparison between two settings at the same seed is paired: same split, same initialisation.

The baseline is the first value of every grid (and the first TTA mode). For each other setting the
table gives the mean +- standard deviation over seeds and the paired difference to the baseline
with a 95% confidence interval (Student's t over the per-seed differences). A difference is marked
"beyond noise" when its interval excludes zero.

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
from tqdm.auto import tqdm

from signvision.config import TrainConfig
from signvision.errors import UserError

METRICS = ("roc_auc", "log_loss", "accuracy")


def parse_grid(items: list[str]) -> dict[str, list]:
    """["augment=none,light", "mix=none,cutmix"] -> {"augment": ["none", "light"], ...}, typed like TrainConfig."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    defaults = asdict(TrainConfig())
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--grid {item}: expected NAME=VALUE,VALUE (e.g. augment=none,light)")
        name, values = item.split("=", 1)
        key = name.strip().replace("-", "_")
        if key not in types or key in ("data", "out", "seed", "split"):
            raise UserError(f"--grid {item}: {name!r} is not a training setting that can be varied")
        kind = type(defaults[key]) if defaults[key] is not None else str
        try:
            parsed = [_convert(v.strip(), kind) for v in values.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--grid {item}: values must be of type {kind.__name__}") from None
        if not parsed:
            raise UserError(f"--grid {item}: no values")
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
    base: TrainConfig, grid: dict[str, list], tta_modes: list[str], seeds: int, out: str | Path, log=print
) -> pd.DataFrame:
    """Train and evaluate everything not yet done; write results.csv, table.csv, ablation.md, ablation.png."""
    from signvision.inference import evaluate_run, evaluation_file
    from signvision.plots import plot_ablation
    from signvision.report import write_report
    from signvision.rundata import prepare_run_data
    from signvision.train import fit

    out = Path(out)
    check_ablation(base, grid, tta_modes, seeds)
    spec = {
        "grid": grid,
        "tta": tta_modes,
        "seeds": seeds,
        "base": {k: v for k, v in asdict(base).items() if k not in ("out", "split", "seed")},
    }
    spec_file = out / "ablation.json"
    if spec_file.is_file():
        if json.loads(spec_file.read_text()) != json.loads(json.dumps(spec)):
            raise UserError(f"--out {out}: holds an ablation with other settings; use a new folder")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not an ablation folder; use a new folder")
    out.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(spec, indent=2) + "\n")

    settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    (out / "splits").mkdir(exist_ok=True)
    for seed in range(seeds):  # one split per seed, shared by every setting
        split_file = out / "splits" / f"seed{seed}.csv"
        if not split_file.is_file():
            cfg = TrainConfig(**{**asdict(base), "seed": seed, "cache": "none"})
            prepare_run_data(cfg).split.to_csv(split_file, index=False)

    rows = []
    jobs = [(setting, seed) for seed in range(seeds) for setting in settings]
    bar = tqdm(total=len(jobs), desc="ablation runs", unit="run")
    for setting, seed in jobs:
        run = out / "runs" / f"{slug(setting)}-seed{seed}"
        summary_file = run / "summary.json"
        done = summary_file.is_file() and json.loads(summary_file.read_text()).get("status") == "finished"
        if not done:
            cfg = TrainConfig(
                **{
                    **asdict(base),
                    **setting,
                    "seed": seed,
                    "out": str(run),
                    "split": str(out / "splits" / f"seed{seed}.csv"),
                }
            )
            resume = (run / "last.pt").is_file()
            fit(TrainConfig.load(run / "config.json") if resume else cfg, resume=resume, log=lambda *_: None)
            write_report(run, device=base.device)
        for tta in tta_modes:
            name = evaluation_file(tta)
            if not (run / name).is_file():
                evaluate_run(run, tta=tta, device=base.device, log=lambda *_: None)
            result = json.loads((run / name).read_text())
            metrics = result["without_tta"] if tta == "none" else result["with_tta"]
            rows.append({**setting, "tta": tta, "seed": seed, "run": str(run), **{m: metrics[m] for m in METRICS}})
        bar.update(1)
    bar.close()
    results = pd.DataFrame(rows)
    results.to_csv(out / "results.csv", index=False)
    table = summarise(results, list(grid) + ["tta"])
    table.to_csv(out / "table.csv", index=False)
    (out / "ablation.md").write_text(to_markdown(table, seeds) + "\n")
    plot_ablation(table, setting_keys(table), out / "ablation.png")
    log(to_markdown(table, seeds))
    return table


def check_ablation(base: TrainConfig, grid: dict[str, list], tta_modes: list[str], seeds: int) -> None:
    """Every setting of the grid and every TTA mode is checked before the first run trains, so that a
    typo fails at once and never leaves a half-made ablation folder behind."""
    from signvision.augment import TTA, build_augment

    if seeds < 1:
        raise UserError(f"--seeds {seeds}: must be positive")
    if not tta_modes:
        raise UserError("--tta: give at least one mode (none, hflip, hflip+crops or a .json file)")
    for tta in tta_modes:
        TTA(tta, image_size=base.image_size)
    for values in itertools.product(*grid.values()):
        cfg = TrainConfig(**{**asdict(base), **dict(zip(grid, values))}).check()
        build_augment(cfg.augment, image_size=cfg.image_size)
        if cfg.folds > 1:
            raise UserError("ablate: --folds is not supported; the seeds already give the spread")


def paired_interval(diffs: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its Student-t confidence interval."""
    diffs = np.asarray(diffs, dtype=float)
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return mean, mean - half, mean + half


def summarise(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean +- std per setting, and the paired difference in ROC AUC to the baseline (first row)."""
    keyed = results.assign(setting=results[keys].astype(str).agg(" ".join, axis=1))
    order = list(dict.fromkeys(keyed["setting"]))
    baseline = keyed[keyed["setting"] == order[0]].set_index("seed")
    rows = []
    for name in order:
        part = keyed[keyed["setting"] == name].set_index("seed")
        row = {k: part[k].iloc[0] for k in keys}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = part[m].mean(), part[m].std(ddof=1) if len(part) > 1 else 0.0
        diffs = (part["roc_auc"] - baseline["roc_auc"]).dropna()
        row["auc_diff"], row["auc_diff_low"], row["auc_diff_high"] = paired_interval(diffs.to_numpy())
        row["beyond_noise"] = bool(name != order[0] and (row["auc_diff_low"] > 0 or row["auc_diff_high"] < 0))
        row["seeds"] = len(part)
        rows.append(row)
    return pd.DataFrame(rows)


def setting_keys(table: pd.DataFrame) -> list[str]:
    """The columns of a summary table that name a setting (not a figure)."""
    return [
        c
        for c in table.columns
        if not any(c.startswith(m) for m in (*METRICS, "auc_diff")) and c not in ("beyond_noise", "seeds")
    ]


def to_markdown(table: pd.DataFrame, seeds: int) -> str:
    """The summary table as Markdown, one row per setting, the baseline first."""
    keys = setting_keys(table)
    head = "| " + " | ".join(keys) + " | ROC AUC | log loss | accuracy | AUC vs baseline (95% CI) | beyond noise |"
    lines = [head, "|" + "---|" * (len(keys) + 5)]
    for i, r in table.iterrows():
        diff = "baseline" if i == 0 else f"{r.auc_diff:+.4f} [{r.auc_diff_low:+.4f}, {r.auc_diff_high:+.4f}]"
        lines.append(
            "| "
            + " | ".join(str(r[k]) for k in keys)
            + f" | {r.roc_auc_mean:.4f} ± {r.roc_auc_std:.4f} | {r.log_loss_mean:.3f} ± {r.log_loss_std:.3f}"
            + f" | {r.accuracy_mean:.3f} ± {r.accuracy_std:.3f} | {diff} | "
            + ("**yes**" if r.beyond_noise else ("" if i == 0 else "no"))
            + " |"
        )
    return "\n".join(lines) + f"\n\n(mean ± std over {seeds} seeds; differences paired by seed)"
