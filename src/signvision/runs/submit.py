"""The best submission for the time you have: `sv.submit(data, time="30m", out="submission.csv")`, and
`signvision submit --data DIR --time 30m --out submission.csv`.

One job, in a folder of its own (WORK, `submission-job/` beside OUT unless given), made of ordinary pieces
that every other command takes:

    WORK/lenet          stage 1: the README's LeNet recipe, a `--folds` run (5 folds, or 3 or 2 if short)
    WORK/lite0          stage 2: EfficientNet-Lite0 from its packaged ImageNet weights, the same folds
    WORK/lenet30        stage 3: LeNet for 30 epochs (where Lite0 did not fit, it still may)
    WORK/ensemble-N     the N finished stages combined, weights fitted out of fold (`signvision ensemble`)
    WORK/distilled      with `distill`: one LeNet trained on what predicts (`signvision distill`), to serve
    WORK/submit.json    what the job is (the data, the recipes: the same command must name the same job)
    WORK/stages.json    each stage's time, out-of-fold figures with intervals over groups, and paired gain
    WORK/submit.html    the same, as a page

Before a stage it times the stage's recipe on this machine (a few training steps: images/s at its size) and
estimates the stage; a stage that does not fit in the time left is skipped and said. After each stage the
best submission so far is written to OUT (atomically: a budget cut short or a Ctrl-C leaves a complete,
calibrated file). The same command again skips the finished stages and continues an interrupted one; with a
larger `--time` it goes on from where it stopped. Nothing is fitted on the test images (no pseudo-labels:
on a withheld real capture the second round did not carry, docs/results.md).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from signvision.errors import OptionError
from signvision.files import read_json, write_json
from signvision.logs import get_logger, log_to

logger = get_logger(__name__)

FOLDS = (5, 3, 2)  # the job's folds: the most with which every stage's full recipe fits (every stage has the same
# folds, so that they can be ensembled: a short budget gets fewer folds, not under-trained models)
# the stages in order of expected value (docs/results.md, the session benchmark): name -> training settings
STAGES = {
    "lenet": {"model": "lenet"},  # the defaults: 64 px, 15 epochs
    "lite0": {"model": "tf_efficientnet_lite0", "weights": "imagenet", "lr": 2e-3, "epochs": 6, "image_size": 128},
    "lenet30": {"model": "lenet", "epochs": 30},  # where Lite0 does not fit: alone 0.229 against LeNet's 0.281
}
DISTILLED = STAGES["lenet"]  # `distill`: the one network trained on the job's out-of-fold probabilities
OVERHEAD = 1.25  # a stage's time over its training steps' alone (validation, decoding, calibration, pages) ...
SHORTEST_EPOCHS = 4  # ... and the fewest epochs the first stage is cut to when the budget is short
SHORTEST_SHARE = 2 / 3  # a later stage runs with fewer epochs if at least this share of them fits, else is skipped


def parse_time(text) -> float:
    """A time budget in seconds: "30m", "1h", "1h30m", "90s", or a number of minutes.

    Example:
        >>> parse_time("1h30m"), parse_time("90s"), parse_time(20)
        (5400.0, 90.0, 1200.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text) * 60
    else:
        found = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", str(text))
        if not found or not any(found.groups()):
            try:
                seconds = float(text) * 60
            except ValueError:
                raise OptionError(
                    "expected a duration such as 30m, 1h, 1h30m or 90s", option="time", value=text
                ) from None
        else:
            h, m, s = (float(g or 0) for g in found.groups())
            seconds = h * 3600 + m * 60 + s
    if not 0 < seconds < 7 * 24 * 3600:
        raise OptionError("must be more than 0 and under a week", option="time", value=text)
    return seconds


@dataclass
class Job:
    """Where a submit job stands: its folders, its deadline and what each stage gave."""

    data: str
    work: Path
    out: Path
    deadline: float
    settings: dict  # settings every stage shares (seed, device, audit, ...)
    folds: int | None = None  # chosen before the first stage
    rates: dict = field(default_factory=dict)  # training images/s here of each network and size (probed)
    paces: dict = field(default_factory=dict)  # each network and size: a stage's time / its estimate (1.0 untried)
    after: float = 0.0  # seconds each finished stage adds to writing a submission (ensembling, predicting)

    @property
    def left(self) -> float:
        return self.deadline - time.monotonic()


