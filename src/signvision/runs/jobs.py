"""Resumable job folders: a cross-validation (`--folds`) or an ablation is many runs in one folder, and running
the same command again skips the finished runs and continues an unfinished one, while a command with other
settings is refused.

    job_folder       claim the folder for one job (one writer at a time) and check its spec file (cv.json,
                     ablation.json): a new folder gets it, an existing one must hold the same settings
    differing        the settings in which an existing job and the command given differ (named in the refusal)
    train_or_resume  one run of the job: skipped when finished, continued when started (even one killed
                     before its first checkpoint), trained otherwise
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from signvision.config import TrainConfig
from signvision.errors import OptionError, RunError
from signvision.files import read_json


def differing(held: dict, spec: dict, within: str = "") -> list[str]:
    """The settings in which two job specs differ, as dotted names (`settings.lr`, `stages.lite0`), sorted."""
    names = []
    for key in sorted(set(held) | set(spec)):
        a, b = held.get(key), spec.get(key)
        if a != b:
            both_dicts = isinstance(a, dict) and isinstance(b, dict)
            names += differing(a, b, f"{within}{key}.") if both_dicts else [f"{within}{key}"]
    return names


@contextmanager
def job_folder(out: Path, spec: dict, spec_name: str, what: str, option: str = "out"):
    """Claim `out` for a job described by `spec` (written as `spec_name`); yields whether the job is new.
    `option`: the name errors give the folder."""
    from signvision.files import claim_folder, holds_user_files, release_folder, write_json
    from signvision.training.folder import check_out_folder

    out = Path(out)
    spec = json.loads(json.dumps(spec))  # as it reads back from JSON
    existing = out / spec_name
    if existing.is_file():
        held = read_json(existing)
        if held != spec:
            named = ", ".join(differing(held, spec))
            raise RunError(f"holds {what} with other settings ({named}); use a new folder", option=option, value=out)
    elif holds_user_files(out):
        raise OptionError(f"exists and is not {what} folder; use a new folder", option=option, value=out)
    else:
        check_out_folder(out, resume=False, option=option)
    created = not out.exists()
    claim_folder(out, option)
    new = not existing.is_file()
    try:
        if new:
            write_json(existing, spec)
        yield new
    except Exception:
        if new and not holds_user_files(out, also=(spec_name,)):
            existing.unlink(missing_ok=True)  # a job that failed before its first run leaves nothing behind
        raise
    finally:
        release_folder(out)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def finished(run: Path) -> bool:
    """Whether a run folder holds a finished run."""
    summary = Path(run) / "summary.json"
    return summary.is_file() and read_json(summary).get("status") == "finished"


def train_or_resume(run: Path, cfg: TrainConfig, report: bool = False) -> dict | None:
    """Train `cfg` into `run`, continue it if it was started, or skip it if it is finished (None); `report`:
    with its report.html."""
    from signvision.runs.run import fit

    run = Path(run)
    if finished(run):
        return None
    started = (run / "config.json").is_file()
    return fit(TrainConfig.load(run / "config.json") if started else cfg, resume=started, report=report)
