"""A finished `--folds` run trained again with another seed on the same folds, so that the two can be
ensembled (an ensemble needs its runs' folds to be the same, and `--seed` draws the folds as well as the weights
and the augmentation). Asks: does a second seed of a stage pay more than the stage the time would buy instead?

    python benchmarks/reseed_run.py runs/sub20pl4/s3/submission-job/lenet-pl --seed 103 --out runs/reseed/s3-lenet-pl-b
    J=runs/sub20pl4/s3/submission-job
    signvision ensemble $J/lite1 $J/lenet-pl runs/reseed/s3-lenet-pl-b --out runs/reseed/s3-ensemble
    python benchmarks/paired_test.py $J/ensemble-4 runs/reseed/s3-ensemble --data data/sessions

The copy has the run's settings (`config.json`) with `seed` changed, and its `folds.csv`; OUT must not exist.
An experiment, not a user option.
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
    p.add_argument("--seed", type=int, required=True, help="the new seed of the weights and the augmentation")
    p.add_argument("--out", required=True, help="a new folder")
    args = p.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    if not (run / "folds.csv").is_file() or not (run / "config.json").is_file():
        p.error(f"{run}: not a --folds run (no folds.csv or config.json)")
    if out.exists():
        p.error(f"{out}: exists; give a new folder")

    from signvision.config import TrainConfig
    from signvision.files import write_json
    from signvision.runs.crossval import fit_folds

    cfg = replace(TrainConfig.load(run / "config.json"), seed=args.seed, out=str(out))
    cfg.absolute_paths()
    out.mkdir(parents=True)
    shutil.copy(run / "folds.csv", out / "folds.csv")  # fit_folds keeps a folds.csv it finds ...
    write_json(out / "config.json", asdict(cfg))  # ... and writes config.json only with folds it draws
    write_json(out / "cv.json", {"folds": cfg.folds, "config": cfg.experiment()})  # the job fit_folds continues
    fit_folds(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
