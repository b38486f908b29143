"""Using a finished run: load it, evaluate it on its validation images, predict new images.

A run is a single run folder (best.pt holds the weights and the fitted temperature) or a
cross-validated run (OUT/cv.json, one run per fold in OUT/fold<k>/, the temperature fitted on the
out-of-fold logits in OUT/summary.json). For a cross-validated run, `evaluate_run` scores every training
image with the fold model that did not train on it, and `predict` averages the folds' probabilities:
a fold ensemble.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from signvision.config import TrainConfig
from signvision.data.dataset import ImageDataset, auto_workers, make_loader
from signvision.data.tables import read_unlabelled
from signvision.errors import BadImage, MissingError, RunError
from signvision.files import atomic_write, read_json, refuse_overwrite
from signvision.models.augment import TTA
from signvision.models.task import ID_COLUMN, Task
from signvision.progress import progress_bar
from signvision.training.calibrate import scaled_probs
from signvision.training.checkpoint import load_checkpoint, model_from_checkpoint
from signvision.training.loop import Outputs, evaluate
from signvision.training.metrics import SCORES, compute_metrics
from signvision.training.rundata import prepare_run_data
from signvision.training.runtime import Runtime, pick_device


@dataclass
class RunModel:
    """A trained model ready for inference: the model, its task and config, the checkpoint it came from
    and the temperature its probabilities are divided by (None: uncalibrated)."""

    model: nn.Module
    task: Task
    cfg: TrainConfig
    ckpt: dict
    temperature: float | None
    folder: Path


def is_cv_run(run: str | Path) -> bool:
    """Whether RUN is a `--folds` run (it holds cv.json)."""
    return (Path(run) / "cv.json").is_file()


def fold_folders(run: Path) -> list[Path]:
    """The fold runs of a cross-validated run, each finished (a RunError otherwise)."""
    spec = read_json(run / "cv.json")
    folders = [run / f"fold{k}" for k in range(1, int(spec.get("folds", 0)) + 1)]
    unfinished = [f.name for f in folders if not (f / "best.pt").is_file()]
    if not folders or unfinished:
        raise RunError(
            f"cross-validation not finished (no best.pt in {', '.join(unfinished) or 'any fold'}); run the same "
            "train command again to finish it",
            option="run",
            value=run,
        )
    return folders


def check_run_folder(run: str | Path) -> Path:
    """The run folder exists and is finished enough to use (one line otherwise)."""
    run = Path(run)
    if not run.is_dir():
        raise MissingError("folder not found", option="run", value=run)
    if is_cv_run(run):
        fold_folders(run)
    elif not (run / "best.pt").is_file():
        raise RunError("no best.pt (not a signvision run, or no epoch finished yet)", option="run", value=run)
    return run


def load_run(run: str | Path, checkpoint: str = "best.pt") -> RunModel:
    """One run's model (for a cross-validated run use `load_members`)."""
    run = check_run_folder(run)
    ckpt = load_checkpoint(run / checkpoint)
    model, task, cfg = model_from_checkpoint(ckpt, run / checkpoint)
    if (run / "config.json").is_file():  # where the images are now (a resume with --data may have moved them)
        saved = TrainConfig.load(run / "config.json")
        cfg.data, cfg.csv, cfg.image_dir = saved.data, saved.csv, saved.image_dir
    return RunModel(model.eval(), task, cfg, ckpt, ckpt.get("temperature"), run)


def load_members(run: str | Path) -> list[RunModel]:
    """The models that make a run's predictions: the run itself, or each fold with the CV temperature."""
    run = check_run_folder(run)
    if not is_cv_run(run):
        return [load_run(run)]
    temperature = read_json(run / "summary.json").get("temperature") if (run / "summary.json").is_file() else None
    members = [load_run(f) for f in fold_folders(run)]
    for m in members:
        m.temperature = temperature
    return members


def runtime_for(member: RunModel, device) -> Runtime:
    """The Runtime (device, normalisation) a member's checkpoint asks for."""
    norm = member.ckpt["norm"]
    return Runtime.create(device, norm["mean"], norm["std"])


def validation_set(member: RunModel, data: str | None) -> ImageDataset:
    """The member's own validation images, rebuilt from its split.csv (and `data` if they moved)."""
    cfg = member.cfg
    cfg.target = member.ckpt["target"]
    if data is not None:
        cfg.data, cfg.csv = data, None
    return prepare_run_data(cfg, member.folder / "split.csv", classes=member.task.classes).subset("val")


@dataclass
class Scored:
    """One member scored on its own validation images: the images, their loader, the outputs of the plain
    (no TTA) pass, the labels, and the probabilities with the member's temperature applied."""

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


def score_members(members: list[RunModel], data: str | None, device: str, batch_size: int = 128):
    """Yield each member scored on its validation images (together: a run's validation set, or every
    training image once for a cross-validated run). What evaluate, report and the CV summary share."""
    dev = pick_device(device)
    for m in members:
        images = validation_set(m, data)
        loader = make_loader(images, batch_size=batch_size)
        runtime = runtime_for(m, dev)
        m.model.to(dev)
        _, outputs, y = evaluate(m.model, loader, runtime, m.task)
        yield Scored(m, images, loader, runtime, outputs, y)


