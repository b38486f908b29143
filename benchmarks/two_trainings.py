"""Two trainings at once on one machine: does each keep a fair share of its speed alone?

Trains the same run alone, then two copies started together, and prints each one's training images/s (the
mean over its epochs, from metrics.csv) and its ratio to the run alone. A notebook user on a 2-core Colab or
Kaggle machine runs an audit beside a training; a competitor runs two recipes at once.

    .venv/bin/python benchmarks/two_trainings.py                     # resnet18, 64 px, 2 epochs on sign-digits
    .venv/bin/python benchmarks/two_trainings.py --model lenet --epochs 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SIGN_DIGITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sign-digits"


def command(args, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "signvision", "train", "--data", str(args.data), "--model", args.model,
        "--epochs", str(args.epochs), "--image-size", str(args.image_size), "--device", "cpu", "--out", str(out),
    ]  # fmt: skip


def rate(run: Path) -> float:
    """Training images/s over the run's epochs."""
    return float(pd.read_csv(run / "metrics.csv")["train_images_per_s"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SIGN_DIGITS)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        subprocess.run(command(args, tmp / "alone"), check=True, capture_output=True)
        alone, alone_s = rate(tmp / "alone"), time.perf_counter() - started
        started = time.perf_counter()
        pair = [subprocess.Popen(command(args, tmp / f"run{k}"), stdout=subprocess.DEVNULL) for k in (1, 2)]
        for proc in pair:
            assert proc.wait() == 0
        pair_s = time.perf_counter() - started
        rates = [rate(tmp / f"run{k}") for k in (1, 2)]
    print(f"{args.model} {args.image_size} px, {args.epochs} epochs: alone {alone:.0f} img/s ({alone_s:.0f} s)")
    for k, r in enumerate(rates, 1):
        print(f"  beside another: run {k} {r:.0f} img/s = {r / alone:.2f}x of alone")
    print(f"  the pair: {sum(rates) / alone:.2f}x of one run's work per second ({pair_s:.0f} s for both)")


if __name__ == "__main__":
    main()
