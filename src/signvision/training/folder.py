"""The run folder: what a training run leaves on disk, written so that nothing is lost, and how it is read.

    config.json   the TrainConfig                      split.csv / split.json  the split, what it leaks
    metrics.csv   one row per epoch                    summary.json            the final figures
    best.pt       the best epoch's weights (by `select`: log loss by default) and the fitted temperature
    last.pt       everything needed to resume (model, optimizer, schedule, EMA, epoch)
    data.csv      the images of a run trained from a DataFrame   dropped.txt   images left out (bad files)
    report.html   the run's pictures (reports/)                  evaluations/  each set it was scored on
    tensorboard/  TensorBoard event files: metrics.csv's figures per epoch, an augmented batch, the confusion matrix
    .lock         held while a process writes the run (another writer is refused; a dead one's is taken over)
    cv.json       a `--folds` run instead: one run folder per fold (fold<k>/), oof.csv, one summary.json
    ensemble.json an ensemble of `--folds` runs instead (`signvision ensemble`): its runs; their weights, merge
                  and temperature in summary.json, the blended out-of-fold probabilities in oof.csv

A run folder has one writer at a time (`files.claim_folder`: two commands started together into one folder
cannot both write it). Every file but metrics.csv is written to a temporary file
beside it and renamed, so that an interruption or a full disk leaves the earlier file, never half of one;
metrics.csv gets one row appended per finished epoch, and a resumed run first drops the rows its last.pt
does not hold. A run killed before its first checkpoint is simply started again by `resume`.
`check_run_folder`, `is_cv_run`, `fold_folders`, `is_ensemble` and `ensemble_runs` are the one place that
knows what a usable run is.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from signvision.config import TrainConfig
from signvision.errors import MissingError, RunError
from signvision.files import RUN_FILES, atomic_write, check_new_folder, check_writable_folder, read_json, write_json
from signvision.training.checkpoint import load_checkpoint, save_checkpoint
from signvision.training.trainer import METRIC_COLUMNS, Recorder, TrainingState, snapshot


def holds_run(folder: Path) -> bool:
    """Whether a folder already holds a run (or a cross-validation)."""
    return folder.is_dir() and any((folder / f).exists() for f in RUN_FILES)


def check_out_folder(out: Path, *, resume: bool) -> None:
    """A new run needs a new or empty folder (a user's files are never overwritten); a resumed run needs
    its config.json. Either way the folder must be writable, which is tried now, not after training."""
    option = "resume" if resume else "out"
    if resume:
        if not (out / "config.json").is_file():
            raise RunError("no config.json there (not a signvision run)", option="resume", value=out)
    elif holds_run(out):
        raise RunError(
            f"already holds a run; choose a new folder or continue it with `resume` {out}", option="out", value=out
        )
    else:
        check_new_folder(out, "holds no run")
    check_writable_folder(out, option)


# ----------------------------------------------------------------------------------------------------
# Writing a run as it trains
# ----------------------------------------------------------------------------------------------------
class FolderRecorder(Recorder):
    """The trainer's recorder for a run folder: metrics.csv, best.pt and last.pt are written at every epoch's
    end (best.pt and last.pt atomically), on the first process only; the best weights are kept in memory too,
    so that validating them reads nothing back. `finish` writes the temperature into best.pt (once) and
    summary.json."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = Path(out)
        self.board = None

    def start(self, state: TrainingState) -> None:
        from signvision.training.board import BoardLog

        keep_metrics_up_to(self.out / "metrics.csv", state.epoch)
        if self.board is not None:
            self.board.close()
        self.board = BoardLog(self.out, state.epoch)  # TensorBoard: the same rows as metrics.csv
        if not (self.out / "last.pt").is_file():
            save_checkpoint(state.resumable(), self.out / "last.pt")  # resumable from the very start

    def epoch_end(self, state: TrainingState, row: dict, improved: bool) -> None:
        if improved or not (self.out / "best.pt").is_file():
            best = snapshot(state.weights(row["epoch"]))
            save_checkpoint(best, self.out / "best.pt")
            self.best = best  # only once best.pt holds it too
        save_checkpoint(state.resumable(), self.out / "last.pt")
        append_row(self.out / "metrics.csv", row)
        if self.board is not None:
            self.board.epoch(row)

    def last_state(self) -> dict | None:
        path = self.out / "last.pt"
        return load_checkpoint(path) if path.is_file() else None

    def best_weights(self) -> dict | None:
        if self.best is None and (self.out / "best.pt").is_file():  # a resumed run whose best epoch came earlier
            self.best = load_checkpoint(self.out / "best.pt")
        return self.best

    def finish(self, summary: dict, temperature: float | None) -> None:
        if temperature is not None:
            self.best = {**self.best, "temperature": temperature}
            save_checkpoint(self.best, self.out / "best.pt")
        write_json(self.out / "summary.json", summary)
        if self.board is not None and summary.get("status") != "finished":
            self.board.close()  # a finished run's pictures are added by the run, then it closes

    @property
    def history(self) -> pd.DataFrame:
        path = self.out / "metrics.csv"
        return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=METRIC_COLUMNS)


