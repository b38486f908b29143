"""A run: the one orchestrator under the Python API and the command line.

    run = sv.train("../shared/data/sign-digits", model="lenet", epochs=10)    # in memory, no folder
    run = sv.train("../shared/data/sign-digits", out="runs/x")                # the same, recorded into a folder
    run.history          # one row per epoch (a DataFrame)
    run.summary          # the validation figures: calibrated, with intervals over groups, the leak check
    run.evaluate()       # again, with TTA if asked; run.evaluate(data=...) scores a labelled test set
    run.predict(x)       # a folder, files, a DataFrame of paths, or image arrays -> Predictions
    run.save("runs/x")   # the run folder `signvision train --out` writes, report.html included

`Run.fit` is the whole sequence, once (runs/fitting.py): prepare the data and model (`training/setup.py`),
train the epochs (`training/trainer.py`), calibrate and score the best epoch, summarise, and, for a run with a
folder, write report.html from those scores (runs/record.py). The only difference between a run in memory
and a run in a folder is its recorder: `Recorder` keeps the epochs in memory, `FolderRecorder` also writes them
(training/folder.py). So
`signvision train --out A`, `sv.train(..., out=B)` and `run.save(C)` leave the same files.

Ctrl-C during `fit` stops training with the run at its last finished epoch; `fit()` again continues it (and a
run folder is continued from another process by `sv.train(resume=FOLDER)` or `signvision train --resume`).
What a resumed run may change is decided here (`config.RESUMABLE`), for the API and the command line alike.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.config import PSEUDO_THRESHOLD, RESUMABLE, TrainConfig
from signvision.errors import MissingError, OptionError, RunError
from signvision.logs import get_logger, log_to
from signvision.runs.fitting import Session, fit_once
from signvision.runs.record import write_board, write_run_report

logger = get_logger(__name__)


class Run:
    """A run: its settings (`cfg`), its model(s) (`members`: one, or one per fold), its `history` and validation
    `summary`; `fit`, `evaluate`, `predict`, `save`, `report`. Made by `train`, `Run.new(...).fit()`,
    `Run.resume(folder).fit()` or `load_run`.

    Example:
        >>> run = Run.new("../shared/data/sign-digits", epochs=2, image_size=32)
        >>> run = run.fit()  # Ctrl-C stops it; run.fit() again continues from the last finished epoch
        >>> run.summary["val_accuracy"], list(run.history["epoch"])
        (0..., [1, 2])
    """

    def __init__(self, cfg: TrainConfig, *, members=None, summary=None, history=None, folder=None, table=None):
        self.cfg = cfg
        self.members = members or []  # inference.members.RunModel: the trained model(s)
        self.summary = summary or {}
        self._history = history
        self.folder = Path(folder) if folder is not None else None
        self.table = table  # the data, when the run was given a DataFrame or a DataTable
        self._to_train = False  # made by new/resume: fit() trains it (a loaded run is finished)
        self._resume = False  # its folder already holds this run: continue from last.pt
        self._session: Session | None = None
        self._scores = None  # trainer.Validation of the last fit: what the report shows

    # ------------------------------------------------------------------------------------------------
    # Making one
    # ------------------------------------------------------------------------------------------------
    @classmethod
    def new(cls, data=None, *, out=None, config: TrainConfig | None = None, **settings) -> Run:
        """A run to train (nothing trained yet; `fit()` trains it), in memory or, with `out`, into a new folder.
        `data`: a data folder, a CSV, a DataFrame of paths and labels, or a DataTable; `settings`: any
        TrainConfig field."""
        cfg, table = config_and_data(data, out, config, settings)
        if cfg.folds > 1:
            raise OptionError(
                "k-fold training writes one run per fold: use `signvision.train` with `out`",
                option="folds",
                value=cfg.folds,
            )
        run = cls(cfg.check().absolute_paths(), table=table, folder=cfg.out)
        run._to_train = True
        return run

    @classmethod
    def resume(cls, folder: str | Path, **changes) -> Run:
        """A run folder's run, to continue (`fit`); `changes` may only be of `RESUMABLE` settings: more `epochs`,
        where the images are now, the machine. Anything else is refused, naming it."""
        folder = Path(folder)
        if not folder.is_dir():
            raise MissingError("folder not found", option="resume", value=folder)
        cfg = TrainConfig.load(folder / "config.json")
        extra = sorted(set(changes) - RESUMABLE)
        if extra:
            raise OptionError(
                f"cannot change `{extra[0]}` of an existing run (only "
                f"{', '.join(f'`{a}`' for a in sorted(RESUMABLE))})",
                option="resume",
                value=folder,
            )
        cfg = settings_config(cfg, changes)
        if {"data", "csv", "image_dir"} & set(changes):
            cfg.absolute_paths()
        run = cls(replace(cfg, out=str(folder)).check(), folder=folder)
        run._to_train = run._resume = True
        return run

    @classmethod
    def load(cls, folder: str | Path) -> Run:
        """A finished run folder (or a `--folds` run: each fold's model, averaged when predicting)."""
        from signvision.files import read_json
        from signvision.inference.members import load_members
        from signvision.training.finished import check_run_folder

        folder = check_run_folder(folder)
        members = load_members(folder)
        summary = read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
        return cls(TrainConfig.load(folder / "config.json"), members=members, summary=summary, folder=folder)

    # ------------------------------------------------------------------------------------------------
    # Training it: the one sequence
    # ------------------------------------------------------------------------------------------------
    def fit(self, log=None, *, report: bool = True) -> Run:
        """Train, or continue after an interruption; then calibrate, score and summarise, and for a run with a
        folder write summary.json and (unless `report` is off) report.html. Returns the run. Progress lines go
        to the "signvision" logger (signvision/logs.py), or to `log` when given (`lambda *_: None`: none)."""
        from signvision.models.factory import check_model

        if not self._to_train:
            raise RunError(
                "this run is trained; continue it with signvision.train(resume=FOLDER, epochs=...)",
                option="run",
                value=self.folder,
            )
        check_model(self.cfg)
        with log_to(log):
            status = fit_once(self, report)
        if status == "interrupted":
            raise KeyboardInterrupt
        return self

    # ------------------------------------------------------------------------------------------------
    # What it holds
    # ------------------------------------------------------------------------------------------------
    @property
    def model(self):
        """The trained model (torch.nn.Module, in eval mode; the first fold's for a `--folds` run)."""
        self._require_trained()
        return self.members[0].model

    @property
    def model_name(self) -> str:
        """The model's name; an ensemble's: each run's model with its weight ("lenet 0.62 + ...")."""
        return self.summary["model"] if "ensemble" in self.summary else self.cfg.model

    @property
    def classes(self) -> list[str]:
        return self.members[0].task.classes if self.members else []

    @property
    def temperature(self) -> float | None:
        """The temperature its probabilities are divided by (an ensemble's: the one on top of its blend)."""
        if not self.members:
            return None
        return getattr(self.members, "temperature", None) or self.members[0].temperature

    @property
    def history(self) -> pd.DataFrame:
        """One row per finished epoch: training loss and ROC AUC, validation loss, ROC AUC, log loss, accuracy."""
        if self._session is not None and self._session.rank == 0:
            return self._session.recorder.history
        if self._history is None and self.folder is not None:
            paths = [self.folder / "metrics.csv"] + sorted(self.folder.glob("fold*/metrics.csv"))
            frames = [pd.read_csv(p).assign(run=p.parent.name) for p in paths if p.is_file()]
            self._history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return self._history if self._history is not None else pd.DataFrame()

    def training_images(self) -> pd.DataFrame | None:
        """The images this run trained on (path, Label: its split's training side), None when not found now."""
        from signvision.inference.labelled import training_images

        if self._session is not None:
            data = self._session.prepared.data
            return data.table.train[["path", "Label"]].iloc[data.rows("train")]
        return training_images(self.members[0]) if self.folder is not None and len(self.members) == 1 else None

    def _require_trained(self) -> None:
        if not self.members:
            raise RunError("not trained yet: call run.fit()", option="run")

    # ------------------------------------------------------------------------------------------------
    # Using it
    # ------------------------------------------------------------------------------------------------
    def predict(self, images=None, *, tta="none", batch_size: int = 128, device: str = "auto", workers: int = 0):
        """Calibrated class probabilities for `images`: a folder (sub-folders too), a Zindi folder's Test.csv, a
        list of files, a DataFrame with a `path` column, or image arrays (H, W, 3) uint8 RGB; None: the run's
        own data's test images. `tta`: a mode name or a `TTA`. Returns `Predictions` (`.to_csv` writes the
        submission).

        Example:
            >>> run.predict("../shared/data/sign-digits").to_csv("submission.csv")   # doctest: +SKIP
        """
        from signvision.inference.predict import Predictions, image_table, predict_images

        self._require_trained()
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise OptionError("must be a whole number of at least 1", option="batch_size", value=batch_size)
        images = images if images is not None else self.members[0].cfg.data
        if images is None:
            raise OptionError("give the images to predict: a folder, files, a DataFrame or arrays", option="images")
        table, arrays = image_table(images)
        if isinstance(tta, str) and tta == "auto":
            from signvision.inference.tta_choice import chosen_tta

            tta = chosen_tta(self.folder)
        probs = predict_images(
            self.members, table, tta=tta, device=device, batch_size=batch_size, workers=workers, arrays=arrays
        )
        return Predictions.of(self.members[0].task, table, probs, arrays)

    def explain(self, images, target=None, *, device: str = "auto", batch_size: int = 32) -> np.ndarray:
        """Where the model looked: one class-activation heatmap (HiResCAM) per image, an array (N, S, S) of floats in
        [0, 1] at the model's input size, for the predicted class (or `target`: a class name or index, or one per
        image). `images` as for `predict` (a folder, files, a DataFrame with `path`, arrays). A `--folds` run or an
        ensemble averages its members' heatmaps as it averages their probabilities.

        Example:
            >>> maps = run.explain(["hand.jpg"])          # doctest: +SKIP
            >>> maps.shape                                # doctest: +SKIP
            (1, 64, 64)
        """
        from signvision.inference.explain import explain_arrays
        from signvision.inference.predict import image_table, read_images

        self._require_trained()
        table, arrays = image_table(images)
        arrays = arrays if arrays is not None else read_images(table)
        return explain_arrays(self.members, arrays, target, device=device, batch_size=batch_size)[0]

    def pseudo_labels(
        self, images, *, threshold: float = PSEUDO_THRESHOLD, tta="none", device: str = "auto"
    ) -> pd.DataFrame:
        """The images of `images` this run is sure of (calibrated probability >= `threshold`), labelled with its
        guess: img_IDS, path, Label, confidence. Saved with `.to_csv(path, index=False)`, it is what
        `train(..., pseudo_labels=path)` adds to the training images (inference/pseudo.py)."""
        from signvision.inference.pseudo import pseudo_labels

        self._require_trained()
        return pseudo_labels(self, images, threshold=threshold, tta=tta, device=device)

    def evaluate(
        self, data=None, *, tta="none", device: str = "auto", batch_size: int = 128, skip_bad_images=False, log=None
    ) -> dict:
        """Figures on the run's validation images (uncalibrated, calibrated, and with `tta`: a mode name or a
        `TTA`), or with `data` on other labelled images (a test folder, a folder of classes, a CSV), with 95%
        intervals over groups of near copies and, for a run with a folder, a page in
        RUN/evaluations/<name>/. `data` holding the run's own images (moved) scores its validation images.
        `log`: where the lines go instead of the "signvision" logger."""
        with log_to(log):
            return self._evaluate(data, tta=tta, device=device, batch_size=batch_size, skip_bad_images=skip_bad_images)

    def _evaluate(self, data, *, tta, device: str, batch_size: int, skip_bad_images: bool) -> dict:
        from signvision.inference import evaluate as ev
        from signvision.inference.labelled import score_labelled

        self._require_trained()
        if data is not None and not self._holds_own_images(data):
            return score_labelled(
                self.members,
                data,
                folder=self.folder,
                trained=self.training_images(),
                tta=tta,
                device=device,
                batch_size=batch_size,
            )
        if self.folder is not None:
            options = dict(tta=tta, device=device, batch_size=batch_size, skip_bad_images=skip_bad_images)
            return ev.evaluate_run(self.folder, data, **options)
        from signvision.models.augment import as_tta

        loader = self._session.prepared.val_loader
        views = as_tta(tta, image_size=self.cfg.image_size, seed=self.cfg.seed)
        return ev.evaluate_members(ev.score_members(self.members, [loader], device), views)

    def choose_tta(self, *, device: str = "auto", batch_size: int = 128, log=None) -> dict:
        """Score the run's validation images (out of fold for a `--folds` run or an ensemble) with each built-in
        TTA mode and keep the one whose paired log loss gain is largest and beyond noise, or none:
        `predict(..., tta="auto")` then uses it. Returns {"chosen": mode, "gains": {mode: gain with interval}}."""
        from signvision.inference.tta_choice import choose_tta

        if self.folder is None:
            raise RunError("in memory only: save it first, run.save(folder)", option="run")
        with log_to(log):
            return choose_tta(self.folder, device=device, batch_size=batch_size)

    def _holds_own_images(self, data) -> bool:
        """Whether DATA is the run folder's own data (moved): it holds every image of the run's split.csv."""
        from signvision.data.tables import read_labelled

        if self.folder is None or len(self.members) > 1:
            return False
        split_ids = pd.read_csv(self.folder / "split.csv", dtype=str, keep_default_na=False)["img_IDS"]
        return set(split_ids) <= set(read_labelled(data).train["img_IDS"])

    def save(self, folder: str | Path, *, report: bool = True) -> Path:
        """Write the run as a run folder (what `signvision train --out` makes, report.html included); from then
        on the run is that folder (evaluate, predict, `signvision serve --run` and the CLI use it)."""
        from signvision.runs.save import save_run

        self._require_trained()
        if self.folder is not None:
            raise RunError("is already saved there", option="run", value=self.folder)
        self.folder = save_run(self, Path(folder))
        self.members[0].folder = self.folder
        if report:
            write_run_report(self)
        write_board(self)  # the TensorBoard log training into a folder would have written
        return self.folder

    def report(self, device: str = "auto") -> Path:
        """Write report.html in the run's folder (curves, ROC, confusion matrix, reliability, mistakes)."""
        from signvision.inference.report import report_run

        if self.folder is None:
            raise RunError("in memory only: save it first, run.save(folder)", option="run")
        if self._scores is not None and self._session is not None:
            return write_run_report(self)
        return report_run(self.folder, device=device)

    def _repr_html_(self) -> str:
        from signvision.reports.cards import run_card

        return run_card(self)

    def __repr__(self) -> str:
        where = f"folder {self.folder}" if self.folder else "in memory"
        acc = self.summary.get("val_accuracy")
        shown = f", val accuracy {acc:.4f}, log loss {self.summary['val_log_loss']:.4f}" if acc is not None else ""
        return f"<signvision Run {self.model_name}, {len(self.classes)} classes, {where}{shown}>"


def config_and_data(data, out, config: TrainConfig | None, settings: dict):
    """(the config, the table of a DataFrame or DataTable or None) of a new run: `data` a folder or CSV goes into
    the config; anything else that is no data is an OptionError, as is no data at all."""
    from signvision.data.tables import DataTable, read_data

    cfg = settings_config(config, settings)
    table = None
    if data is not None and not isinstance(data, (str, Path, pd.DataFrame, DataTable)):
        raise OptionError(
            f"expected a folder, a CSV, a DataFrame (path, Label) or a DataTable, not a {type(data).__name__}",
            option="data",
        )
    if isinstance(data, (pd.DataFrame, DataTable)):
        table = read_data(data)
    elif data is not None:
        cfg = replace(cfg, data=str(data))
    if table is None and cfg.data is None and cfg.csv is None:
        raise OptionError("give the images to train on: a folder, a CSV or a DataFrame", option="data")
    return (replace(cfg, out=str(out)) if out is not None else cfg), table


def settings_config(config: TrainConfig | None, settings: dict) -> TrainConfig:
    """A TrainConfig from a base config and keyword settings (an unknown name is an OptionError)."""
    base = config or TrainConfig()
    known = set(asdict(base))
    unknown = sorted(set(settings) - known)
    if unknown:
        raise OptionError("not a training setting (see signvision.TrainConfig)", option=unknown[0])
    return replace(base, **settings)


def fit(cfg: TrainConfig, *, resume: bool = False, table=None, report: bool = False) -> dict:
    """Train `cfg` into its folder `cfg.out` (with `resume`, continue the run there); the summary. What the
    folds and ablations train each of their runs with (without report.html unless asked)."""
    if cfg.out is None:
        raise OptionError("give a folder for the run", option="out")
    if resume:
        run = Run.resume(cfg.out)
        run.cfg = replace(cfg, out=run.cfg.out).check()
    else:
        run = Run.new(table, config=cfg)
    return run.fit(report=report).summary


def load_run(folder: str | Path) -> Run:
    """A saved run folder as a `Run` (a `--folds` run too: its folds are averaged when predicting).

    Example:
        >>> run = load_run("runs/lenet"); run.predict(["photo.jpg"]).top()
             img_IDS class_1       p_1 class_2 ...
        0  photo.jpg ...
    """
    from signvision.imports import import_heavy
    from signvision.training.finished import check_run_folder

    check_run_folder(folder)  # a wrong folder is one line at once, before PyTorch is loaded
    import_heavy()  # whole even if Ctrl-C comes meanwhile
    return Run.load(folder)