def holds_run_images(member: RunModel, data: str | Path) -> bool:
    """Whether DATA is the run's own data (moved): it holds every image of the run's split.csv."""
    from signvision.data.tables import read_labelled

    split_ids = pd.read_csv(member.folder / "split.csv", dtype=str, keep_default_na=False)["img_IDS"]
    return set(split_ids) <= set(read_labelled(data).train["img_IDS"])


def evaluation_file(tta: str) -> str:
    """Where `evaluate_run` keeps its result for a TTA mode (ablate reads the same names)."""
    return "evaluation.json" if tta == "none" else f"evaluation-tta-{Path(tta).stem}.json"


def evaluate_run(
    run: str | Path,
    data: str | None = None,
    *,
    tta: str = "none",
    tta_merge: str = "mean",
    tta_views: int = 4,
    device: str = "auto",
    batch_size: int = 128,
    skip_bad_images: bool = False,
    log=print,
) -> dict:
    """Validation metrics without calibration, calibrated, and calibrated with TTA; saved as
    evaluation*.json in the run. A cross-validated run is scored on its out-of-fold predictions.

    `data`: where the run's own images are now, if they moved (other labelled images, a test set: see
    `evaluation.evaluate_labelled`)."""
    members = load_members(run)
    for m in members:
        m.cfg.skip_bad_images = m.cfg.skip_bad_images or skip_bad_images
    loaders = [make_loader(validation_set(m, data), batch_size=batch_size) for m in members]
    result = evaluate_members(
        members, loaders, tta=tta, tta_merge=tta_merge, tta_views=tta_views, device=device, log=log
    )
    result["run"] = str(run)
    (Path(run) / evaluation_file(tta)).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def evaluate_members(
    members: list[RunModel], loaders, *, tta="none", tta_merge="mean", tta_views=4, device="auto", log=print
) -> dict:
    """Each member scored on its own labelled loader (together: a run's validation images, or every training
    image once for a cross-validated run): uncalibrated, calibrated, and calibrated with TTA."""
    dev = pick_device(device)
    size, seed = members[0].cfg.image_size, members[0].cfg.seed
    views = TTA(tta, merge=tta_merge, views=tta_views, image_size=size, seed=seed)
    pools: dict[str, list] = {"uncalibrated": [], "calibrated": [], "tta": [], "y": []}
    for m, loader in zip(members, loaders):
        runtime = runtime_for(m, dev)
        m.model.to(dev)
        _, outputs, y = evaluate(m.model, loader, runtime, m.task)
        pools["uncalibrated"].append(outputs.probs)
        t = m.temperature
        pools["calibrated"].append(scaled_probs(outputs.logits, t) if t is not None else outputs.probs)
        if tta != "none":
            pools["tta"].append(evaluate(m.model, loader, runtime, m.task, temperature=t, tta=views)[1].probs)
        pools["y"].append(y)
    y = np.concatenate(pools["y"])
    names = members[0].task.names
    columns = {k: compute_metrics(y, np.concatenate(pools[k]), names) for k in ("uncalibrated", "calibrated")}
    if tta != "none":
        columns[f"TTA {tta}"] = compute_metrics(y, np.concatenate(pools["tta"]), names)
    result = {
        "cross_validated": len(members) > 1,
        "images": int(len(y)),
        "temperature": members[0].temperature,
        "tta": tta,
        "uncalibrated": _scalar(columns["uncalibrated"]),
        "without_tta": _scalar(columns["calibrated"]),
    }
    if tta != "none":
        result["with_tta"] = _scalar(columns[f"TTA {tta}"])
    log(describe_columns(columns, members, tta, len(y)))
    return result


def describe_columns(columns: dict, members, tta: str, n: int) -> str:
    """The table `evaluate` prints: one column per set of probabilities, and the TTA gain."""
    what = "out-of-fold images" if len(members) > 1 else "validation images"
    t = members[0].temperature
    where = f", run {members[0].folder}" if members[0].folder is not None else ""
    lines = [f"{what}: {n} (" + (f"temperature {t:.3f}" if t else "not calibrated") + f"{where})"]
    header = f"{'metric':<10}" + "".join(f" {name:>16}" for name in columns)
    lines.append(header + (f" {'TTA gain':>9}" if tta != "none" else ""))
    for key in SCORES:
        line = f"{key:<10}" + "".join(f" {c[key]:>16.4f}" for c in columns.values())
        if tta != "none":
            line += f" {columns[f'TTA {tta}'][key] - columns['calibrated'][key]:>+9.4f}"
        lines.append(line)
    return "\n".join(lines)


def _scalar(metrics: dict) -> dict:
    return {k: metrics[k] for k in (*SCORES, "loss", "per_class_roc_auc") if k in metrics}


