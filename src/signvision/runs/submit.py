"""The best submission for the time you have: `sv.submit(data, time="30m", out="submission.csv")`, and
`signvision submit --data DIR --time 30m --out submission.csv`.

One job, in a folder of its own (WORK, `submission-job/` beside OUT unless given), made of ordinary pieces
that every other command takes:

    WORK/lenet          stage 1: the README's LeNet recipe, a `--folds` run (5 folds, or 3 or 2 if short)
    WORK/lite1          stage 2: EfficientNet-Lite1 from its packaged ImageNet weights, the same folds
    WORK/lite0          stage 3: EfficientNet-Lite0 the same way (a third member; the second where Lite1 does
                        not fit)
    WORK/lenet-pl       with `second_round`: LeNet again, with the test images the stages before are sure of
                        (WORK/pseudo-labels.csv: their guesses; off unless asked, it fits on the test images)
    WORK/lenet30        stage 4: LeNet for 30 epochs (where Lite1 or Lite0 did not fit, it still may); with
                        `second_round` the second round takes its place
    WORK/ensemble-N     the N finished stages combined, weights fitted out of fold (`signvision ensemble`);
                        after the second round, without the LeNet it replaces
    WORK/distilled      with `distill`: one LeNet trained on what predicts (`signvision distill`), to serve
    WORK/submit.json    what the job is (the data, the recipes: the same command must name the same job)
    WORK/stages.json    each stage's time, out-of-fold figures with intervals over groups, and paired gain
    WORK/submit.html    the same, as a page

Before a stage it times the stage's recipe on this machine (a few training steps: images/s at its size) and
estimates the stage (`runs/planner.py`); a stage that does not fit in the time left is skipped and said. After
each stage the best submission so far is written to OUT (atomically: a budget cut short or a Ctrl-C leaves a
complete, calibrated file). The same command again skips the finished stages and continues an interrupted one;
with a larger `--time` it goes on from where it stopped. Nothing is fitted on the test images unless asked
(`second_round`: pseudo-labels paid on the session benchmark's new capture, not on a withheld real one,
docs/zindi.md).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from signvision.errors import OptionError
from signvision.files import read_json, write_json
from signvision.logs import get_logger, log_to
from signvision.runs import planner  # STAGES and FOLDS read from it when used (tests replace them there)
from signvision.runs.planner import (
    DISTILLED,
    OVERHEAD,
    Job,
    choose_folds,
    pace_of,
    plan_stage,
    rate_of,
    stage_settings,
    step_of,
)

logger = get_logger(__name__)


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
    """The run that predicts after the `finished` stages: the one stage, or the ensemble of them
    (WORK/ensemble-N after N stages; once the second round has finished, without the stage it replaces)."""
    members = planner.predicting(finished)
    if len(members) == 1:
        return job.work / members[0]
    from signvision.runs.ensemble import make_ensemble

    folder = job.work / f"ensemble-{len(finished)}"
    if not (folder / "summary.json").is_file():
        make_ensemble([job.work / n for n in members], folder)
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
    second_round: bool = False,
    log=None,
    **settings,
) -> dict:
    """The best submission this machine makes in `time`: the stages of `planner.STAGES` in order, each a `--folds`
    run in WORK, the best submission so far written to OUT after each (see the module's docstring).

    Args:
        data: a Zindi folder (Train.csv, Test.csv, Images/): its test images are predicted.
        time: the budget: "30m", "1h30m", "90s", or minutes as a number.
        out: the submission CSV (replaced only if this job wrote it, or with `overwrite`).
        work: the job's folder (default: OUT's name + "-job" beside it); the same call again continues it.
        distill: also train WORK/distilled, one LeNet on the out-of-fold probabilities of what predicts, if it
            fits in the time left: one network to serve and export (the submission stays the ensemble's).
        second_round: also train LeNet again on the labelled images plus the test images the finished stages are
            sure of (pseudo-labels: their guesses, no test label read), in the 30-epoch LeNet's place, if it fits;
            from then on it predicts in the first LeNet's place. It fits on the test images, and paid on the
            session benchmark's new session but not on a withheld real capture (docs/zindi.md): off unless asked.
        log: where its lines go instead of the "signvision" logger.
        settings: training settings every stage shares (`seed`, `device`, `audit`, `workers`, ...).

    Returns:
        the job's record (stages.json): each stage's time and out-of-fold figures, the submission, the time used.

    Example (a one-minute job on small images: LeNet's folds fit, Lite0's stage is skipped and said):
        >>> record = sv.submit("../shared/data/sign-digits", time="1m", out="one-minute.csv", image_size=32)
        >>> record["submission"], record["predicts_with"]
        ('one-minute.csv', 'lenet')
    """
    from signvision.logs import check_log

    check_log(log)
    budget = parse_time(time)
    with log_to(log):
        return run_job(Path(data), budget, Path(out), work, overwrite, settings, distill, second_round)


def run_job(
    data: Path, budget: float, out: Path, work, overwrite: bool, settings: dict, distill=False, second_round=False
) -> dict:
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
    job = Job(str(data), work, out, started + budget, shared, stages=planner.stages_of(second_round))
    job.train_images, job.test_images = len(table.train), len(table.test)
    spec = {"data": str(data.resolve()), "folds": planner.FOLDS, "stages": job.stages}
    if second_round:  # a job folder of the days when the second round ensembled beside its LeNet is refused
        spec["second_round_replaces"] = planner.SECOND_ROUND_OF
    spec["settings"] = recipe_part(shared_cfg)
    with job_folder(work, spec, "submit.json", "a submit job", option="work"):
        record = read_json(work / "stages.json") if (work / "stages.json").is_file() else {"stages": []}
        done = [row["stage"] for row in record["stages"]]
        job.folds = record.get("folds")
        job.paces, job.writing = record.get("paces", {}), record.get("writing", {})  # learnt by earlier calls
        for name in continued_first(job):
            if name in done:
                continue
            started_spec = work / name / "cv.json"
            if started_spec.is_file():  # started by an earlier call: continued with the folds and epochs it had
                cv = read_json(started_spec)
                plan = {**stage_settings(job, name), "epochs": cv["config"]["epochs"], "folds": cv["folds"]}, None
            else:
                job.folds = job.folds or choose_folds(job, len(table.train), len(table.classes))
                plan = plan_stage(job, name, len(table.train), len(table.classes), done=done)
            if plan is not None:
                run_stage(job, name, plan, record, done)
        if distill and done and "distilled" not in record:
            distil_stage(job, record, len(table.train), len(table.classes))
        record["seconds"] = round(time.monotonic() - started, 1)
        record["budget_seconds"] = budget
        write_json(work / "stages.json", record)
        from signvision.reports.submit_page import write_submit_page

        write_submit_page(work / "submit.html", record)
    logger.info(closing_lines(record, work, asked_second_round=planner.SECOND_ROUND in job.stages))
    return record


def continued_first(job: Job) -> list[str]:
    """The job's stages in order, those an earlier call started first: a stage interrupted by a kill is finished
    before a new one is planned (after it, the next call planned the stages before it in the time left, then
    continued it whatever its time: a `5m` call ran 6.8 minutes)."""
    return sorted(job.stages, key=lambda name: not (job.work / name / "cv.json").is_file())


def run_stage(job: Job, name: str, plan: tuple[dict, float | None], record: dict, done: list[str]) -> None:
    """Train stage `name` as planned (settings, estimated seconds), write the best submission so far to OUT, and
    add the stage's row to the record (WORK/stages.json); `done` gains `name`."""
    settings, estimate = plan
    stage_started = time.monotonic()
    extra = {}
    if name == planner.SECOND_ROUND:  # the test images the finished stages are sure of join its training
        settings, kept = with_pseudo_labels(job, settings, done)
        if not kept:
            logger.info(f"stage {name}: skipped (the first round is sure of no test image)")
            return
        if estimate:  # planned with every test image: the pace is learnt against the images it trains on
            estimate *= (job.train_images + kept) / (job.train_images + job.test_images)
        extra = {"pseudo_labels": kept, "test_images": job.test_images}
    job.folds = record["folds"] = settings["folds"]
    train_stage(job, name, settings, estimate)
    trained = time.monotonic()
    predicting = best_so_far(job, done + [name])
    digest = write_submission(job, predicting)
    done.append(name)
    planner.learn_writing(job, done, time.monotonic() - trained)
    row = {
        "stage": name,
        "model": settings["model"],
        "epochs": settings.get("epochs"),
        "seconds": round(time.monotonic() - stage_started, 1),
        "predicts_with": predicting.name,
        **extra,
        **oof_figures(predicting),
    }
    record["stages"].append(row)
    record.update(digest=digest, submission=str(job.out), predicts_with=predicting.name)
    record.update(paces=job.paces, writing={k: round(v, 1) for k, v in job.writing.items()})
    write_json(job.work / "stages.json", record)
    logger.info(f"stage {name}: wrote {job.out} ({describe_row(row)})")


def with_pseudo_labels(job: Job, settings: dict, done: list[str]) -> tuple[dict, int]:
    """The second round's settings: WORK/pseudo-labels.csv, the test images the ensemble of the `done` stages
    labels with a calibrated probability of at least planner.SURE (made once: a continued job keeps it), and
    how many it holds."""
    import pandas as pd

    from signvision.inference.pseudo import pseudo_labels, write_pseudo_labels
    from signvision.runs.run import Run

    path = job.work / planner.PSEUDO_LABELS
    if not path.is_file():
        first = Run.load(best_so_far(job, done))
        table = pseudo_labels(first, job.data, threshold=planner.SURE, device=job.settings.get("device", "auto"))
        write_pseudo_labels(table, path)
    kept = len(pd.read_csv(path))
    logger.info(f"stage {planner.SECOND_ROUND}: {kept} of {job.test_images} test images labelled surely ({path})")
    return {**settings, "pseudo_labels": str(path)}, kept


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


def closing_lines(record: dict, work: Path, asked_second_round: bool = False) -> str:
    """The job's last lines: the submission, what it expects of it, the time against the budget, and a second
    round asked for that did not run (a `20m --second-round` job whose Lite0 overran its estimate ended 1.8
    minutes early without it, said only in a line in the middle of the log; docs/zindi.md)."""
    if not record["stages"]:
        return f"no stage fitted in the budget; nothing written. The job: {work}"
    last = record["stages"][-1]
    over = record["seconds"] - record["budget_seconds"]
    timing = f"{record['seconds'] / 60:.1f} min of {record['budget_seconds'] / 60:.1f}" + (
        f" (over by {over / 60:.1f} min)" if over > 0 else ""
    )
    finished = [r["stage"] for r in record["stages"]]
    missing = (
        f" The second round asked for did not run (the line 'stage {planner.SECOND_ROUND}: skipped' says why); where "
        "time was short, the same command with a larger --time adds it."
        if asked_second_round and planner.SECOND_ROUND not in finished
        else ""
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
        f"({', '.join(planner.predicting(finished))}): {describe_row(last)}. That is "
        f"what it expects on images like the training capture; a new capture usually scores worse.{served}"
        f"{missing} Page: {work / 'submit.html'}"
    )
