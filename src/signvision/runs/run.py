"""A run as a Python object: what `signvision.training.setup` returns and `signvision.load_run` reads back.

    run = sv.train("../shared/data/sign-digits", model="lenet", epochs=10)    # in memory, no folder
    run.history          # one row per epoch (a DataFrame)
    run.summary          # the validation figures: calibrated, with intervals over groups, the leak check
    run.evaluate()       # again, with TTA if asked; run.evaluate(data=...) scores a labelled test set
    run.predict(x)       # a folder, files, a DataFrame of paths, or image arrays -> Predictions
    run.save("runs/x")   # the run folder `signvision train --out` writes (then run.report())

In a notebook a run shows itself (its figures and learning curves). Ctrl-C during `run.fit()` stops training
with the run at its last finished epoch; `run.fit()` again continues it. `signvision.training.setup` with `out`
trains into a run folder instead (as the command line does), which `resume` continues.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.config import TrainConfig
from signvision.errors import OptionError, RunError
from signvision.inference.predict import Predictions, image_table


class Run:
    """A run: its settings (`cfg`), its model(s) (`members`: one, or one per fold), its `history` and validation
    `summary`; `fit`, `evaluate`, `predict`, `save`, `report`. Made by `train`, `Run.new(...).fit()` or `load_run`.

    Example:
        >>> run = Run.new("../shared/data/sign-digits", epochs=10)   # doctest: +SKIP
        >>> run.fit()  # Ctrl-C stops it; run.fit() again continues from the last finished epoch  # doctest: +SKIP
        >>> run.summary["val_accuracy"], run.history.tail(1)          # doctest: +SKIP
    """

    def __init__(self, cfg: TrainConfig, *, members=None, summary=None, history=None, folder=None, table=None):
        self.cfg = cfg
        self.members = members or []  # inference.RunModel: the trained model(s)
        self.summary = summary or {}
        self._history = history
        self.folder = Path(folder) if folder is not None else None
        self.table = table  # the data, when the run was given a DataFrame or a DataTable
        self._prepared = None  # train.Prepared while it trains in memory
        self._recorder = None

    # ------------------------------------------------------------------------------------------------
    # Making one
    # ------------------------------------------------------------------------------------------------
    @classmethod
    def new(cls, data=None, *, config: TrainConfig | None = None, **settings) -> Run:
        """A run to train in memory (nothing trained yet; `fit()` trains it). `data`: a data folder, a CSV,
        a DataFrame of paths and labels, or a DataTable; `settings`: any TrainConfig field."""
        from signvision.data.tables import DataTable, read_data

        cfg = settings_config(config, settings)
        table = None
        if isinstance(data, (pd.DataFrame, DataTable)):
            table = read_data(data)
        elif data is not None:
            cfg = replace(cfg, data=str(data))
        if table is None and cfg.data is None and cfg.csv is None:
            raise OptionError("give the images to train on: a folder, a CSV or a DataFrame", option="data")
        if cfg.folds > 1:
            raise OptionError(
                "k-fold training writes one run per fold: give `out` to `signvision.training.setup`",
                option="folds",
                value=cfg.folds,
            )
        return cls(cfg.check(), table=table)

    def fit(self, log=print) -> Run:
        """Train (in memory), or continue after an interruption; then calibrate and score. Returns the run."""
        from signvision.models.factory import check_model_name
        from signvision.training.setup import memory_warning, prepare_training, summarise
        from signvision.training.trainer import Recorder, describe_validation, own_random_state

        if self.folder is not None:
            raise RunError(
                "this run lives in its folder; continue it with signvision.training.setup(resume=...)",
                option="run",
                value=self.folder,
            )
        check_model_name(self.cfg.model)
        with own_random_state():
            if self._prepared is None:
                self._prepared = prepare_training(self.cfg, table=self.table)
                self._recorder = Recorder()
                self._recorder.start(self._prepared.state)
                log(self._prepared.data.info.describe())
            prepared = self._prepared
            status = prepared.train(self._recorder, log)
            if status == "interrupted":
                raise KeyboardInterrupt
            figures, _ = prepared.validate(self._recorder.best_weights())
        log(describe_validation(figures, len(prepared.data.rows("val"))))
        best = self._recorder.best_weights()
        self.summary = summarise(
            self.cfg,
            prepared.data,
            self.history,
            best["epoch"],
            figures,
            status="finished",
            seconds=prepared.state.train_seconds,
        )
        if self.summary.get("measures_memory"):
            log(memory_warning(self.summary))
        self.members = [self._member(best, figures["temperature"])]
        return self

    def _member(self, best: dict, temperature):
        """The trained model for inference: the best epoch's weights, with the temperature."""
        from signvision.inference.members import RunModel
        from signvision.training.checkpoint import model_from_checkpoint

        ckpt = {**best, "temperature": temperature}
        model, task, cfg = model_from_checkpoint(ckpt, "the best epoch")
        return RunModel(model.eval(), task, cfg, ckpt, temperature, None)

    @classmethod
    def load(cls, folder: str | Path) -> Run:
        """A finished run folder (or a `--folds` run: each fold's model, averaged when predicting)."""
        from signvision.files import read_json
        from signvision.inference.members import check_run_folder, load_members

        folder = check_run_folder(folder)
        members = load_members(folder)
        summary = read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
        return cls(TrainConfig.load(folder / "config.json"), members=members, summary=summary, folder=folder)

    # ------------------------------------------------------------------------------------------------
    # What it holds
    # ------------------------------------------------------------------------------------------------
    @property
    def model(self):
        """The trained model (torch.nn.Module, in eval mode; the first fold's for a `--folds` run)."""
        self._require_trained()
        return self.members[0].model

    @property
    def classes(self) -> list[str]:
        return self.members[0].task.classes if self.members else []

    @property
    def temperature(self) -> float | None:
        return self.members[0].temperature if self.members else None

    @property
    def history(self) -> pd.DataFrame:
        """One row per finished epoch: training loss and ROC AUC, validation loss, ROC AUC, log loss, accuracy."""
        if self._recorder is not None:
            return self._recorder.history
        if self._history is None and self.folder is not None:
            paths = [self.folder / "metrics.csv"] + sorted(self.folder.glob("fold*/metrics.csv"))
            frames = [pd.read_csv(p).assign(run=p.parent.name) for p in paths if p.is_file()]
            self._history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return self._history if self._history is not None else pd.DataFrame()

    def _require_trained(self) -> None:
        if not self.members:
            raise RunError("not trained yet: call run.fit()", option="run")

    # ------------------------------------------------------------------------------------------------
    # Using it
    # ------------------------------------------------------------------------------------------------
    def predict(self, images, *, tta: str = "none", batch_size: int = 128, device: str = "auto") -> Predictions:
        """Calibrated class probabilities for `images`: a folder (sub-folders too), a Zindi folder's
        Test.csv, a list of files, a DataFrame with a `path` column, or image arrays (H, W, 3) uint8 RGB.

        Example:
            >>> run.predict("../shared/data/sign-digits").to_csv("submission.csv")   # doctest: +SKIP
        """
        from signvision.inference.members import predict_images

        self._require_trained()
        table, arrays = image_table(images)
        if arrays is not None:
            probs = self._predict_arrays(arrays, tta, batch_size, device)
        else:
            probs = predict_images(self.members, table, tta=tta, device=device, batch_size=batch_size, workers=0)
        return Predictions.of(self.members[0].task, table, probs, arrays)

    def _predict_arrays(self, arrays: list[np.ndarray], tta: str, batch_size: int, device: str) -> np.ndarray:
        import torch

        from signvision.data.images import resize
        from signvision.inference.members import ensemble_probs, runtime_for
        from signvision.models.augment import TTA
        from signvision.training.runtime import pick_device

        size, dev = self.cfg.image_size, pick_device(device)
        views = TTA(tta, image_size=size, seed=self.cfg.seed)
        runtimes = [runtime_for(m, dev) for m in self.members]
        for m in self.members:
            m.model.to(dev).eval()
        batches = []
        for start in range(0, len(arrays), batch_size):
            chunk = np.stack([resize(a, size) for a in arrays[start : start + batch_size]])
            batches.append(ensemble_probs(self.members, runtimes, torch.from_numpy(chunk).permute(0, 3, 1, 2), views))
        return np.concatenate(batches)

    def evaluate(self, data=None, *, tta: str = "none", device: str = "auto", log=print) -> dict:
        """Figures on the run's validation images (uncalibrated, calibrated, and with `tta`), or with
        `data` on other labelled images (a test folder, a folder of classes, a CSV; see evaluate_labelled)."""
        from signvision.inference.evaluate import evaluate_labelled
        from signvision.inference.members import evaluate_members, evaluate_run

        self._require_trained()
        if data is not None:
            return evaluate_labelled(self, data, tta=tta, device=device, log=log)
        if self.folder is not None:
            return evaluate_run(self.folder, tta=tta, device=device, log=log)
        prepared = self._prepared
        return evaluate_members(self.members, [prepared.val_loader], tta=tta, device=device, log=log)

    def save(self, folder: str | Path, *, report: bool = True) -> Path:
        """Write the run as a run folder (what `signvision train --out` makes), then its report.html; from then
        on the run is that folder (evaluate, predict, `signvision serve --run` and the CLI use it)."""
        from signvision.runs.save import save_run

        self._require_trained()
        if self.folder is not None:
            raise RunError("is already saved there", option="run", value=self.folder)
        self.folder = save_run(self, Path(folder))
        self.members[0].folder = self.folder
        if report:
            self.report()
        return self.folder

    def report(self, device: str = "auto") -> Path:
        """Write report.html in the run's folder (curves, ROC, confusion matrix, reliability, mistakes)."""
        from signvision.reports.run_report import write_report

        if self.folder is None:
            raise RunError("in memory only: save it first, run.save(folder)", option="run")
        return write_report(self.folder, device=device)

    def _repr_html_(self) -> str:
        from signvision.reports.html import run_card

        return run_card(self)

    def __repr__(self) -> str:
        where = f"folder {self.folder}" if self.folder else "in memory"
        acc = self.summary.get("val_accuracy")
        shown = f", val accuracy {acc:.4f}, log loss {self.summary['val_log_loss']:.4f}" if acc is not None else ""
        return f"<signvision Run {self.cfg.model}, {len(self.classes)} classes, {where}{shown}>"


