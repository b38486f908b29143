"""Which test-time views pay for a run, chosen on its validation (out-of-fold) images, and what `--tta auto` then
means: `choose_tta` scores each built-in mode against none with a paired interval over groups and keeps the
largest gain beyond noise in RUN/evaluations/tta-choice.json, with the digest of the checkpoints it was measured
on; `chosen_tta` reads it back, refusing a choice made on other checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

from signvision.errors import DataError, OptionError
from signvision.files import atomic_write, read_json
from signvision.inference.evaluate import evaluate_run, evaluate_scored, score_validation
from signvision.logs import get_logger
from signvision.training.finished import is_ensemble, run_digest

logger = get_logger(__name__)

TTA_CANDIDATES = ("hflip", "capture")  # the built-in views `choose_tta` tries against none
TTA_CHOICE = "tta-choice.json"  # RUN/evaluations/tta-choice.json: what `--tta auto` uses


def choose_tta(run: str | Path, *, modes=TTA_CANDIDATES, device: str = "auto", batch_size: int = 128) -> dict:
    """Score RUN's validation images (out-of-fold for a `--folds` run or an ensemble) with each TTA mode and keep
    the one whose paired log loss gain over no TTA is largest and beyond noise (its 95% interval below zero);
    none if no mode is. Written to RUN/evaluations/tta-choice.json, which `predict --tta auto` and
    `serve --tta auto` read. Returns {"chosen": mode, "gains": {mode: paired gain}}."""
    run = Path(run)
    if is_ensemble(run):
        gains = {m: evaluate_run(run, tta=m, device=device, batch_size=batch_size)["tta_gain"] for m in modes}
    else:  # the images decoded and scored without views once, for every mode
        members, scored = score_validation(run, device=device, batch_size=batch_size)
        gains = {m: evaluate_scored(run, members, scored, m)["tta_gain"] for m in modes}
    paying = {m: g for m, g in gains.items() if g["log_loss_ci"] and g["log_loss_ci"][1] < 0}
    chosen = min(paying, key=lambda m: paying[m]["log_loss"]) if paying else "none"
    choice = {"chosen": chosen, "gains": gains, "rule": "the largest log loss gain whose 95% interval is below 0"}
    choice["run_digest"] = run_digest(run)  # the checkpoints it was measured on: a retrained run must choose again
    (run / "evaluations").mkdir(parents=True, exist_ok=True)
    with atomic_write(run / "evaluations" / TTA_CHOICE) as f:
        f.write(json.dumps(choice, indent=2) + "\n")
    logger.info(f"TTA chosen on the validation images: {chosen} (kept in {run / 'evaluations' / TTA_CHOICE})")
    return choice


def chosen_tta(run: str | Path | None) -> str:
    """The TTA mode `choose_tta` kept for RUN (what `--tta auto` means), if it was chosen on the run's current
    checkpoints (after `train --resume` replaced best.pt, or an ensemble refitted, it must be chosen again)."""
    path = Path(run) / "evaluations" / TTA_CHOICE if run is not None else None
    again = f"signvision evaluate --run {run} --tta choose"
    if path is None or not path.is_file():
        raise OptionError(
            f"auto uses the choice made on the run's validation images; make it first: {again}",
            option="tta",
            value="auto",
        )
    choice = read_json(path)
    if not isinstance(choice.get("chosen"), str):
        raise DataError(f"{path}: no TTA mode under 'chosen' (the file was edited?); choose again: {again}")
    if choice.get("run_digest") != run_digest(Path(run)):
        raise OptionError(
            f"the choice in {path} was made on other checkpoints (the run was trained further or refitted since); "
            f"choose again: {again}",
            option="tta",
            value="auto",
        )
    return choice["chosen"]
