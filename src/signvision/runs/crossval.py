"""k-fold cross-validation and the fold ensemble: `signvision train --folds K ...`.

The training images are cut into K stratified folds (scikit-learn's `StratifiedGroupKFold`; with
`--audit`, copies of one image share a fold). Fold k's model trains on the other K-1 folds and is
validated on fold k, as an ordinary run in OUT/fold<k>/, so every training image gets a probability
from a model that never saw it: the out-of-fold (OOF) predictions. One temperature is fitted on the
pooled OOF logits; `predict --run OUT` averages the K calibrated models (a fold ensemble).

    OUT/cv.json        the settings (a rerun of the same command continues; other settings are refused)
    OUT/folds.csv      img_IDS,Label,fold
    OUT/fold<k>/       one ordinary run per fold (its split.csv: fold k = val)
    OUT/oof.csv        img_IDS,Label,fold + calibrated out-of-fold probabilities
    OUT/summary.json   CV figures: mean ± std over folds, pooled OOF figures, the temperature

Interrupted? Run the same command again: finished folds are kept, an unfinished one resumes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.config import TrainConfig
from signvision.errors import OptionError
from signvision.files import atomic_write, read_json, write_json
from signvision.grouping.groups import group_keys
from signvision.grouping.splits import single_group_classes, split_groups
from signvision.logs import get_logger, prefixed
from signvision.models.probs import scaled_probs
from signvision.training.calibrate import fit_temperature
from signvision.training.folder import write_data_csv
from signvision.training.metrics import compute_metrics
from signvision.training.rundata import read_pseudo_labels, read_training_table
from signvision.training.summary import summary_record

logger = get_logger(__name__)

SUMMARY_KEYS = ("val_roc_auc", "val_log_loss", "val_accuracy", "val_ece")


def assign_folds(cfg: TrainConfig) -> pd.DataFrame:
    """img_IDS, Label, fold (1..K), group: stratified by label; near copies and neighbouring frames (unless
    `split_by` is random) and an audit's copies and sequences kept in one fold. A class whose images are all
    one group gets fold 0: trained on by every fold, validated by none. Each fold run's split keeps the
    groups, so that its intervals are taken over groups, not images."""
    from sklearn.model_selection import StratifiedGroupKFold

    table, dups, _ = read_training_table(cfg, dropped=[])
    if cfg.pseudo_labels:  # checked now: a bad CSV must not leave a started job behind
        read_pseudo_labels(cfg.pseudo_labels, table.classes)
    train = table.train
    counts = train["Label"].value_counts()
    if cfg.folds > counts.min():
        raise OptionError(
            f"the rarest class {counts.idxmin()!r} has only {counts.min()} images; use at most {counts.min()}",
            option="folds",
            value=cfg.folds,
        )
    groups, stats, _ = split_groups(table, split_by=cfg.split_by, dups=dups)
    alone = single_group_classes(train["Label"], groups)
    if len(alone) == counts.size:
        raise OptionError(
            "every class is one clip or sequence of near copies, so no fold can be validated on images its model "
            "did not see; add images from other clips, or use --split-by random (frames then straddle folds)",
            option="folds",
            value=cfg.folds,
        )
    if alone:
        logger.info(
            f"class(es) {', '.join(repr(c) for c in alone)}: all their images are one clip or sequence of near "
            f"copies, which cannot be on both sides of a fold; they are in every fold's training images and in "
            f"no validation fold (fold 0 in folds.csv), so the cross-validation figures do not cover them"
        )
    group_ids = group_keys(groups, train["img_IDS"]) if groups is not None else train["img_IDS"].astype(str)
    rest = ~train["Label"].isin(alone).to_numpy()
    splitter = StratifiedGroupKFold(cfg.folds, shuffle=True, random_state=cfg.seed)
    fold = np.zeros(len(train), dtype=int)  # 0: always trained on, never validated
    index = np.flatnonzero(rest)
    for k, (_, val) in enumerate(
        splitter.split(index, train["Label"].to_numpy()[rest], np.asarray(group_ids)[rest]), start=1
    ):
        fold[index[val]] = k
    group = groups.where(groups.notna(), "").astype(str).to_numpy() if groups is not None else ""
    return pd.DataFrame({"img_IDS": train["img_IDS"], "Label": train["Label"], "fold": fold, "group": group})


def fit_folds(cfg: TrainConfig, table=None, report: bool = False) -> dict:
    """Train the K fold runs (skipping finished ones), then the OOF predictions, temperature and summary, and
    with `report` the report.html of the out-of-fold images. `table`: data already read (a DataFrame's), saved
    in OUT as data.csv."""
    from signvision.runs.jobs import finished, job_folder, train_or_resume

    cfg.absolute_paths()
    out = Path(cfg.out)
    spec = {"folds": cfg.folds, "config": cfg.experiment()}  # the data and the recipe, not the machine
    with job_folder(out, spec, "cv.json", "a cross-validation"):
        if table is not None:
            cfg = replace(cfg, data=str(write_data_csv(table, out)))
        if (out / "folds.csv").is_file():  # the folds drawn when the job started
            folds = pd.read_csv(out / "folds.csv", dtype=str, keep_default_na=False).astype({"fold": int})
            folds = folds if "group" in folds.columns else folds.assign(group="")  # a job begun by an earlier version
        else:
            folds = assign_folds(cfg)  # its checks fail before anything is written
            with atomic_write(out / "folds.csv", newline="") as f:
                folds.to_csv(f, index=False)
            write_json(out / "config.json", asdict(cfg))
        (out / "splits").mkdir(exist_ok=True)
        started, trained = time.perf_counter(), 0
        for k in range(1, cfg.folds + 1):
            run = out / f"fold{k}"
            split_file = out / "splits" / f"fold{k}.csv"
            with atomic_write(split_file, newline="") as f:
                folds.assign(fold=np.where(folds["fold"] == k, "val", "train"))[["img_IDS", "fold", "group"]].to_csv(
                    f, index=False
                )
            if finished(run):
                logger.info(f"fold {k}/{cfg.folds}: finished earlier, kept")
                continue
            left = cfg.folds - k + 1
            eta = f", about {(time.perf_counter() - started) / trained * left:.0f} s left" if trained else ""
            labelled = f"{int((folds['fold'] != k).sum())} images"
            labelled += " and the pseudo-labelled" if cfg.pseudo_labels else ""
            logger.info(f"fold {k}/{cfg.folds}: training on {labelled}{eta}")
            try:
                with prefixed(f"  [fold {k}] "):
                    train_or_resume(run, replace(cfg, folds=1, out=str(run), split=str(split_file)))
            except KeyboardInterrupt:
                logger.info(f"interrupted in fold {k}: finished folds are kept; run the same command again to continue")
                raise
            trained += 1
        summary, scored = summarise_folds(out, cfg, folds)
        if report:
            write_folds_report(out, summary, scored)
        return summary


def write_folds_report(out: Path, summary: dict, scored: list) -> Path:
    """report.html of a `--folds` run from the out-of-fold scores its summary computed."""
    from signvision.inference.evaluate import scored_set
    from signvision.reports.run_report import write_report

    members = [s.member for s in scored]
    return write_report(
        out,
        scored_set(scored),
        summary=summary,
        histories={f"-{m.folder.name}": pd.read_csv(m.folder / "metrics.csv") for m in members},
        config=members[0].ckpt["config"],
        temperature=summary["temperature"],
        best_epoch=None,
        folds=len(members),
    )


def summarise_folds(out: Path, cfg: TrainConfig, folds: pd.DataFrame) -> tuple[dict, list]:
    """Out-of-fold logits of every training image, one temperature fitted on them, oof.csv and summary.json.
    Returns the summary and the folds' scores (inference.evaluate.Scored), calibrated with that temperature."""
    from signvision.data.dataset import make_loader
    from signvision.inference.evaluate import score_members
    from signvision.inference.members import load_run_model, validation_set

    members = [load_run_model(out / f"fold{k}") for k in range(1, cfg.folds + 1)]
    loaders = [make_loader(validation_set(m, None), batch_size=256) for m in members]
    scored = score_members(members, loaders, cfg.device)
    ids = [i for s in scored for i in s.images.ids]
    fold_of = [k for k, s in enumerate(scored, start=1) for _ in s.images.ids]
    fold_summaries = [read_json(m.folder / "summary.json") for m in members]
    per_fold = [{key: fs.get(key) for key in SUMMARY_KEYS} for fs in fold_summaries]
    task = members[0].task
    logits_all, y_all = np.concatenate([s.outputs.logits for s in scored]), np.concatenate([s.y for s in scored])
    temperature = fit_temperature(logits_all, y_all)
    raw = compute_metrics(y_all, np.concatenate([s.outputs.probs for s in scored]), task.names)
    probs = scaled_probs(logits_all, temperature)
    pooled = compute_metrics(y_all, probs, task.names)
    label_of = dict(zip(folds["img_IDS"], folds["Label"]))
    oof = pd.DataFrame({"img_IDS": ids, "Label": [label_of[i] for i in ids], "fold": fold_of})
    columns = task.names[-1:] if task.binary else task.classes
    oof = pd.concat([oof, pd.DataFrame(probs.reshape(len(ids), -1), columns=columns)], axis=1)
    with atomic_write(out / "oof.csv", newline="") as f:
        oof.to_csv(f, index=False, float_format="%.6f")
    fold_table = pd.DataFrame(per_fold)
    summary = summary_record(
        status="finished",
        classes=task.classes,
        target=cfg.target,
        model=cfg.model,
        train_seconds=sum(s.get("train_seconds", 0) for s in fold_summaries),
        figures=pooled,
        cross_validated=True,
        folds=cfg.folds,
        loss=cfg.loss,
        epochs=cfg.epochs,
        oof_images=int(len(y_all)),
        temperature=temperature,
        val_log_loss_uncalibrated=raw["log_loss"],
        val_ece_uncalibrated=raw["ece"],
        fold_mean={k: float(fold_table[k].mean()) for k in SUMMARY_KEYS if fold_table[k].notna().all()},
        fold_std={k: float(fold_table[k].std(ddof=1)) for k in SUMMARY_KEYS if fold_table[k].notna().all()},
        per_fold=per_fold,
    )
    write_json(out / "summary.json", summary)
    m, s = summary["fold_mean"], summary["fold_std"]
    logger.info(
        f"{cfg.folds}-fold CV: per fold ROC AUC {m['val_roc_auc']:.4f} ± {s['val_roc_auc']:.4f}, log loss "
        f"{m['val_log_loss']:.4f} ± {s['val_log_loss']:.4f}, accuracy {m['val_accuracy']:.4f} ± "
        f"{s['val_accuracy']:.4f}; pooled out-of-fold ({len(y_all)} images, temperature {temperature:.3f}): "
        f"ROC AUC {pooled['roc_auc']:.4f}, log loss {raw['log_loss']:.4f} -> {pooled['log_loss']:.4f}, "
        f"accuracy {pooled['accuracy']:.4f}"
    )
    for m in members:
        m.temperature = temperature  # the fold ensemble's one temperature
    return summary, scored
