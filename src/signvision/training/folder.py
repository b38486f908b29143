"""The run folder: what a training run leaves on disk, written so that nothing is lost.

    config.json   the TrainConfig                      split.csv / split.json  the split, what it leaks
    metrics.csv   one row per epoch                    summary.json            the final figures
    best.pt       the best epoch's weights (by `select`: log loss by default) and the fitted temperature
    last.pt       everything needed to resume (model, optimizer, schedule, EMA, epoch)
    .lock         held while a process writes the run (another writer is refused; a dead one's is taken over)

`claim_folder` makes a new (or empty) folder this process's run atomically, so that two commands started
together into one folder cannot both write it. Every file is written to a temporary file beside it and
renamed, so that an interruption or a full disk leaves the earlier file, never half of one; a run killed
before its first checkpoint is simply started again by `resume`.
"""

from __future__ import annotations

import csv
import json
import os
import socket
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from signvision.config import TrainConfig
from signvision.errors import OptionError, RunError
from signvision.files import atomic_write, check_writable_folder, write_json
from signvision.training.checkpoint import load_checkpoint, save_checkpoint
from signvision.training.trainer import METRIC_COLUMNS, Recorder, TrainingState

RUN_FILES = ("config.json", "last.pt", "best.pt", "metrics.csv", "cv.json")
LOCK = ".lock"


def holds_run(folder: Path) -> bool:
    """Whether a folder already holds a run (or a cross-validation)."""
    return folder.is_dir() and any((folder / f).exists() for f in RUN_FILES)


# ----------------------------------------------------------------------------------------------------
# One writer at a time
# ----------------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_folder(folder: Path, option: str = "out") -> Path:
    """Take `folder` for this process: create its lock file exclusively (one of two processes started
    together wins; the other gets a RunError naming the writer). A lock left by a process that no longer
    runs on this machine is taken over. Returns the lock file (`release_folder` removes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            pid, host = owner.get("pid"), owner.get("host")
            if owner == me:
                return lock
            if isinstance(pid, int) and host == me["host"] and not _alive(pid):
                lock.unlink(missing_ok=True)  # its writer died: take it over
                continue
            raise RunError(
                f"another signvision process (pid {pid} on {host}) is writing it; wait for it to finish, "
                "or remove its .lock if that process is gone",
                option=option,
                value=folder,
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return lock
    raise RunError("could not take its .lock", option=option, value=folder)


def release_folder(folder: Path) -> None:
    """Let go of a folder this process claimed."""
    (Path(folder) / LOCK).unlink(missing_ok=True)


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
    elif out.exists() and not out.is_dir():
        raise OptionError("exists and is not a folder", option="out", value=out)
    elif out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        raise OptionError(
            "the folder is not empty and holds no run; choose a new or empty folder", option="out", value=out
        )
    check_writable_folder(out, option)


# ----------------------------------------------------------------------------------------------------
# Writing a run as it trains
# ----------------------------------------------------------------------------------------------------
class FolderRecorder(Recorder):
    """The engine's recorder for a run folder: metrics.csv, best.pt and last.pt are written at every epoch's
    end (best.pt and last.pt atomically), on the first process only."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = Path(out)

    def start(self, state: TrainingState) -> None:
        keep_metrics_up_to(self.out / "metrics.csv", state.epoch)
        if not (self.out / "last.pt").is_file():
            save_checkpoint(state.resumable(), self.out / "last.pt")  # resumable from the very start

    def epoch_end(self, state: TrainingState, row: dict, improved: bool) -> None:
        if improved or not (self.out / "best.pt").is_file():
            save_checkpoint(state.weights(row["epoch"]), self.out / "best.pt")
        save_checkpoint(state.resumable(), self.out / "last.pt")
        append_row(self.out / "metrics.csv", row)

    def last_state(self) -> dict | None:
        path = self.out / "last.pt"
        return load_checkpoint(path) if path.is_file() else None

    def best_weights(self) -> dict:
        return load_checkpoint(self.out / "best.pt")

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


def store_temperature(out: Path, temperature: float) -> None:
    """Write the fitted temperature into best.pt."""
    best = load_checkpoint(out / "best.pt")
    best["temperature"] = temperature
    save_checkpoint(best, out / "best.pt")


def finished_epochs(out: Path) -> int:
    """The epochs a run folder's last.pt holds (0 when there is none)."""
    path = out / "last.pt"
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"]) if path.is_file() else 0
