"""Writing a run trained in memory as a run folder: the same files `signvision train --out` writes, so that the
command line (`evaluate`, `predict`, `report`, `serve`, `compare`, `train --resume`) takes it like any other."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from signvision.files import atomic_write, write_json


def write_data_csv(table, folder: Path) -> Path:
    """The images of a table (img_IDS, path, Label) as FOLDER/data.csv, which `read_data` reads back."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.csv"
    with atomic_write(path, newline="") as f:
        table.train[["img_IDS", "path", "Label"]].to_csv(f, index=False)
    return path.resolve()


def save_run(run, folder: Path) -> Path:
    """Write the in-memory `run` into the new (or empty) `folder`; returns the folder."""
    from signvision.training import folder as rf
    from signvision.training.checkpoint import save_checkpoint

    folder = Path(folder)
    rf.check_out_folder(folder, resume=False)
    rf.claim_folder(folder)
    try:
        prepared, recorder = run._prepared, run._recorder
        cfg = replace(run.cfg, out=str(folder.resolve()))
        if run.table is not None:
            cfg = replace(cfg, data=str(write_data_csv(prepared.data.table, folder)))
        cfg.absolute_paths()
        rf.write_run_start(folder, cfg, prepared.data, resume=False)
        best = {**recorder.best_weights(), "config": asdict(cfg), "temperature": run.temperature}
        last = {**recorder.last_state(), "config": asdict(cfg)}
        save_checkpoint(best, folder / "best.pt")
        save_checkpoint(last, folder / "last.pt")
        with atomic_write(folder / "metrics.csv", newline="") as f:
            run.history.to_csv(f, index=False)
        write_json(folder / "summary.json", run.summary)
    finally:
        rf.release_folder(folder)
    run.cfg = cfg
    return folder
