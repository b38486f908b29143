"""The public calls of a run: `sv.train` (one run, or k folds), `sv.distill`, `sv.load_run` and
`sv.evaluate_labelled`, over the one orchestrator (`Run`, run.py) and the folds (crossval.py)."""

from __future__ import annotations

from pathlib import Path

from signvision.config import LR_FIND_END, LR_FIND_START, LR_FIND_STEPS, TrainConfig
from signvision.errors import OptionError
from signvision.logs import check_log, get_logger, log_to
from signvision.runs.run import Run, config_and_data, load_run

logger = get_logger(__name__)


def train(data=None, *, out=None, resume=None, config: TrainConfig | None = None, log=None, **settings) -> Run:
    """Train a model and return the `Run`.

    Args:
        data: the images: a data folder (Zindi layout, class folders, split folders), a CSV, a DataFrame of
            `path` and `Label`, or a DataTable from `read_data`.
        out: a new folder to train into, which then holds what `signvision train --out` writes (report.html
            included); without it the run is in memory (save it later with `run.save(folder)`). k-fold training
            (`folds=5`) needs `out`.
        resume: a run folder to continue: more `epochs`, or where its images are now (`data`), or other
            machine settings (`device`, `workers`, ...); any other setting is refused, naming it.
        config: a TrainConfig to start from; `settings` override any of its fields (`model="resnet18"`,
            `epochs=4`, `loss="bce"`, `augment="capture"`, ...).
        log: where progress lines go: the "signvision" logger (shown on stdout; signvision/logs.py) unless a
            callable is given (`lines.append`; `lambda *_: None` for none).

    Returns:
        the trained Run (its history, summary, model; evaluate, predict, save, report).

    Example:
        >>> run = train("../shared/data/sign-digits", model="lenet", epochs=3, image_size=32)
        >>> run.summary["val_accuracy"], run.summary["val_accuracy_ci"]
        (0..., [0..., 0...])
    """
    from signvision.imports import import_heavy

    check_log(log)
    import_heavy()  # the first call's imports, whole even if Ctrl-C comes meanwhile (a notebook stays usable)
    check_split_settings(settings)
    if resume is not None:
        if data is not None:
            settings["data"] = str(data)
        return Run.resume(resume, **settings).fit(log)
    if (config.folds if config is not None else 1) > 1 or settings.get("folds", 1) > 1:
        with log_to(log):
            return train_folds(data, out=out, config=config, **settings)
    return Run.new(data, out=out, config=config, **settings).fit(log)


def train_folds(data=None, *, out=None, config: TrainConfig | None = None, log=None, **settings) -> Run:
    """k-fold cross-validation into `out` (one run per fold, the out-of-fold ensemble and its report): the
    `Run` of the folder, its folds averaged when predicting."""
    from signvision.imports import import_heavy
    from signvision.models.factory import check_model

    import_heavy()  # a Ctrl-C during the first imports would leave them half done
    cfg, table = config_and_data(data, out, config, settings)
    if cfg.out is None:
        raise OptionError("k-fold training writes one run per fold: give `out`", option="folds", value=cfg.folds)
    check_model(cfg.check())
    from signvision.runs.crossval import fit_folds  # here: `sv.train` answers before PyTorch is loaded

    with log_to(log):
        fit_folds(cfg, table=table, report=True)
    return Run.load(cfg.out)


