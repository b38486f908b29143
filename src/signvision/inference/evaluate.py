"""Scoring a trained run: one engine for its validation images, a labelled test set and a fold ensemble.

    score_members      each member on its own labelled images, one loop: a run's validation images, or every
                       training image once by the fold model that did not train on it (`--folds`)
    evaluate_members   their figures uncalibrated, calibrated and with test-time views (`Run.evaluate()`)
    evaluate_run       the same for a run folder, kept in RUN/evaluations/run-validation[-tta-<mode>]/
    evaluate_labelled  labelled images the run never trained on (a test folder, class folders, a CSV), scored
                       by the members' mean (with TTA if asked), with 95% intervals over groups of near copies,
                       kept with their page in RUN/evaluations/<name>[-tta-<mode>]/
    report_run         a run folder's validation images scored again, rendered as report.html

Every set a run is scored on is kept in one layout, RUN/evaluations/<name>/evaluation.json (+ the page of a
labelled set), and every forward pass is `training.loop.view_probs` (through `evaluate_loader` or
`ensemble_probs`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.data.dataset import ImageDataset, make_loader
from signvision.errors import DataError, OptionError
from signvision.files import atomic_write, read_json
from signvision.inference.members import Members, RunModel, input_size, load_members, runtime_for
from signvision.inference.predict import predict_images
from signvision.logs import get_logger
from signvision.models.augment import TTA, as_tta
from signvision.models.probs import merge_probs, scaled_probs
from signvision.reports.html import escape, write_page
from signvision.reports.run_report import ScoredSet, scored_sections, write_report
from signvision.training.loop import Outputs, evaluate_loader
from signvision.training.metrics import SCORES, compute_metrics, group_bootstrap, paired_bootstrap
from signvision.training.runtime import Runtime, pick_device

logger = get_logger(__name__)

VALIDATION = "run-validation"  # the name of a run's own validation images under RUN/evaluations/
COPIES_AGREE = 0.9  # near copies whose labels agree this often are copies (memory), not look-alikes


def output_folder(run: Path, name: str, tta: TTA | str | None) -> Path:
    """RUN/evaluations/<name>[-tta-<mode>]: one folder per scored set (a rerun replaces its files)."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-") or "data"
    spec = tta.spec if isinstance(tta, TTA) else (tta or "none")
    return Path(run) / "evaluations" / (name + ("" if spec == "none" else f"-tta-{Path(spec).stem}"))


def data_name(data: Path) -> str:
    """The name a labelled set is kept under: its folder's name, or <folder>-<stem> for a CSV."""
    return data.parent.name + "-" + data.stem if data.suffix.lower() == ".csv" else data.name


def write_result(folder: Path, result: dict) -> Path:
    """evaluation.json of a scored set, written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "evaluation.json") as f:
        f.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return folder / "evaluation.json"


# ----------------------------------------------------------------------------------------------------
# Each member on its own labelled images
# ----------------------------------------------------------------------------------------------------
@dataclass
class Scored:
    """One member scored on its own labelled images: the images, their loader, the runtime, the outputs of the
    plain (no TTA) pass and the labels; `calibrated`: the probabilities with the member's temperature."""

    member: RunModel
    images: ImageDataset
    loader: object
    runtime: Runtime
    outputs: Outputs
    y: np.ndarray

    @property
    def calibrated(self) -> np.ndarray:
        t = self.member.temperature
        return scaled_probs(self.outputs.logits, t) if t is not None else self.outputs.probs


def validation_set(member: RunModel, data: str | None, skip_bad_images: bool = False) -> ImageDataset:
    """The member's own validation images, rebuilt from its split.csv (and `data` if they moved)."""
    from signvision.training.rundata import prepare_run_data

    cfg = member.cfg
    cfg.target = member.ckpt["target"]
    cfg.skip_bad_images = cfg.skip_bad_images or skip_bad_images
    if data is not None:
        cfg.data, cfg.csv = data, None
    return prepare_run_data(cfg, member.folder / "split.csv", classes=member.task.classes, pseudo=False).subset("val")