def training_rate(settings: dict, n_classes: int, device: str = "auto", steps: int = 4) -> float:
    """Training images/s of a recipe on this machine: a few steps on a batch of random images at its size."""
    import torch

    from signvision.config import TrainConfig
    from signvision.models.factory import build_model, freeze_first_blocks
    from signvision.training.runtime import pick_device
    from signvision.training.trainer import adamw

    cfg = TrainConfig(**settings)
    dev = pick_device(device)
    model = build_model(cfg.model, n_classes, image_size=cfg.image_size)
    freeze_first_blocks(model, cfg.freeze_blocks)  # their backward pass skipped, as in training
    model = model.to(dev).train()
    optimizer = adamw(model.parameters(), dev, lr=1e-3)  # as training makes it
    # (B, 3, S, S) laid out as the loop's batches are: views of (B, S, S, 3) images (NHWC in memory), which
    # oneDNN keeps through the network; an NCHW probe made Lite0 look 1.5 times slower than it trains
    x = torch.randn(cfg.batch_size, cfg.image_size, cfg.image_size, 3, device=dev).permute(0, 3, 1, 2)
    y = torch.randint(0, n_classes, (cfg.batch_size,), device=dev)
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()  # the first step warms up
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return steps * cfg.batch_size / (time.perf_counter() - started)


def estimate_seconds(settings: dict, n_images: int, rate: float, folds: int) -> float:
    """A stage's time: every fold trains on (k-1)/k of the images for its epochs, plus the overhead."""
    from signvision.config import TrainConfig

    epochs = settings.get("epochs", TrainConfig.epochs)
    return OVERHEAD * epochs * n_images * (folds - 1) / rate


UNTIMED = ("epochs", "lr", "folds", "seed")  # settings that do not change a training step's time


def step_of(job: Job, name: str) -> str:
    """What sets the time of a training step of stage `name`: its network, size and the rest, not its epochs."""
    settings = {**job.settings, **STAGES[name]}
    return repr(sorted((k, str(v)) for k, v in settings.items() if k not in UNTIMED))


def rate_of(job: Job, name: str, n_classes: int) -> float:
    """Training images/s of stage `name`'s recipe here, measured once a job for each network and size (LeNet
    for 15 or 30 epochs is one measurement: two probes of one network read 375 and 481 images/s, and the
    pace learnt on one then misjudged the other by a quarter)."""
    step = step_of(job, name)
    if step not in job.rates:
        settings = {**job.settings, **STAGES[name]}
        job.rates[step] = training_rate(settings, n_classes, job.settings.get("device", "auto"))
    return job.rates[step]


def pace_of(job: Job, name: str) -> float:
    """How long stage `name` takes here against its estimate: learnt on an earlier stage of the same network
    and size, else 1.0. One pace for all networks misjudged the next by up to 1.5x (LeNet's loader and
    calibration are a larger share of its stage than Lite0's: a pace of 1.3 learnt on LeNet put Lite0 at 14
    minutes where it took 11, then Lite0's pace put a 30-epoch LeNet at too few minutes, and the job overran)."""
    return job.paces.get(step_of(job, name), 1.0)


def choose_folds(job: Job, n_images: int, n_classes: int) -> int:
    """The job's folds: those of FOLDS with which the most stages fit in the time left, in order (two or more
    only with 3 folds or more: models trained on half the images are not worth a second recipe), the most
    folds among them; if not even the first stage fits, the fewest (the first stage is then cut)."""
    rates = {name: rate_of(job, name, n_classes) for name in STAGES}
    left = max(job.left, 0.0)

    def stages_that_fit(k: int) -> int:
        spent, count = 0.0, 0
        for name in STAGES:
            spent += estimate_seconds({**job.settings, **STAGES[name]}, n_images, rates[name], k) * pace_of(job, name)
            if spent > left:
                break
            count += 1
        return count if k >= 3 else min(count, 1)

    fits = {k: stages_that_fit(k) for k in FOLDS}
    folds = max(FOLDS, key=lambda k: (fits[k], k)) if max(fits.values()) else FOLDS[-1]
    said = ", ".join(f"{name} {rate:.0f}" for name, rate in rates.items())
    logger.info(f"training images/s here: {said}; {folds} folds ({fits[folds]} of {len(STAGES)} stages fit in turn)")
    return folds


