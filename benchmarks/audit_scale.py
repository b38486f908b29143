"""The audit at the scale of a real sign set: thousands of video frames with labels flipped on purpose.

Copies a session benchmark (`benchmarks/sessions.py`, split-folders layout: 950 photos filmed as clips of 6
frames) or writes N distinct Fashion-MNIST images (Zindi layout), gives a share of the training images a
wrong label (a frame moved into another class's folder, or another Label in Train.csv), runs `signvision
audit` on it and prints its time, how often the mislabel model is right, how many of the flipped images are
among the suspects and how many suspects were flipped:

    python benchmarks/sessions.py --out /tmp/sessions6k --photos 95 --frames 6
    python benchmarks/audit_scale.py --sessions /tmp/sessions6k --work /tmp/audit-scale [--epochs 12]
    python benchmarks/audit_scale.py --fashion 6000 --work /tmp/audit-fashion        # make fashion-mnist first

The test suite's planted copy of sign-digits (tests/test_audit.py, 2,062 images) checks the same figures on
small data; this one shows what they are on 5,700 frames, where the audit's time matters.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def flip_frames(sessions: Path, out: Path, share: float, seed: int) -> list[str]:
    """Copy `sessions` to `out` and move `share` of its training frames into another class's folder.
    Returns the moved frames' ids as the audit names them (train/<new class>/<file>)."""
    shutil.copytree(sessions, out)
    frames = sorted((out / "train").glob("*/*.jpg"))
    classes = sorted(p.name for p in (out / "train").iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    flipped = []
    for k in rng.choice(len(frames), size=round(share * len(frames)), replace=False):
        frame = frames[int(k)]
        others = [c for c in classes if c != frame.parent.name]
        new_class = others[int(rng.integers(len(others)))]
        frame.rename(out / "train" / new_class / frame.name)
        flipped.append(f"train/{new_class}/{frame.name}")
    return flipped


def flip_fashion(n: int, out: Path, share: float, seed: int) -> list[str]:
    """Write `n` Fashion-MNIST training images (Zindi layout, no test images) to `out` with `share` of their
    labels in Train.csv changed to another class. Returns the flipped ids."""
    from signvision.cli.demo import fashion_images, write_zindi

    images, labels, is_test = fashion_images()
    rng = np.random.default_rng(seed)
    keep = rng.choice(np.flatnonzero(~is_test), size=n, replace=False)
    write_zindi(out, images[keep], [labels[int(k)] for k in keep], test_fraction=0.0, seed=seed)
    (out / "Test.csv").unlink()
    train = pd.read_csv(out / "Train.csv", dtype=str)
    classes = sorted(train["Label"].unique())
    rows = rng.choice(len(train), size=round(share * len(train)), replace=False)
    for r in rows:
        others = [c for c in classes if c != train.at[int(r), "Label"]]
        train.at[int(r), "Label"] = others[int(rng.integers(len(others)))]
    train.to_csv(out / "Train.csv", index=False)
    return train.loc[rows, "img_IDS"].tolist()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--sessions", help="a folder made by benchmarks/sessions.py")
    source.add_argument("--fashion", type=int, help="this many distinct Fashion-MNIST training images")
    p.add_argument("--work", required=True, help="a new folder for the copy and the audit")
    p.add_argument("--share", type=float, default=0.01, help="share of the training frames given a wrong label")
    p.add_argument("--epochs", type=int, default=None, help="the mislabel model's epochs (default: the audit's)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    work = Path(args.work)
    if work.exists():
        sys.exit(f"--work {work}: exists; give a new folder")
    if args.sessions:
        flipped = set(flip_frames(Path(args.sessions), work / "data", args.share, args.seed))
    else:
        flipped = set(flip_fashion(args.fashion, work / "data", args.share, args.seed))

    import signvision as sv

    started = time.perf_counter()
    settings = {"epochs": args.epochs} if args.epochs else {}
    audit = sv.audit(str(work / "data"), out=work / "audit", **settings)
    seconds = time.perf_counter() - started
    issues = pd.read_csv(work / "audit" / "label_issues.csv")
    suspects = set(issues.loc[issues["is_issue"], "img_IDS"])
    summary = audit.summary
    figures = {
        "seconds": round(seconds, 1),
        "train_images": summary["train_images"],
        "model_right_on": round(summary["mislabel_model_accuracy"], 4),
        "flips_found": f"{len(suspects & flipped)}/{len(flipped)}",
        "suspects_flipped": f"{len(suspects & flipped)}/{len(suspects)}",
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