def score_members(members: list[RunModel], loaders: list, device: str = "auto") -> list[Scored]:
    """Each member on its own labelled loader (together: a run's validation set, or every training image once
    for a cross-validated run): what evaluate, the report and the CV summary share."""
    dev = pick_device(device)
    scored = []
    for m, loader in zip(members, loaders):
        runtime = runtime_for(m, dev)
        m.model.to(dev)
        _, outputs, y = evaluate_loader(m.model, loader, runtime, m.task)
        scored.append(Scored(m, loader.dataset, loader, runtime, outputs, y))
    return scored


def score_validation(
    run: str | Path, data: str | None = None, device: str = "auto", batch_size: int = 128, skip_bad_images=False
) -> tuple[list[RunModel], list[Scored]]:
    """A run folder's members, each scored on its validation images (rebuilt from `data` if they moved)."""
    members = load_members(run)
    loaders = [make_loader(validation_set(m, data, skip_bad_images), batch_size=batch_size) for m in members]
    return members, score_members(members, loaders, device)


def scored_set(scored: list[Scored]) -> ScoredSet:
    """What the report shows of scored members: their images pooled, in order."""
    images = [(s.images, i) for s in scored for i in range(len(s.images))]
    return ScoredSet(
        y=np.concatenate([s.y for s in scored]),
        probs=np.concatenate([s.calibrated for s in scored]),
        raw=np.concatenate([s.outputs.probs for s in scored]),
        names=scored[0].member.task.names,
        picture=lambda i: images[i][0].load(images[i][1]),
        caption=lambda i: images[i][0].ids[images[i][1]],
        groups=validation_groups(scored),
        explain=scored_explainer(scored),
    )


def scored_explainer(scored: list[Scored]):
    """`explain(indices, classes)` over scored members' pooled images: each image explained by the member that
    scored it (an out-of-fold image by the fold model that never trained on it)."""
    from signvision.inference.explain import explain_arrays

    owners = [(k, i) for k, s in enumerate(scored) for i in range(len(s.images))]

    def explain(indices, classes) -> np.ndarray:
        out: list = [None] * len(indices)
        by_member: dict[int, list] = {}
        for n, (index, c) in enumerate(zip(indices, classes)):
            k, i = owners[int(index)]
            by_member.setdefault(k, []).append((n, i, int(c)))
        for k, items in by_member.items():
            s = scored[k]
            arrays = [s.images.load(i) for _, i, _ in items]
            maps = explain_arrays([s.member], arrays, [c for _, _, c in items], device=s.runtime.device.type)[0]
            for (n, _, _), heat in zip(items, maps):
                out[n] = heat
        return np.stack(out)

    return explain


# ----------------------------------------------------------------------------------------------------
# A run's validation figures
# ----------------------------------------------------------------------------------------------------
def evaluate_members(scored: list[Scored], tta: TTA | None = None) -> dict:
    """Figures of scored members pooled: uncalibrated, calibrated, and calibrated with `tta`'s views."""
    members = [s.member for s in scored]
    y = np.concatenate([s.y for s in scored])
    names = members[0].task.names
    columns = {
        "uncalibrated": compute_metrics(y, np.concatenate([s.outputs.probs for s in scored]), names),
        "calibrated": compute_metrics(y, np.concatenate([s.calibrated for s in scored]), names),
    }
    if tta is not None:
        views = [
            evaluate_loader(
                s.member.model, s.loader, s.runtime, s.member.task, temperature=s.member.temperature, tta=tta
            )
            for s in scored
        ]
        columns[f"TTA {tta.spec}"] = compute_metrics(y, np.concatenate([o.probs for _, o, _ in views]), names)
    result = {
        "cross_validated": len(members) > 1,
        "images": int(len(y)),
        "temperature": members[0].temperature,
        "tta": tta.spec if tta is not None else "none",
        "uncalibrated": _scalar(columns["uncalibrated"]),
        "without_tta": _scalar(columns["calibrated"]),
    }
    if tta is not None:
        result["with_tta"] = _scalar(columns[f"TTA {tta.spec}"])
        with_tta = np.concatenate([o.probs for _, o, _ in views])
        calibrated = np.concatenate([s.calibrated for s in scored])
        result["tta_gain"] = paired_bootstrap(y, with_tta, calibrated, validation_groups(scored))
    logger.info(describe_columns(columns, members, len(y)))
    if tta is not None:
        logger.info(describe_gain(result["tta_gain"], tta.spec))
    return result