def plan_stage(job: Job, name: str, n_images: int, n_classes: int, done: int) -> tuple[dict, float] | None:
    """(the settings of stage `name`, folds included, and its estimated seconds of training before the learnt
    pace) if it fits in the time left, after `done` finished stages; None: skip it. Its time is its training at
    its network's pace, plus writing the submission of `done` + 1 stages. The first stage is cut to fewer
    epochs if it does not fit, and runs even so (the job must hold a submission); a later one is cut if at
    least SHORTEST_SHARE of its epochs fit, else skipped."""
    from signvision.config import TrainConfig

    settings = {**job.settings, **STAGES[name], "folds": job.folds}
    raw = estimate_seconds(settings, n_images, rate_of(job, name, n_classes), job.folds)
    training, writing = raw * pace_of(job, name), job.after * (done + 1)
    needed, left = training + writing, max(job.left, 0.0)
    if needed <= left:
        logger.info(f"stage {name}: {job.folds} folds, about {needed / 60:.1f} min of {left / 60:.1f}")
        return settings, raw
    epochs = settings.get("epochs", TrainConfig.epochs)
    fitted = int(epochs * max(left - writing, 0.0) / training)  # the epochs that fit
    if not done:
        fitted = min(epochs, max(SHORTEST_EPOCHS, fitted))
    elif fitted < math.ceil(epochs * SHORTEST_SHARE):  # a later stage: cut a little, else skipped
        logger.info(f"stage {name}: skipped (about {needed / 60:.1f} min needed, {left / 60:.1f} left)")
        return None
    logger.info(
        f"stage {name}: {job.folds} folds of {epochs} epochs need about {needed / 60:.1f} min, "
        f"{left / 60:.1f} left: {fitted} epochs"
        + (" (the fewest it runs: it will go over the budget)" if fitted * training / epochs + writing > left else "")
    )
    return {**settings, "epochs": fitted}, raw * fitted / epochs


def oof_figures(folder: Path) -> dict:
    """Out-of-fold log loss and accuracy, with 95% intervals over the split's groups, of a `--folds` run or an
    ensemble (its summary has them)."""
    summary = read_json(folder / "summary.json")
    if "ensemble" in summary:
        gain = summary["ensemble"]["gain_over_best_run"]
        keys = ("val_log_loss", "val_log_loss_ci", "val_accuracy", "val_accuracy_ci")
        return {**{k.removeprefix("val_"): summary[k] for k in keys}, "gain_over_best_stage": gain}
    from signvision.grouping.splits import split_group_keys_of
    from signvision.inference.members import load_run_model
    from signvision.runs.ensemble import figures, oof_arrays, read_oof_run

    run = read_oof_run(folder)
    task = load_run_model(folder / "fold1").task
    base, y, parts = oof_arrays([run], task)
    found = figures(y, parts[0], split_group_keys_of(run.folds, base["img_IDS"]), task.names)
    return {k: found[k] for k in ("log_loss", "log_loss_ci", "accuracy", "accuracy_ci")}


def best_so_far(job: Job, finished: list[str]) -> Path:
    """The run that predicts: the one finished stage, or the ensemble of them (WORK/ensemble-N)."""
    if len(finished) == 1:
        return job.work / finished[0]
    from signvision.runs.ensemble import make_ensemble

    folder = job.work / f"ensemble-{len(finished)}"
    if not (folder / "summary.json").is_file():
        make_ensemble([job.work / n for n in finished], folder)
    return folder


def write_submission(job: Job, run_folder: Path) -> str:
    """Predict the test images with `run_folder` and replace OUT with it atomically; returns its digest."""
    from signvision.runs.run import Run
    from signvision.training.finished import file_digest

    Run.load(run_folder).predict(job.data).to_csv(job.out, overwrite=True)
    return file_digest(job.out)


def check_out(out: Path, work: Path, overwrite: bool) -> None:
    """OUT may be replaced only if this job wrote it (or with `overwrite`): a user's file is never lost."""
    from signvision.files import refuse_overwrite
    from signvision.training.finished import file_digest

    state = work / "stages.json"
    ours = state.is_file() and out.is_file() and read_json(state).get("digest") == file_digest(out)
    refuse_overwrite(out, overwrite or ours)


