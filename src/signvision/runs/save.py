"""Writing a run trained in memory as a run folder: the same files `signvision train --out` writes, so that the
command line (`evaluate`, `predict`, `report`, `serve`, `compare`, `train --resume`) takes it like any other."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from signvision.files import atomic_write, claim_folder, release_folder, write_json
from signvision.training.checkpoint import save_checkpoint
from signvision.training.folder import check_out_folder, write_data_csv, write_run_start


def save_run(run, folder: Path) -> Path:
    """Write the in-memory `run` (trained by `Run.fit`) into the new (or empty) `folder`; returns the folder.
    Its report is written by `Run.save`, from the scores training computed."""
    folder = Path(folder)
    check_out_folder(folder, resume=False)
    claim_folder(folder)
    try:
        data, recorder = run._session.prepared.data, run._session.recorder
        cfg = replace(run.cfg, out=str(folder.resolve()))
        if run.table is not None:
            cfg = replace(cfg, data=str(write_data_csv(data.table, folder)))
        cfg.absolute_paths()
        write_run_start(folder, cfg, data, resume=False)
        best = {**recorder.best_weights(), "config": asdict(cfg), "temperature": run.temperature}
        last = {**recorder.last_state(), "config": asdict(cfg)}
        save_checkpoint(best, folder / "best.pt")
        save_checkpoint(last, folder / "last.pt")
        with atomic_write(folder / "metrics.csv", newline="") as f:
            run.history.to_csv(f, index=False)
        write_json(folder / "summary.json", run.summary)
    finally:
        release_folder(folder)
    run.cfg = cfg
    return folder