def validation_groups(scored: list[Scored]) -> list[str]:
    """The group of near copies of each scored image (from the run's split.csv; each image alone without it):
    what intervals over the validation images are drawn over."""
    from signvision.grouping.splits import split_group_keys_of

    keys = []
    for s in scored:
        split = s.member.folder / "split.csv" if s.member.folder is not None else None
        if split is not None and split.is_file():
            keys += split_group_keys_of(pd.read_csv(split, dtype=str, keep_default_na=False), s.images.ids)
        else:
            keys += list(s.images.ids)
    return keys


def describe_gain(gain: dict, spec: str) -> str:
    """One line: what test-time views changed, with the paired interval, and whether it is beyond noise."""
    interval = gain["log_loss_ci"]
    verdict = ""
    if interval:
        verdict = " (better)" if interval[1] < 0 else " (worse)" if interval[0] > 0 else " (within noise)"
    ci = f" [{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else ""
    return (
        f"TTA {spec} against none, paired over {gain['groups']} groups: log loss {gain['log_loss']:+.4f}{ci}{verdict}, "
        f"accuracy {gain['accuracy']:+.4f}"
    )


def evaluate_run(
    run: str | Path,
    data: str | None = None,
    *,
    tta: TTA | str | None = None,
    device: str = "auto",
    batch_size: int = 128,
    skip_bad_images: bool = False,
) -> dict:
    """A run folder's validation figures (a cross-validated run: out-of-fold), uncalibrated, calibrated and
    with TTA, kept in RUN/evaluations/run-validation[-tta-<mode>]/evaluation.json. `data`: where the run's
    own images are now, if they moved."""
    from signvision.training.folder import is_ensemble

    if is_ensemble(run):
        return evaluate_ensemble(run, tta=tta, device=device, batch_size=batch_size)
    members, scored = score_validation(run, data, device, batch_size, skip_bad_images)
    views = as_tta(tta, image_size=members[0].cfg.image_size, seed=members[0].cfg.seed)
    result = {**evaluate_members(scored, views), "run": str(run)}
    write_result(output_folder(run, VALIDATION, views), result)
    return result


# ----------------------------------------------------------------------------------------------------
# Which test-time views pay, chosen on the run's validation (out-of-fold) images
# ----------------------------------------------------------------------------------------------------
TTA_CANDIDATES = ("hflip", "capture")  # the built-in views `choose_tta` tries against none
TTA_CHOICE = "tta-choice.json"  # RUN/evaluations/tta-choice.json: what `--tta auto` uses


def choose_tta(run: str | Path, *, modes=TTA_CANDIDATES, device: str = "auto", batch_size: int = 128) -> dict:
    """Score RUN's validation images (out-of-fold for a `--folds` run or an ensemble) with each TTA mode and keep
    the one whose paired log loss gain over no TTA is largest and beyond noise (its 95% interval below zero);
    none if no mode is. Written to RUN/evaluations/tta-choice.json, which `predict --tta auto` and
    `serve --tta auto` read. Returns {"chosen": mode, "gains": {mode: paired gain}}."""
    run = Path(run)
    gains = {}
    for mode in modes:
        gains[mode] = evaluate_run(run, tta=mode, device=device, batch_size=batch_size)["tta_gain"]
    paying = {m: g for m, g in gains.items() if g["log_loss_ci"] and g["log_loss_ci"][1] < 0}
    chosen = min(paying, key=lambda m: paying[m]["log_loss"]) if paying else "none"
    from signvision.training.folder import run_digest

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
    from signvision.training.folder import run_digest

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


# ----------------------------------------------------------------------------------------------------
# An ensemble's out-of-fold images
# ----------------------------------------------------------------------------------------------------
def ensemble_oof(members: Members, *, tta: TTA | None = None, device: str = "auto", batch_size: int = 128):
    """An ensemble's out-of-fold images (img_IDS, path), labels and merged probabilities: fold k's model of
    every run on fold k's images, through `predict_images` (the path `predict` and `serve` take)."""
    by_fold: dict[str, list[RunModel]] = {}
    for m in members:
        by_fold.setdefault(m.folder.name, []).append(m)
    tables, ys, probs = [], [], []
    for fold_members in by_fold.values():
        images = validation_set(fold_members[0], None)
        table = pd.DataFrame({"img_IDS": images.ids, "path": images.paths})
        subset = Members(fold_members, weights=members.weights, merge=members.merge, temperature=members.temperature)
        probs.append(predict_images(subset, table, tta=tta, device=device, batch_size=batch_size, workers=0))
        tables.append(table)
        ys.append(images.targets)
    return pd.concat(tables, ignore_index=True), np.concatenate(ys), np.concatenate(probs)