def submit(
    data,
    *,
    time: str | float = "30m",
    out: str | Path = "submission.csv",
    work: str | Path | None = None,
    overwrite: bool = False,
    distill: bool = False,
    log=None,
    **settings,
) -> dict:
    """The best submission this machine makes in `time`: the stages of STAGES in order, each a `--folds` run in
    WORK, the best submission so far written to OUT after each (see the module's docstring).

    Args:
        data: a Zindi folder (Train.csv, Test.csv, Images/): its test images are predicted.
        time: the budget: "30m", "1h30m", "90s", or minutes as a number.
        out: the submission CSV (replaced only if this job wrote it, or with `overwrite`).
        work: the job's folder (default: OUT's name + "-job" beside it); the same call again continues it.
        distill: also train WORK/distilled, one LeNet on the out-of-fold probabilities of what predicts, if it
            fits in the time left: one network to serve and export (the submission stays the ensemble's).
        log: where its lines go instead of the "signvision" logger.
        settings: training settings every stage shares (`seed`, `device`, `audit`, `workers`, ...).

    Returns:
        the job's record (stages.json): each stage's time and out-of-fold figures, the submission, the time used.

    Example:
        >>> sv.submit("~/zindi-ksl", time="20m", out="submission.csv")["submission"]   # doctest: +SKIP
        'submission.csv'
    """
    from signvision.logs import check_log

    check_log(log)
    budget = parse_time(time)
    with log_to(log):
        return run_job(Path(data), budget, Path(out), work, overwrite, settings, distill)


def run_job(data: Path, budget: float, out: Path, work, overwrite: bool, settings: dict, distill=False) -> dict:
    """`submit`'s work, once its arguments are checked."""
    from signvision.data.tables import read_data
    from signvision.runs.jobs import job_folder
    from signvision.runs.run import settings_config

    started = time.monotonic()
    work = Path(work) if work is not None else out.with_name(out.stem + "-job")
    shared = {k: v for k, v in settings.items() if k not in ("folds", "out")}
    shared_cfg = settings_config(None, shared).check()  # a wrong setting is one line now
    table = read_data(data)
    if table.test is None:
        raise OptionError("holds no test images (Test.csv) to predict", option="data", value=data)
    check_out(out, work, overwrite)
    spec = {"data": str(data.resolve()), "folds": FOLDS, "stages": STAGES, "settings": recipe_part(shared_cfg)}
    job = Job(str(data), work, out, started + budget, shared)
    with job_folder(work, spec, "submit.json", "a submit job", option="work"):
        record = read_json(work / "stages.json") if (work / "stages.json").is_file() else {"stages": []}
        done = [row["stage"] for row in record["stages"]]
        job.folds = record.get("folds")
        job.paces, job.after = record.get("paces", {}), record.get("after_seconds", 0.0)  # learnt by earlier calls
        for name in STAGES:
            if name in done:
                continue
            started_spec = work / name / "cv.json"
            if started_spec.is_file():  # started by an earlier call: continued with the folds and epochs it had
                cv = read_json(started_spec)
                plan = {**shared, **STAGES[name], "epochs": cv["config"]["epochs"], "folds": cv["folds"]}, None
            else:
                job.folds = job.folds or choose_folds(job, len(table.train), len(table.classes))
                plan = plan_stage(job, name, len(table.train), len(table.classes), done=len(done))
            if plan is None:
                continue
            stage_started = time.monotonic()
            job.folds = record["folds"] = plan[0]["folds"]
            train_stage(job, name, *plan)
            plan, trained = plan[0], time.monotonic()
            predicting = best_so_far(job, done + [name])
            digest = write_submission(job, predicting)
            done.append(name)
            job.after = (time.monotonic() - trained) / len(done)
            record["stages"].append(
                {
                    "stage": name,
                    "model": plan["model"],
                    "epochs": plan.get("epochs"),
                    "seconds": round(time.monotonic() - stage_started, 1),
                    "predicts_with": predicting.name,
                    **oof_figures(predicting),
                }
            )
            record.update(digest=digest, submission=str(out), predicts_with=predicting.name)
            record.update(paces=job.paces, after_seconds=round(job.after, 1))
            write_json(work / "stages.json", record)
            logger.info(f"stage {name}: wrote {out} ({describe_row(record['stages'][-1])})")
        if distill and done and "distilled" not in record:
            distil_stage(job, record, len(table.train), len(table.classes))
        record["seconds"] = round(time.monotonic() - started, 1)
        record["budget_seconds"] = budget
        write_json(work / "stages.json", record)
        from signvision.reports.submit_page import write_submit_page

        write_submit_page(work / "submit.html", record)
    logger.info(closing_lines(record, work))
    return record


