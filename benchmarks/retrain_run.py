"""A finished `--folds` run trained again on the same folds with one setting changed: another seed (`--seed`),
fp32 in place of its bf16 (`--fp32`) or another pseudo-labels file (`--pseudo-labels`), so that the two can be
ensembled or put in each other's place (an ensemble needs its runs' folds to be the same, and `--seed` draws
the folds as well as the weights and the augmentation). Asks of a `submit` job's stage: does a second seed pay
more than the stage the time would buy instead? Does its bf16 cost anything? Do pseudo-labels from a later
ensemble pay (a third round)?

    J=runs/sub20pl4/s3/submission-job
    python benchmarks/retrain_run.py $J/lenet-pl --seed 103 --out runs/reseed/s3-lenet-pl-b
    signvision ensemble $J/lite1 $J/lenet-pl runs/reseed/s3-lenet-pl-b --out runs/reseed/s3-ensemble
    python benchmarks/paired_test.py $J/ensemble-4 runs/reseed/s3-ensemble --data data/sessions
    python benchmarks/retrain_run.py $J/lenet-pl --fp32 --out runs/fp32pl/s3-lenet-pl   # the same seed, in fp32
    signvision ensemble $J/lite1 runs/fp32pl/s3-lenet-pl $J/lenet30 --out runs/fp32pl/s3-ensemble
    signvision pseudo-label --run $J/ensemble-3 --data data/sessions/test --out runs/pl2/s3-pl.csv
    python benchmarks/retrain_run.py $J/lenet-pl --pseudo-labels runs/pl2/s3-pl.csv --out runs/pl2/s3-lenet-pl2

The copy has the run's settings (`config.json`) with that setting changed, and its `folds.csv`; OUT must not
exist. An experiment, not a user option.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("SIGNVISION_PROGRESS", "0")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a finished --folds run")
    p.add_argument("--seed", type=int, help="a new seed of the weights and the augmentation (default: the run's)")
    p.add_argument("--fp32", action="store_true", help="train in fp32 (the run's `amp` off)")
    p.add_argument("--pseudo-labels", help="another `pseudo-label` CSV in place of the run's")
    p.add_argument("--out", required=True, help="a new folder")
    args = p.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    if not (run / "folds.csv").is_file() or not (run / "config.json").is_file():
        p.error(f"{run}: not a --folds run (no folds.csv or config.json)")
    if out.exists():
        p.error(f"{out}: exists; give a new folder")
    if args.seed is None and not args.fp32 and not args.pseudo_labels:
        p.error("nothing to change: give --seed N, --fp32 or --pseudo-labels CSV")
    if args.pseudo_labels and not Path(args.pseudo_labels).is_file():
        p.error(f"--pseudo-labels {args.pseudo_labels}: file not found")

    from signvision.config import TrainConfig
    from signvision.files import write_json
    from signvision.runs.crossval import fit_folds

    cfg = TrainConfig.load(run / "config.json")
    cfg = replace(
        cfg,
        seed=cfg.seed if args.seed is None else args.seed,
        amp=cfg.amp and not args.fp32,
        pseudo_labels=args.pseudo_labels or cfg.pseudo_labels,
        out=str(out),
    )
    cfg.absolute_paths()
    out.mkdir(parents=True)
    shutil.copy(run / "folds.csv", out / "folds.csv")  # fit_folds keeps a folds.csv it finds ...
    write_json(out / "config.json", asdict(cfg))  # ... and writes config.json only with folds it draws
    write_json(out / "cv.json", {"folds": cfg.folds, "config": cfg.experiment()})  # the job fit_folds continues
    fit_folds(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