def ensemble_groups(run: Path, ids: pd.Series) -> list[str]:
    """The group of near copies of each out-of-fold image of an ensemble (its folds.csv)."""
    from signvision.grouping.splits import split_group_keys_of

    return split_group_keys_of(pd.read_csv(run / "folds.csv", dtype=str, keep_default_na=False), ids)


def evaluate_ensemble(run: Path, *, tta: TTA | str | None = None, device: str = "auto", batch_size: int = 128) -> dict:
    """An ensemble's out-of-fold figures (calibrated, and with `tta` with its paired gain), kept in
    RUN/evaluations/run-validation[-tta-<mode>]/evaluation.json."""
    members = load_members(run)
    views = as_tta(tta, image_size=input_size(members), seed=members[0].cfg.seed)
    table, y, probs = ensemble_oof(members, device=device, batch_size=batch_size)
    names = members[0].task.names
    columns = {"calibrated": compute_metrics(y, probs, names)}
    result = {"cross_validated": True, "ensemble": True, "images": int(len(y)), "temperature": members.temperature}
    result |= {"tta": views.spec if views is not None else "none", "without_tta": _scalar(columns["calibrated"])}
    if views is not None:
        with_tta = ensemble_oof(members, tta=views, device=device, batch_size=batch_size)[2]
        columns[f"TTA {views.spec}"] = compute_metrics(y, with_tta, names)
        result["with_tta"] = _scalar(columns[f"TTA {views.spec}"])
        result["tta_gain"] = paired_bootstrap(y, with_tta, probs, ensemble_groups(Path(run), table["img_IDS"]))
    logger.info(describe_columns(columns, members, len(y)))
    if views is not None:
        logger.info(describe_gain(result["tta_gain"], views.spec))
    result["run"] = str(run)
    write_result(output_folder(run, VALIDATION, views), result)
    return result


def describe_columns(columns: dict, members, n: int) -> str:
    """The table `evaluate` prints: one column per set of probabilities, and the TTA gain."""
    what = "out-of-fold images" if len(members) > 1 else "validation images"
    t = getattr(members, "temperature", None) or members[0].temperature
    where = f", run {members[0].folder}" if members[0].folder is not None else ""
    tta = next((name for name in columns if name.startswith("TTA ")), None)
    lines = [f"{what}: {n} (" + (f"temperature {t:.3f}" if t else "not calibrated") + f"{where})"]
    header = f"{'metric':<10}" + "".join(f" {name:>16}" for name in columns)
    lines.append(header + (f" {'TTA gain':>9}" if tta else ""))
    for key in SCORES:
        line = f"{key:<10}" + "".join(f" {c[key]:>16.4f}" for c in columns.values())
        if tta:
            line += f" {columns[tta][key] - columns['calibrated'][key]:>+9.4f}"
        lines.append(line)
    return "\n".join(lines)


def _scalar(metrics: dict) -> dict:
    return {k: metrics[k] for k in (*SCORES, "loss", "per_class_roc_auc") if k in metrics}


def report_run(run: str | Path, *, data: str | None = None, device: str = "auto") -> Path:
    """Score a run folder's best model(s) on its validation images again and write report.html into it."""
    from signvision.training.folder import is_ensemble

    run = Path(run)
    if is_ensemble(run):
        return report_ensemble(run, device=device)
    members, scored = score_validation(run, data, device)
    histories = {
        (f"-{m.folder.name}" if len(members) > 1 else ""): pd.read_csv(m.folder / "metrics.csv") for m in members
    }
    return write_report(
        run,
        scored_set(scored),
        summary=read_json(run / "summary.json") if (run / "summary.json").is_file() else {},
        histories=histories,
        config=members[0].ckpt["config"],
        temperature=members[0].temperature,
        best_epoch=members[0].ckpt["epoch"],
        folds=len(members),
    )