def settings_config(config: TrainConfig | None, settings: dict) -> TrainConfig:
    """A TrainConfig from a base config and keyword settings (an unknown name is an OptionError)."""
    base = config or TrainConfig()
    known = set(asdict(base))
    unknown = sorted(set(settings) - known)
    if unknown:
        raise OptionError("not a training setting (see signvision.TrainConfig)", option=unknown[0])
    return replace(base, **settings)


def train(data=None, *, out=None, resume=None, config: TrainConfig | None = None, log=print, **settings) -> Run:
    """Train a model and return the `Run`.

    Args:
        data: the images: a data folder (Zindi layout, class folders, split folders), a CSV, a DataFrame of
            `path` and `Label`, or a DataTable from `read_data`.
        out: a new folder to train into (as `signvision train --out` does); without it the run is in memory
            (save it later with `run.save(folder)`). k-fold training (`folds=5`) needs `out`.
        resume: a run folder to continue (more `epochs` may be given).
        config: a TrainConfig to start from; `settings` override any of its fields (`model="resnet18"`,
            `epochs=4`, `loss="bce"`, `augment="capture"`, ...).
        log: where progress lines go (`print`; `lambda *_: None` for none).

    Returns:
        the trained Run (its history, summary, model; evaluate, predict, save, report).

    Example:
        >>> run = train("../shared/data/sign-digits", model="lenet", epochs=10, image_size=32)  # doctest: +SKIP
        >>> run.summary["val_accuracy"], run.summary["val_accuracy_ci"]                          # doctest: +SKIP
    """
    from signvision.data.tables import DataTable, read_data
    from signvision.training.setup import fit

    if resume is not None:
        cfg = settings_config(TrainConfig.load(Path(resume) / "config.json"), settings)
        fit(replace(cfg, out=str(resume)), resume=True, log=log)
        return Run.load(resume)
    if out is None:
        return Run.new(data, config=config, **settings).fit(log)
    cfg = replace(settings_config(config, settings), out=str(out))
    table = read_data(data) if isinstance(data, (pd.DataFrame, DataTable)) else None
    if data is not None and table is None:
        cfg = replace(cfg, data=str(data))
    if cfg.folds > 1:
        from signvision.runs.crossval import fit_folds

        fit_folds(cfg, log=log, table=table)
    else:
        fit(cfg, log=log, table=table)
    return Run.load(out)


def load_run(folder: str | Path) -> Run:
    """A saved run folder as a `Run` (a `--folds` run too: its folds are averaged when predicting).

    Example:
        >>> run = load_run("runs/lenet"); run.predict(["photo.jpg"]).top()   # doctest: +SKIP
    """
    return Run.load(folder)
