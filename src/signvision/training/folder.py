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
What a finished, usable run folder is (`check_run_folder` and the readers of `--folds` runs and ensembles) is
training/finished.py: the command line asks it before PyTorch is loaded.
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from signvision.config import TrainConfig
from signvision.errors import RunError
from signvision.files import RUN_FILES, atomic_write, check_new_folder, check_writable_folder, write_json
from signvision.training.checkpoint import load_checkpoint, save_checkpoint
from signvision.training.trainer import METRIC_COLUMNS, Recorder, TrainingState, snapshot


def holds_run(folder: Path) -> bool:
    """Whether a folder already holds a run (or a cross-validation)."""
    return folder.is_dir() and any((folder / f).exists() for f in RUN_FILES)


def check_out_folder(out: Path, *, resume: bool, option: str = "out") -> None:
    """A new run needs a new or empty folder (a user's files are never overwritten); a resumed run needs
    its config.json. Either way the folder must be writable, which is tried now, not after training.
    `option`: the name errors give a new folder (a submit job's is `work`)."""
    option = "resume" if resume else option
    if resume:
        if not (out / "config.json").is_file():
            raise RunError("no config.json there (not a signvision run)", option="resume", value=out)
    elif holds_run(out):
        raise RunError(
            f"already holds a run; choose a new folder or continue it with `resume` {out}", option=option, value=out
        )
    else:
        check_new_folder(out, "holds no run", option)
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


def write_data_csv(table, folder: Path) -> Path:
    """The images of a table (img_IDS, path, Label) as FOLDER/data.csv, which `read_data` reads back: how a run
    trained from a DataFrame keeps its data."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.csv"
    with atomic_write(path, newline="") as f:
        table.train[["img_IDS", "path", "Label"]].to_csv(f, index=False)
    return path.resolve()
