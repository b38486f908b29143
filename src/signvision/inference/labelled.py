"""A run scored on labelled images it never trained on (a test folder, class folders, a CSV): the members'
merged probabilities (with TTA if asked), 95% intervals over groups of near copies, and what the run's
training images say about these images (near copies, the memory baseline), kept with their page in
RUN/evaluations/<name>[-tta-<mode>]/. `sv.load_run(RUN).evaluate(data=DATA)` is the public call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signvision.errors import DataError
from signvision.inference.evaluate import table_scored_set
from signvision.inference.members import RunModel, input_size
from signvision.inference.predict import predict_images
from signvision.inference.results import data_name, output_folder
from signvision.logs import get_logger
from signvision.models.augment import TTA, as_tta
from signvision.reports.evaluation_page import describe_labelled, write_evaluation
from signvision.training.metrics import compute_metrics, group_bootstrap

logger = get_logger(__name__)


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


def leak_against_training(trained: pd.DataFrame | None, table: pd.DataFrame) -> dict:
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


def score_labelled(
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
        **leak_against_training(trained, labelled),
    }
    logger.info(describe_labelled(result))
    if folder is not None:
        scored = table_scored_set(members, labelled, y, probs, groups, device=device)
        page = write_evaluation(output_folder(folder, data_name(data), views), result, scored)
        logger.info(f"page: {page}")
    return result