def ensemble(runs, *, out, select: str = "log_loss", report: bool = True, log=None) -> Run:
    """Combine `--folds` runs of different recipes (trained on the same data, folds and seed) into one run in
    `out`: weights, arithmetic or geometric mean and one temperature fitted on their pooled out-of-fold
    predictions (runs/ensemble.py). The same call again finishes an interrupted one.

    Args:
        runs: two or more `--folds` run folders (the same data, folds and seed; any models).
        out: a new folder for the ensemble.   select: the out-of-fold figure the weights optimise (log_loss,
        accuracy, roc_auc).   report: also write OUT/report.html.   log: as for `train`.

    Returns:
        the `Run` of the folder: `predict`, `evaluate`, `serve` and `export` take it like any run.

    Example:
        >>> e = sv.ensemble(["runs/ksl-lenet", "runs/ksl-lenet-plain"], out="runs/my-ensemble")   # --folds runs
        >>> e.predict("../shared/data/sign-digits").to_csv("ensemble.csv")   # Test.csv's images
        PosixPath('ensemble.csv')
        >>> weights = e.summary["ensemble"]   # how the runs were merged, and each one's weight
        >>> weights["merge"], len(weights["runs"])
        ('...', 2)
    """
    from signvision.runs.ensemble import make_ensemble

    check_log(log)
    with log_to(log):
        make_ensemble(runs, out, select=select)
        if report:
            from signvision.inference.report import report_ensemble

            logger.info(f"report: {report_ensemble(Path(out))}")
    return Run.load(out)


def distill(teacher, data=None, *, out=None, log=None, **settings) -> Run:
    """Knowledge distillation: train one network on a teacher's out-of-fold probabilities instead of the labels
    (training/teacher.py), so that `predict`, `serve` and `export` run one model instead of the teacher's ten or
    fifteen. The run is an ordinary run (`train --teacher TEACHER`): its validation images are scored against
    their labels as always.

    Args:
        teacher: a finished `--folds` run or ensemble (its oof.csv gives every training image's targets).
        data: the images: the teacher's data unless given.   out: a new folder for the run.
        settings: as for `train`; the defaults differ in one: `label_smoothing` 0 (the teacher's probabilities
            are already soft and calibrated). `model` is LeNet unless given; `folds=5` gives the distilled
            recipe's own out-of-fold figures.

    Returns:
        the trained `Run`.

    Example:
        >>> student = sv.distill("runs/ksl-ensemble", out="runs/ksl-distilled", epochs=2, image_size=32)
        >>> student.predict("../shared/data/sign-digits").to_csv("distilled.csv")   # one network, not four
        PosixPath('distilled.csv')
    """
    from signvision.config import SOURCE
    from signvision.training.finished import check_run_folder, is_cv_run, is_ensemble

    folder = check_run_folder(teacher, "teacher")
    if not (is_cv_run(folder) or is_ensemble(folder)):
        raise OptionError(
            "is not a --folds run or an ensemble (their out-of-fold probabilities are what a student learns)",
            option="teacher",
            value=teacher,
        )
    data = settings.pop("data", None) if data is None else data
    if data is None and settings.get("csv") is None:
        taught = TrainConfig.load(folder / "config.json")  # the teacher's images, audit and task
        data = taught.data
        for name in (*SOURCE, "audit", "target"):
            if name != "data":
                settings.setdefault(name, getattr(taught, name))
    settings.setdefault("label_smoothing", 0.0)
    return train(data, out=out, teacher=str(folder), log=log, **settings)


def lr_find(
    data=None,
    *,
    out=None,
    config: TrainConfig | None = None,
    start_lr: float = LR_FIND_START,
    end_lr: float = LR_FIND_END,
    steps: int = LR_FIND_STEPS,
    overwrite: bool = False,
    log=None,
    **settings,
):
    """The learning-rate finder (training/lrfind.py) on the run these settings would train: its data, model,
    loss and augmentation.

    Args:
        data, config, settings: as for `sv.train`.   out: a folder for lr_find.png and lr_find.csv (optional).
        start_lr, end_lr, steps: the sweep (finite rates, 10 to 10,000 steps).
        overwrite: replace the lr_find.png and lr_find.csv of a finished sweep in `out` (an interrupted one's
            picture is replaced anyway).   log: where the suggestion is said (as for `train`).

    Returns:
        an `LRFind`: `.suggestion`, `.minimum`, and the curve (`.lrs`, `.losses`, `.smoothed`).

    Example:
        >>> found = sv.lr_find("../shared/data/sign-digits", model="lenet", image_size=32)
        >>> bool(found.lrs.min() <= found.suggestion <= found.lrs.max())   # found.describe(): a line of it
        True
    """
    from signvision.training.lrfind import check_sweep

    check_sweep(start_lr, end_lr, steps)  # before PyTorch is loaded or any image read
    check_log(log)
    if out is not None:
        check_lr_find_out(Path(out), overwrite)
    from signvision.models.factory import check_model
    from signvision.training.lrfind import lr_sweep
    from signvision.training.setup import prepare_training

    cfg, table = config_and_data(data, None, config, settings)
    check_model(cfg.check())
    prepared = prepare_training(cfg, leak_check=False, table=table)
    found = lr_sweep(
        prepared.model,
        prepared.train_loader,
        prepared.state.optimizer,
        prepared.runtime,
        prepared.data.task,
        start=start_lr,
        end=end_lr,
        steps=steps,
    )
    with log_to(log):
        logger.info(found.describe() + f"; the config's --lr is {cfg.lr:.1e}")
        if out is not None:
            logger.info(f"wrote {write_lr_find(found, Path(out), cfg.lr)}")
    return found


