"""A sign vocabulary of thousands of glosses: a run of K classes (2 images each, 16 px, LeNet, 1 epoch) from the
command line, with its report; prints the wall time and the peak memory.

    .venv/bin/python benchmarks/many_classes.py --classes 2000
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def make_data(root: Path, classes: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "Images").mkdir(parents=True)
    rows = []
    for c in range(classes):
        for j in range(2):
            cv2.imwrite(str(root / "Images" / f"i{c}_{j}.png"), rng.integers(0, 255, (16, 16, 3), np.uint8))
            rows.append((f"i{c}_{j}", f"gloss{c:05d}"))
    pd.DataFrame(rows, columns=["img_IDS", "Label"]).to_csv(root / "Train.csv", index=False)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.classes)
        cmd = [sys.executable, "-m", "signvision", "train", "--data", str(data), "--model", "lenet"]
        cmd += ["--lenet-width", "1", "--epochs", "1", "--image-size", "16", "--batch-size", "8", "--augment", "none"]
        cmd += ["--device", "cpu", "--val-fraction", "0.5", "--out", str(Path(tmp) / "run")]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        report = (Path(tmp) / "run" / "report.html").is_file()
    print(f"{args.classes} classes x 2 images: train + report {seconds:.1f} s, peak {peak:.2f} GiB, report {report}")


if __name__ == "__main__":
    main()
