"""Does the validation figure predict the test score of a new capture session?

For each split rule and seed, trains with the same settings (the signvision commands below, printed as they
run), then scores the run on the labelled test folder of another session (`signvision evaluate --data`),
and prints validation against test figures: accuracy, log loss, the gap, and the run's leak check.

    python benchmarks/sessions.py --out data/sessions
    python benchmarks/honest_validation.py --data data/sessions --out runs/honest \\
        --train-args "--model lenet --loss ce --label-smoothing 0.1 --epochs 15 --image-size 32"

Each setting's runs stay in OUT/<split>-seed<k>; rerunning the same command reuses finished runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np


def signvision(*args: str) -> None:
    command = [sys.executable, "-m", "signvision", *args]
    print("$ signvision " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


KEYS = ("val_accuracy", "test_accuracy", "val_log_loss", "test_log_loss", "near_copy_share", "memory_accuracy")


def spread(values, sign: bool = False) -> str:
    """mean ± std (over seeds) with three decimals."""
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():{'+' if sign else ''}.3f} ± {std:.3f}"


def run_one(data: Path, out: Path, split_by: str, seed: int, train_args: list[str]) -> dict:
    run = out / f"{split_by}-seed{seed}"
    if not (run / "summary.json").is_file():
        signvision(
            "train", "--data", str(data), *train_args, "--split-by", split_by, "--seed", str(seed), "--out", str(run)
        )
    test = run / "evaluations" / data.name / "evaluation.json"
    if not test.is_file():
        signvision("evaluate", "--run", str(run), "--data", str(data))
    s, t = json.loads((run / "summary.json").read_text()), json.loads(test.read_text())
    return {
        "val_accuracy": s["val_accuracy"],
        "val_log_loss": s["val_log_loss"],
        "test_accuracy": t["accuracy"],
        "test_log_loss": t["log_loss"],
        "near_copy_share": s["val_near_copy_share"],
        "memory_accuracy": s["memory_accuracy"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a split-folders data set with a labelled test/ folder")
    p.add_argument("--out", required=True, help="a folder for the runs")
    p.add_argument("--train-args", default="", help="the settings every run shares, as one string")
    p.add_argument("--splits", default="random,near-copies")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    data, out = Path(args.data).resolve(), Path(args.out)
    rows = {}
    for split_by in args.splits.split(","):
        rows[split_by] = [
            run_one(data, out, split_by, seed, shlex.split(args.train_args)) for seed in range(args.seeds)
        ]
    print(f"\n{args.train_args}; {args.seeds} seeds, mean ± std\n")
    print(
        "| split | val accuracy | test accuracy | gap | val log loss | test log loss "
        "| val with a near copy in train | memory baseline |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for split_by, runs in rows.items():
        gaps = [r["val_accuracy"] - r["test_accuracy"] for r in runs]
        cells = [spread([r[k] for r in runs]) for k in ("val_accuracy", "test_accuracy")]
        cells.append(spread(gaps, sign=True))
        cells += [spread([r[k] for r in runs]) for k in KEYS[2:]]
        print(f"| {split_by} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
