"""What a finished, usable run folder is, and the readers of the two folders that hold other runs: a `--folds`
run (cv.json, one run per fold) and an ensemble (ensemble.json, its runs with their weights and digests). The
one place that knows it; it imports nothing heavy, so that the command line refuses a wrong --run at once,
before PyTorch is loaded.

    check_run_folder   the folder exists and holds a finished run, `--folds` run or ensemble (one line otherwise)
    is_cv_run, fold_folders            a `--folds` run and its finished fold runs
    is_ensemble, ensemble_runs         an ensemble and its runs, each unchanged since the ensemble was fitted
    run_digest                         what a run's predictions are made of, as one SHA-256
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from signvision.errors import MissingError, OptionError, RunError
from signvision.files import read_json


def is_ensemble(run: str | Path) -> bool:
    """Whether RUN is an ensemble of runs (`signvision ensemble`; it holds ensemble.json)."""
    return (Path(run) / "ensemble.json").is_file()


def ensemble_runs(run: Path) -> list[tuple[Path, float]]:
    """A finished ensemble's runs with a weight above zero, (folder, weight) each (from its summary.json; a path
    relative to the ensemble's folder), every one still a finished run with the checkpoints the ensemble was
    fitted on (a RunError naming the one that is not)."""
    fitted = read_json(run / "summary.json").get("ensemble", {})
    runs = [r for r in fitted.get("runs", []) if float(r["weight"]) > 0]
    if not runs:
        raise RunError("its summary.json names no run with a weight above zero", option="run", value=run)
    found = []
    for r in runs:
        folder = Path(r["run"]) if Path(r["run"]).is_absolute() else Path(os.path.normpath(Path(run) / r["run"]))
        try:
            check_run_folder(folder)
        except (MissingError, RunError) as e:
            raise RunError(f"a run of this ensemble is gone or unfinished: {e}", option="run", value=run) from None
        if r.get("digest") is not None and run_digest(folder) != r["digest"]:
            raise RunError(
                f"its run {folder} changed since the ensemble was fitted (other checkpoints); fit the ensemble again "
                "with `signvision ensemble` into a new folder",
                option="run",
                value=run,
            )
        found.append((folder, float(r["weight"])))
    return found


_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime) -> sha256: a file is read once per process while unchanged


def file_digest(path: Path) -> str:
    """The SHA-256 of a file (kept while its size and modification time stay the same)."""
    import hashlib

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        _DIGESTS[key] = sha.hexdigest()
    return _DIGESTS[key]


def run_digest(run: Path) -> str:
    """What a run's predictions are made of, as one SHA-256: its best.pt (weights and temperature); each fold's
    and the out-of-fold temperature for a `--folds` run; the weights, merge and temperature and each run's
    digest for an ensemble. What was measured on a run (an ensemble's fit, a TTA choice) records it, and is
    refused once the run has changed (`train --resume` replaced best.pt, a run replaced by another)."""
    import hashlib

    run = Path(run)
    if is_ensemble(run):
        fitted = read_json(run / "summary.json").get("ensemble", {})
        parts = [json.dumps({k: fitted.get(k) for k in ("merge", "temperature")}, sort_keys=True)]
        parts += [f"{r.get('weight')}:{r.get('digest')}" for r in fitted.get("runs", [])]
    elif is_cv_run(run):
        parts = [str(read_json(run / "summary.json").get("temperature"))]
        parts += [file_digest(f / "best.pt") for f in fold_folders(run)]
    else:
        parts = [file_digest(run / "best.pt")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def is_cv_run(run: str | Path) -> bool:
    """Whether RUN is a `--folds` run (it holds cv.json)."""
    return (Path(run) / "cv.json").is_file()


def fold_folders(run: Path) -> list[Path]:
    """The fold runs of a cross-validated run, each finished (a RunError otherwise)."""
    spec = read_json(run / "cv.json")
    folders = [run / f"fold{k}" for k in range(1, int(spec.get("folds", 0)) + 1)]
    unfinished = [f.name for f in folders if not (f / "best.pt").is_file()]
    if not folders or unfinished:
        raise RunError(
            f"cross-validation not finished (no best.pt in {', '.join(unfinished) or 'any fold'}); run the same "
            "train command again to finish it",
            option="run",
            value=run,
        )
    return folders


def check_run_folder(run: str | Path, option: str = "run") -> Path:
    """The run folder exists and is finished: trained, calibrated and summarised (one line otherwise; a run
    stopped part way would predict uncalibrated probabilities from an early epoch). `option`: what errors name."""
    if not isinstance(run, (str, os.PathLike)):
        raise OptionError(f"expected a run folder, not {type(run).__name__}", option=option, value=run)
    run = Path(run)
    if not run.is_dir():
        raise MissingError("folder not found", option=option, value=run)
    if is_ensemble(run):
        again, what = "run the same ensemble command again to finish it", "ensemble not finished"
    elif is_cv_run(run):
        fold_folders(run)
        again = "run the same train command again to finish it"
        what = "cross-validation not finished (no out-of-fold summary yet)"
    elif not (run / "best.pt").is_file():
        raise RunError("no best.pt (not a signvision run, or no epoch finished yet)", option=option, value=run)
    else:
        again, what = f"continue it with signvision train --resume {run}", "unfinished run"
    summary = run / "summary.json"
    status = read_json(summary).get("status") if summary.is_file() else None
    if status != "finished":
        done = f"stopped ({status})" if status else "not summarised"
        raise RunError(f"{what}: {done}; {again}", option=option, value=run)
    if is_ensemble(run):
        ensemble_runs(run)
    return run