@torch.no_grad()
def ensemble_probs(members: list[RunModel], runtimes: list[Runtime], images: torch.Tensor, tta: TTA | None = None):
    """uint8 images (B, 3, S, S) -> the mean over a run's members (its folds) of calibrated probabilities,
    (B, K) or (B,) P(positive), as a numpy array: what `predict`, `evaluate --data` and `serve` all use."""
    total = None
    for m, runtime in zip(members, runtimes):

        def probs(x: torch.Tensor, m=m, runtime=runtime) -> torch.Tensor:
            with runtime.autocast():
                logits = m.model(x).float()
            return m.task.probs(logits, m.temperature)

        p = (
            tta(probs, images, runtime.prepare)
            if tta is not None and tta.spec != "none"
            else probs(runtime.prepare(images))
        )
        p = p.cpu().numpy()
        total = p if total is None else total + p
    return total / len(members)


def predict_images(
    members: list[RunModel],
    table: pd.DataFrame,
    *,
    tta: str = "none",
    tta_merge: str = "mean",
    device: str = "auto",
    batch_size: int = 128,
    workers: int = -1,
    tta_views: int = 4,
) -> np.ndarray:
    """Probabilities (N, K) or (N,) for the images of `table` (img_IDS, path): the mean over members. Each
    image is decoded once, whatever the number of members."""
    dev = pick_device(device)
    image_size = members[0].cfg.image_size
    dataset = ImageDataset(table["path"].tolist(), image_size, ids=table[ID_COLUMN].tolist())
    n_workers = auto_workers(workers, cached=False, augmented=True, cuda=dev.type == "cuda")
    loader = make_loader(dataset, batch_size=batch_size, workers=n_workers, pin_memory=dev.type == "cuda")
    views = TTA(tta, merge=tta_merge, views=tta_views, image_size=image_size, seed=members[0].cfg.seed)
    for m in members:
        m.model.to(dev).eval()
    runtimes = [runtime_for(m, dev) for m in members]
    probs, ids = [], []
    bar = progress_bar(total=len(dataset), desc="predict", unit="img", min_total=500)
    try:
        for images, keys in loader:
            probs.append(ensemble_probs(members, runtimes, images, views))
            ids += list(keys)
            bar.update(len(keys))
    except BadImage as e:  # a corrupt image; from a loader process the message ends with the original
        raise BadImage(str(e).strip().splitlines()[-1].removeprefix("signvision.errors.BadImage: ")) from None
    finally:
        bar.close()
    if ids != table[ID_COLUMN].tolist():
        raise RuntimeError("predictions came back out of order")
    return np.concatenate(probs) if probs else np.zeros((0,))


def probability_columns(task: Task) -> list[str]:
    """The probability columns of a submission: one per class, in the run's class order (rows sum to 1),
    or the target alone for a `--target` run."""
    return [task.target] if task.target is not None else list(task.classes)


def probability_table(task: Task, probs: np.ndarray) -> np.ndarray:
    """Probabilities (N, K), or P(positive) (N,) of a binary run, as the columns of `probability_columns`."""
    if task.target is not None:
        return probs.reshape(-1, 1)
    if task.binary:
        return np.stack([1 - probs, probs], axis=1)
    return probs


def submission_frame(task: Task, ids: list[str], probs: np.ndarray) -> pd.DataFrame:
    """img_IDS + the probability columns (what `predict` writes)."""
    frame = pd.DataFrame(probability_table(task, probs), columns=probability_columns(task))
    frame.insert(0, ID_COLUMN, ids)
    return frame


def predict(
    run: str | Path,
    data: str | Path | None,
    out: str | Path,
    *,
    tta: str = "none",
    tta_merge: str = "mean",
    tta_views: int = 4,
    device: str = "auto",
    batch_size: int = 128,
    workers: int = -1,
    overwrite: bool = False,
    log=print,
) -> pd.DataFrame:
    """Write a submission for Test.csv's images (or a folder of images): calibrated probabilities,
    averaged over the folds of a cross-validated run. Streams: images are decoded batch by batch."""
    out = Path(out)
    refuse_overwrite(out, overwrite)
    members = load_members(run)
    TTA(tta, merge=tta_merge, views=tta_views, image_size=members[0].cfg.image_size)  # a bad --tta fails now
    table = read_unlabelled(data if data is not None else members[0].cfg.data)
    probs = predict_images(
        members,
        table,
        tta=tta,
        tta_merge=tta_merge,
        tta_views=tta_views,
        device=device,
        batch_size=batch_size,
        workers=workers,
    )
    frame = submission_frame(members[0].task, table[ID_COLUMN].tolist(), probs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, newline="") as f:  # a full disk or Ctrl-C leaves the earlier file, not half of one
        frame.to_csv(f, index=False, float_format="%.6f")
    ensemble = f", mean of {len(members)} fold models" if len(members) > 1 else ""
    log(f"wrote {out}: {len(frame)} images x {frame.shape[1] - 1} probability column(s){ensemble}")
    return frame