def report_ensemble(run: Path, *, device: str = "auto") -> Path:
    """report.html of an ensemble: its out-of-fold images scored by the merged runs, and its weights."""
    from signvision.inference.explain import explain_arrays

    members = load_members(run)
    table, y, probs = ensemble_oof(members, device=device)
    size = input_size(members)
    t = members.temperature  # the merged runs before it: p^T renormalised undoes p^(1/T) (merge_probs)
    scored = ScoredSet(
        y=y,
        probs=probs,
        raw=merge_probs([probs], merge="geometric", temperature=1 / t) if t else None,
        names=members[0].task.names,
        picture=lambda i: _load(table["path"].iloc[i], size),
        caption=lambda i: str(table["img_IDS"].iloc[i]),
        groups=ensemble_groups(run, table["img_IDS"]),
        explain=lambda idx, c: explain_arrays(members, [_load(table["path"].iloc[i], size) for i in idx], list(c))[0],
    )
    summary = read_json(run / "summary.json")
    return write_report(
        run,
        scored,
        summary=summary,
        histories={},
        config=read_json(run / "config.json"),
        temperature=members.temperature,
        best_epoch=None,
        folds=int(summary.get("folds") or 2),
    )


# ----------------------------------------------------------------------------------------------------
# Labelled images the run never trained on
# ----------------------------------------------------------------------------------------------------
def labelled_targets(task, table: pd.DataFrame, data) -> np.ndarray:
    """The labels of a scored set as the run's targets; DataError naming a class the run does not know."""
    if task.target is None:
        unknown = sorted(set(table["Label"]) - set(task.classes))
        if unknown:
            count = int((table["Label"] == unknown[0]).sum())
            raise DataError(
                f"class {unknown[0]!r} ({count} images, {len(unknown)} unknown class(es) in all) is not one of the "
                f"run's classes ({', '.join(task.classes)})",
                option="data",
                value=data,
            )
    return task.encode(table["Label"])


def training_images(member: RunModel) -> pd.DataFrame | None:
    """The images a run folder trained on (its split's training side: path, Label), or None when they cannot be
    found now."""
    from signvision.grouping.splits import read_split
    from signvision.training.rundata import read_training_table

    try:
        train = read_training_table(member.cfg, dropped=[])[0].train
        fold = read_split(member.folder / "split.csv", train["img_IDS"]).set_index("img_IDS")["fold"]
    except Exception:  # the training images moved or changed: the check is skipped, not the evaluation
        return None
    return train.loc[train["img_IDS"].map(fold).eq("train").to_numpy(), ["path", "Label"]]


def test_leak(trained: pd.DataFrame | None, table: pd.DataFrame) -> dict:
    """What the run's training images say about these: the share with a near copy among them, how often such a
    copy carries the same label (real copies do; look-alike hands in another capture often do not), and the
    memory baseline (the label of each image's nearest training image)."""
    from signvision.grouping.nearcopies import fingerprint_images, leak_check

    if trained is None:
        return {"near_copy_share": None, "copy_label_agreement": None, "memory_accuracy": None}
    fp = fingerprint_images(trained["path"].tolist() + table["path"].tolist())
    is_scored = np.r_[np.zeros(len(trained), bool), np.ones(len(table), bool)]
    labels = np.r_[trained["Label"].astype(str).to_numpy(), table["Label"].astype(str).to_numpy()]
    leak = leak_check(fp, labels, is_scored)
    return {
        "near_copy_share": leak["val_near_copy_share"],
        "copy_label_agreement": leak.get("copy_label_agreement"),
        "memory_accuracy": leak["memory_accuracy"],
    }