def distil_stage(job: Job, record: dict, n_images: int, n_classes: int) -> None:
    """WORK/distilled: one LeNet trained on the out-of-fold probabilities of what predicts (runs/api.py:
    distill), if it fits in the time left; its validation figures go into the record."""
    from signvision.config import TrainConfig
    from signvision.runs.api import distill

    settings = {**job.settings, **DISTILLED}
    rate = rate_of(job, "lenet", n_classes)  # DISTILLED is the lenet stage's recipe: timed once a job
    needed = OVERHEAD * TrainConfig.epochs * n_images * (1 - TrainConfig.val_fraction) / rate * pace_of(job, "lenet")
    if needed > max(job.left, 0.0) and not (job.work / "distilled" / "config.json").is_file():
        logger.info(f"distilled: skipped (about {needed / 60:.1f} min needed, {max(job.left, 0) / 60:.1f} left)")
        return
    started = time.monotonic()
    teacher = job.work / record["predicts_with"]
    folder = job.work / "distilled"
    if (folder / "summary.json").is_file():  # finished, then killed before the record was written
        from signvision.runs.run import load_run

        student = load_run(folder)
    elif (folder / "config.json").is_file():  # interrupted: continued
        from signvision.runs.api import train

        student = train(resume=folder)
    else:
        student = distill(teacher, job.data, out=folder, **settings)
    s = student.summary
    record["distilled"] = {
        "folder": folder.name,
        "teacher": teacher.name,
        "seconds": round(time.monotonic() - started, 1),
        **{
            k.removeprefix("val_"): s[k] for k in ("val_log_loss", "val_log_loss_ci", "val_accuracy", "val_accuracy_ci")
        },
    }
    write_json(job.work / "stages.json", record)


def recipe_part(cfg) -> dict:
    """The shared settings that change what is learnt (defaults included; not the device or workers): part of the
    job's spec, so that `seed=0` given or not is the same job."""
    from signvision.config import RECIPE, SOURCE

    return {k: getattr(cfg, k) for k in (*SOURCE, *RECIPE) if k not in ("data", "folds")}


def epochs_trained(run: Path) -> int:
    """Epochs finished so far in a `--folds` run's folds (the rows of their metrics.csv)."""
    rows = 0
    for metrics in run.glob("fold*/metrics.csv"):
        try:
            rows += max(0, len(metrics.read_text().splitlines()) - 1)
        except OSError:
            pass
    return rows


def train_stage(job: Job, name: str, settings: dict, estimate: float | None) -> None:
    """Train stage `name` (a `--folds` run in WORK/name; continued if it was interrupted), and learn its
    network's pace: how long its stages take here against their estimate, from the share of the stage this call
    trained (a stage continued after a kill has only its rest to time: against the whole stage's estimate it
    would make the next stages look three times faster than they are)."""
    from signvision.config import TrainConfig
    from signvision.runs.api import train_folds

    before, started = epochs_trained(job.work / name), time.monotonic()
    train_folds(job.data, out=job.work / name, **settings)
    total = settings["folds"] * settings.get("epochs", TrainConfig.epochs)
    share = (epochs_trained(job.work / name) - before) / total
    if estimate and share >= 0.25:  # too little of it trained here says little about the pace
        job.paces[step_of(job, name)] = (time.monotonic() - started) / (estimate * share)


def describe_row(row: dict) -> str:
    """A stage's submission in words: its out-of-fold figures, and an ensemble's paired gain."""
    lo, hi = row["log_loss_ci"]
    text = f"out-of-fold log loss {row['log_loss']:.3f} [{lo:.3f}, {hi:.3f}], accuracy {row['accuracy']:.3f}"
    gain = row.get("gain_over_best_stage") or {}
    if gain.get("log_loss_ci"):
        glo, ghi = gain["log_loss_ci"]
        text += f"; against its best single stage {gain['log_loss']:+.3f} [{glo:+.3f}, {ghi:+.3f}]"
    return text


def closing_lines(record: dict, work: Path) -> str:
    """The job's last lines: the submission, what it expects of it, and the time against the budget."""
    if not record["stages"]:
        return f"no stage fitted in the budget; nothing written. The job: {work}"
    last = record["stages"][-1]
    over = record["seconds"] - record["budget_seconds"]
    timing = f"{record['seconds'] / 60:.1f} min of {record['budget_seconds'] / 60:.1f}" + (
        f" (over by {over / 60:.1f} min)" if over > 0 else ""
    )
    distilled = record.get("distilled")
    served = (
        f" One network to serve: {work / distilled['folder']} (LeNet distilled from {distilled['teacher']}: "
        f"validation log loss {distilled['log_loss']:.3f}, accuracy {distilled['accuracy']:.3f})."
        if distilled
        else ""
    )
    return (
        f"{timing}. Submission: {record['submission']}, from {last['predicts_with']} "
        f"({', '.join(r['stage'] for r in record['stages'])}): {describe_row(last)}. That is what it expects on "
        f"images like the training capture; a new capture usually scores worse.{served} Page: {work / 'submit.html'}"
    )
