"""Do pseudo-labels pay on a new capture session? The recommended submission (5-fold LeNet + 5-fold Lite0,
ensembled) against the same recipe with a second round trained on the test images the first round is sure of.

    python benchmarks/sessions.py --out data/sessions
    python benchmarks/submissions.py --data data/sessions --out runs/submissions --recipes lenet15,lite0 --seeds 0
    python benchmarks/pseudo_labels.py --data data/sessions --out runs/submissions --seeds 0 --retrain lenet15

For each seed: the first round's ensemble (made by submissions.py, made here if missing) labels DATA/test's
images (`signvision pseudo-label --threshold T`: no test label is read); each recipe of `--retrain` is trained
again with `--pseudo-labels` (same folds, same seed) and ensembled with the recipes not retrained; both
submissions are scored on DATA/test. Prints per seed, and pooled over seeds, the pseudo-labels' share and
precision (measured here with the test labels, never used to choose anything) and the paired difference in log
loss and accuracy (second round - first) with its 95% interval from a bootstrap over the test images' groups of
near copies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from submissions import RECIPES, signvision  # noqa: E402
from submissions import main as submissions_main  # noqa: E402


def finished(run: Path) -> bool:
    summary = run / "summary.json"
    return summary.is_file() and json.loads(summary.read_text()).get("status") == "finished"


def train_second_round(name: str, seed: int, data: Path, out: Path, pseudo: Path, log: Path) -> Path:
    run = out / f"{name}-pl-s{seed}"
    if not finished(run):
        train = ["train", "--data", str(data / "train"), "--folds", "5", "--seed", str(seed), "--out", str(run)]
        signvision(*train, "--pseudo-labels", str(pseudo), *RECIPES[name], log=log)
    return run


def test_probs(run: Path, test) -> np.ndarray:
    """The run's calibrated probabilities on the test table's images, in its class order."""
    import signvision as sv

    r = sv.load_run(run)
    return r.predict(test[["img_IDS", "path"]], device="cpu").frame[r.classes].to_numpy()


def paired(y, first, second, groups) -> str:
    from signvision.training.metrics import paired_bootstrap

    d = paired_bootstrap(y, second, first, groups)
    ll, acc = d["log_loss_ci"], d["accuracy_ci"]
    return (
        f"log loss {d['log_loss']:+.4f} [{ll[0]:+.4f}, {ll[1]:+.4f}], accuracy {d['accuracy']:+.4f} "
        f"[{acc[0]:+.4f}, {acc[1]:+.4f}] over {d['groups']} groups"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the session benchmark (benchmarks/sessions.py)")
    p.add_argument("--out", required=True, help="submissions.py's folder (its runs are reused)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--recipes", default="lenet15,lite0", help="the first round's recipes")
    p.add_argument("--retrain", default="lenet15", help="the recipes trained again with the pseudo-labels")
    p.add_argument("--threshold", type=float, default=0.9)
    args = p.parse_args(argv)
    from signvision.data.tables import read_labelled
    from signvision.grouping.groups import group_keys
    from signvision.grouping.nearcopies import fingerprint_images, group_near_copies

    data, out = Path(args.data), Path(args.out)
    log = out / "commands.log"
    recipes, retrain = args.recipes.split(","), args.retrain.split(",")
    test = read_labelled(data / "test").train
    groups = group_keys(group_near_copies(fingerprint_images(test["path"].tolist())), test["img_IDS"])
    pooled = {"y": [], "first": [], "second": [], "groups": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        first = out / f"ensemble-{'+'.join(recipes)}-s{seed}"
        if not finished(first):
            submissions_main(["--data", str(data), "--out", str(out), "--seeds", str(seed), "--recipes", args.recipes])
        pseudo = out / f"pseudo-{args.threshold}-s{seed}.csv"
        if not pseudo.is_file():
            signvision("pseudo-label", "--run", str(first), "--data", str(data / "test"), "--out", str(pseudo),
                       "--threshold", str(args.threshold), log=log)  # fmt: skip
        kept = pd.read_csv(pseudo)
        truth = kept["path"].map(lambda q: Path(q).parent.name)  # the class folder: read only to measure
        runs = [train_second_round(n, seed, data, out, pseudo, log) if n in retrain else out / f"{n}-s{seed}"
                for n in recipes]  # fmt: skip
        second = out / f"ensemble-{'+'.join(r.name for r in runs)}"
        if not finished(second):
            signvision("ensemble", *map(str, runs), "--out", str(second), log=log)
        classes = json.loads((first / "summary.json").read_text())["classes"]
        y = test["Label"].map({c: k for k, c in enumerate(classes)}).to_numpy()
        a, b = test_probs(first, test), test_probs(second, test)
        print(
            f"seed {seed}: pseudo-labels {len(kept)} of {len(test)} test images (>= {args.threshold}), precision "
            f"{(kept['Label'] == truth).mean():.3f}\n"
            f"  first round  ({first.name}): accuracy {(a.argmax(1) == y).mean():.4f}, log loss "
            f"{-np.log(np.clip(a[np.arange(len(y)), y], 1e-15, 1)).mean():.4f}\n"
            f"  second round ({second.name}): accuracy {(b.argmax(1) == y).mean():.4f}, log loss "
            f"{-np.log(np.clip(b[np.arange(len(y)), y], 1e-15, 1)).mean():.4f}\n"
            f"  second - first: {paired(y, a, b, groups)}",
            flush=True,
        )
        for key, value in (("y", y), ("first", a), ("second", b), ("groups", groups)):
            pooled[key].append(np.asarray(value))
    if len(pooled["y"]) > 1:
        y, a, b, g = (np.concatenate(pooled[k]) for k in ("y", "first", "second", "groups"))
        print(
            f"pooled over seeds: second - first: {paired(y, a, b, g)} (a group's frames of every seed drawn together)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