def evaluate_labelled(
    members: list[RunModel],
    data: str | Path,
    *,
    folder: Path | None = None,
    trained: pd.DataFrame | None = None,
    tta: TTA | str | None = None,
    device: str = "auto",
    batch_size: int = 128,
    workers: int = -1,
) -> dict:
    """Score a run's members on the labelled images of DATA; with the run's `folder`, write
    FOLDER/evaluations/<name>/evaluation.json and evaluation.html. `trained`: the images the run trained on
    (path, Label; read from the folder's split when None). `sv.load_run(RUN).evaluate(data=DATA)` is the public call.

    Returns the figures: images, groups, accuracy, log_loss, roc_auc, ece (each with an `_ci` interval
    where defined), per_class_roc_auc, near_copy_share (test images with a near copy in training),
    copy_label_agreement (how often those copies carry the image's label), memory_accuracy."""
    from signvision.data.tables import read_labelled
    from signvision.grouping.groups import group_keys
    from signvision.grouping.nearcopies import fingerprint_images, group_near_copies
    from signvision.inference.explain import explainer

    data = Path(data)
    views = as_tta(tta, image_size=input_size(members), seed=members[0].cfg.seed)
    table = read_labelled(data)
    labelled, task = table.train, members[0].task
    y = labelled_targets(task, labelled, data)
    probs = predict_images(members, labelled, tta=views, device=device, batch_size=batch_size, workers=workers)
    groups = group_keys(group_near_copies(fingerprint_images(labelled["path"].tolist())), labelled["img_IDS"])
    interval = group_bootstrap(y, probs, groups)
    metrics = compute_metrics(y, probs, task.names)
    if trained is None and folder is not None and len(members) == 1:
        trained = training_images(members[0])
    result = {
        "run": str(folder) if folder is not None else "in memory",
        "data": str(data),
        "layout": table.layout,
        "tta": views.spec if views is not None else "none",
        "images": int(len(y)),
        "groups": interval["groups"],
        **{k: metrics[k] for k in ("accuracy", "log_loss", "roc_auc", "ece")},
        "accuracy_ci": interval["accuracy"],
        "log_loss_ci": interval["log_loss"],
        "per_class_roc_auc": metrics["per_class_roc_auc"],
        **test_leak(trained, labelled),
    }
    logger.info(describe(result))
    if folder is not None:
        scored = ScoredSet(
            y=y,
            probs=probs,
            raw=None,
            names=task.names,
            picture=lambda i: _load(labelled["path"].iloc[i], input_size(members)),
            caption=lambda i: str(labelled["img_IDS"].iloc[i]),
            groups=list(groups),
            explain=explainer(members, lambda i: _load(labelled["path"].iloc[i], input_size(members)), device),
        )
        page = write_evaluation(output_folder(folder, data_name(data), views), result, scored)
        logger.info(f"page: {page}")
    return result


def _load(path: str, size: int) -> np.ndarray:
    from signvision.data.images import load_resized

    return load_resized(path, size)


def write_evaluation(out: Path, result: dict, scored: ScoredSet) -> Path:
    """evaluation.json, the figures and evaluation.html of a scored set, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    sections, _ = scored_sections(out, scored, what="scored images")
    write_result(out, result)
    title = f"signvision: {Path(result['run']).name} on {Path(result['data']).name}"
    return write_page(out / "evaluation.html", title, page_head(result) + "".join(sections))


def describe(result: dict) -> str:
    """The figures of a scored set in a few lines."""

    def ci(key):
        interval = result.get(f"{key}_ci")
        return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""

    lines = [
        f"{result['images']} labelled images of {result['data']} ({result['groups']} groups of near copies)"
        + (f", TTA {result['tta']}" if result["tta"] != "none" else ""),
        f"accuracy {result['accuracy']:.4f}{ci('accuracy')}  log loss {result['log_loss']:.4f}{ci('log_loss')}  "
        f"ROC AUC {result['roc_auc']:.4f}  ECE {result['ece']:.4f}   (95% intervals over groups)",
    ]
    share, agree = result.get("near_copy_share"), result.get("copy_label_agreement")
    if share:
        memory = f"; memory baseline (the nearest training image's label) {result['memory_accuracy']:.3f}"
        if agree is not None and agree >= COPIES_AGREE:
            lines.append(
                f"warning: {share:.1%} of these images have a near copy among the run's training images, and those "
                f"copies carry the same label {agree:.0%} of the time: their score partly measures memory{memory}"
            )
        else:
            lines.append(
                f"{share:.1%} of these images look like a training image at 16x16, but those share their label only "
                f"{agree:.0%} of the time: look-alikes, not copies{memory}"
            )
    return "\n".join(lines)


def page_head(result: dict) -> str:
    """The opening paragraph of evaluation.html."""
    share = result.get("near_copy_share")
    leak = f" {share:.1%} of them have a near copy among the run's training images." if share is not None else ""
    return (
        f"<p>{result['images']} labelled images ({escape(result['layout'])} layout), "
        f"{result['groups']} groups of near copies; 95% intervals are taken over groups.{escape(leak)}</p>"
        f"<pre>{escape(describe(result))}</pre>"
    )