def check_lr_find_out(out: Path, overwrite: bool) -> None:
    """lr-find's folder, before the sweep: a folder (not a file), writable, without a finished sweep's files
    unless `overwrite`. The picture is written first and the CSV last, so a picture alone is an interrupted
    sweep's, replaced by the same command (if lr-find wrote it: its PNG says so)."""
    from signvision.files import check_writable_folder
    from signvision.reports.plots import LR_FIND_SOFTWARE

    if out.exists() and not out.is_dir():
        raise OptionError("exists and is not a folder", option="out", value=out)
    picture, curve = out / "lr_find.png", out / "lr_find.csv"
    if not overwrite:
        if curve.exists():
            raise OptionError(
                f"{curve} exists (a finished sweep); pass `overwrite` or choose another folder", option="out", value=out
            )
        if picture.exists() and LR_FIND_SOFTWARE.encode() not in picture.read_bytes()[:65536]:
            raise OptionError(
                f"{picture} exists and lr-find did not write it; pass `overwrite` or choose another folder",
                option="out",
                value=out,
            )
    check_writable_folder(out, "out")


def write_lr_find(found, out: Path, current_lr: float) -> str:
    """lr_find.png, then lr_find.csv (each atomically; the CSV last marks a finished sweep)."""
    import io

    import pandas as pd

    from signvision.files import atomic_write
    from signvision.reports.plots import plot_lr_find

    picture = io.BytesIO()
    plot_lr_find(found, picture, current_lr)
    with atomic_write(out / "lr_find.png", "wb") as f:
        f.write(picture.getvalue())
    curve = pd.DataFrame({"lr": found.lrs, "loss": found.losses, "smoothed": found.smoothed})
    with atomic_write(out / "lr_find.csv", newline="") as f:
        curve.to_csv(f, index=False)
    return f"{out / 'lr_find.png'} and {out / 'lr_find.csv'}"


def evaluate_labelled(run, data, **options) -> dict:
    """Score a run (a run folder or a `Run`) on labelled images it never trained on: `run.evaluate(data=DATA)`.

    Args:
        run: a run folder or a `Run`.   data: a test folder, a folder of class sub-folders, or a CSV.
        options: as for `Run.evaluate` (`tta`, `device`, `batch_size`, `log`).

    Returns:
        the figures (accuracy, log loss, ROC AUC, ECE, each with its interval over groups; the leak share).

    Example:
        >>> found = evaluate_labelled("runs/lenet", "held-out")   # class sub-folders of photos it never trained on
        >>> found["images"], 0 <= found["log_loss"] < 5, len(found["log_loss_ci"])
        (30, True, 2)
    """
    return (run if isinstance(run, Run) else load_run(run)).evaluate(data, **options)


def check_split_settings(settings: dict) -> None:
    """A split file decides the split: the settings that would draw one are refused beside it, not ignored."""
    if settings.get("split") is None:
        return
    for name in ("folds", "val_fraction", "split_by"):
        if name in settings and settings[name] != getattr(TrainConfig, name):
            raise OptionError(
                f"the split file decides the split: leave `{name}` out", option="split", value=settings["split"]
            )