def write_run_start(out: Path, cfg: TrainConfig, data, *, resume: bool) -> None:
    """What a run folder holds before its first epoch: config.json (on resume too: a moved `data` or more
    `epochs` are kept), and for a new run split.csv, split.json and dropped.txt."""
    write_json(out / "config.json", asdict(cfg))
    if not resume:
        with atomic_write(out / "split.csv") as f:
            data.split.to_csv(f, index=False)
        write_json(out / "split.json", asdict(data.info))
        if data.dropped:
            with atomic_write(out / "dropped.txt") as f:
                f.write("\n".join(data.dropped) + "\n")


def append_row(path: Path, row: dict) -> None:
    """Append one epoch's figures to metrics.csv (with its header the first time)."""
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def keep_metrics_up_to(path: Path, epoch: int) -> None:
    """On resume: drop rows of epochs that last.pt does not hold (they will be trained again)."""
    if path.is_file():
        kept = pd.read_csv(path)
        with atomic_write(path, newline="") as f:
            kept[kept["epoch"] <= epoch].to_csv(f, index=False)


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


def check_run_folder(run: str | Path) -> Path:
    """The run folder exists and is finished: trained, calibrated and summarised (one line otherwise; a run
    stopped part way would predict uncalibrated probabilities from an early epoch)."""
    run = Path(run)
    if not run.is_dir():
        raise MissingError("folder not found", option="run", value=run)
    if is_ensemble(run):
        again, what = "run the same ensemble command again to finish it", "ensemble not finished"
    elif is_cv_run(run):
        fold_folders(run)
        again = "run the same train command again to finish it"
        what = "cross-validation not finished (no out-of-fold summary yet)"
    elif not (run / "best.pt").is_file():
        raise RunError("no best.pt (not a signvision run, or no epoch finished yet)", option="run", value=run)
    else:
        again, what = f"continue it with signvision train --resume {run}", "unfinished run"
    summary = run / "summary.json"
    status = read_json(summary).get("status") if summary.is_file() else None
    if status != "finished":
        done = f"stopped ({status})" if status else "not summarised"
        raise RunError(f"{what}: {done}; {again}", option="run", value=run)
    if is_ensemble(run):
        ensemble_runs(run)
    return run


def write_data_csv(table, folder: Path) -> Path:
    """The images of a table (img_IDS, path, Label) as FOLDER/data.csv, which `read_data` reads back: how a run
    trained from a DataFrame keeps its data."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.csv"
    with atomic_write(path, newline="") as f:
        table.train[["img_IDS", "path", "Label"]].to_csv(f, index=False)
    return path.resolve()
