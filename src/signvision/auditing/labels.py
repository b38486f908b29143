"""The audit's likely mislabels: out-of-fold probabilities (k folds, copies and video frames kept in one fold)
given to cleanlab. The suggested label is the model's; the score is 1 - cleanlab's self-confidence label
quality (higher is more suspect).

Two models give the probabilities (`AuditConfig.label_model`):
    lenet      a LeNet trained from scratch in each fold by the engine (the default).
    features   a logistic regression on EfficientNet-Lite0's ImageNet features (models/features.py): one
               forward pass per image, then k small fits, as cleanlab's guidance suggests (pretrained
               embeddings). About twice as fast on 6,000 frames, but measured less often right than LeNet
               on hand signs (docs/audit.md: 0.88 against 0.96 of 5,700 frames; 0.85 against 0.92 on the
               planted benchmark, with more false suspects), so it is an option, not the default.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from signvision.config import AuditConfig
from signvision.errors import DataError
from signvision.logs import silenced
from signvision.progress import progress_bar


def check_classes(y: np.ndarray, classes: list[str]) -> None:
    """Every class needs 2 images or more for the folds."""
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        raise DataError(
            f"class {classes[int(counts.argmin())]!r} has {counts.min()} image(s); the mislabel search cross-validates "
            "and needs 2 or more of each (or `skip_label_issues`)"
        )


def fold_splits(y: np.ndarray, groups: np.ndarray, cfg: AuditConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) indices of the k folds: stratified by label, each group (copies, a clip) in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = min(cfg.folds, int(np.bincount(y).min()))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=cfg.seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


FEATURE_C = 0.01  # the logistic regression's inverse L2 strength on standardised features


def feature_probs(
    images: np.ndarray, y: np.ndarray, groups: np.ndarray, classes: list[str], cfg: AuditConfig, progress: bool = True
) -> np.ndarray:
    """Probabilities for each image from a logistic regression on ImageNet features that never saw it (k-fold).
    (N, K) float32."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from signvision.models.features import image_features
    from signvision.training.runtime import pick_device

    check_classes(y, classes)
    features = image_features(images, device=pick_device(cfg.device), progress=progress)  # (N, 1280)
    oof = np.zeros((len(y), len(classes)), np.float32)
    for train, held_out in fold_splits(y, groups, cfg):
        fit = make_pipeline(StandardScaler(), LogisticRegression(C=FEATURE_C, max_iter=2000))
        fit.fit(features[train], y[train])
        oof[np.ix_(held_out, fit.classes_)] = fit.predict_proba(features[held_out])  # a class absent: stays 0
    return oof


def lenet_probs(
    images: np.ndarray, y: np.ndarray, groups: np.ndarray, classes: list[str], cfg: AuditConfig, progress: bool = True
) -> np.ndarray:
    """Probabilities for each image from a LeNet that never saw it (k-fold; copies stay in one fold), each
    fold's model trained by the engine like any run (softmax cross-entropy: it learns faster than BCE)."""
    import torch

    from signvision.config import TrainConfig
    from signvision.data.dataset import ImageDataset, make_loader
    from signvision.models.factory import build_model, model_norm
    from signvision.models.task import Task
    from signvision.training.loop import predict_batches
    from signvision.training.runtime import Runtime, pick_device
    from signvision.training.trainer import Recorder, TrainingState, own_random_state, train_epochs

    check_classes(y, classes)
    device = pick_device(cfg.device)
    task = Task([str(c) for c in range(len(classes))], loss="ce", label_smoothing=0.0)
    size, splits = images.shape[1], fold_splits(y, groups, cfg)
    epochs = cfg.epochs or auto_epochs(len(y), len(np.unique(groups)))
    oof = np.zeros((len(y), len(classes)), np.float32)
    bar = progress_bar(total=len(splits) * epochs, desc="mislabel model (k-fold)", unit="epoch", show=progress)
    with own_random_state():
        for fold, (tr, va) in enumerate(splits):
            settings = TrainConfig(
                model="lenet", loss="ce", epochs=epochs, lr=LENET_LR, batch_size=LENET_BATCH, seed=cfg.seed * 100 + fold
            )
            torch.manual_seed(settings.seed)
            model = build_model("lenet", task.num_outputs, image_size=size).to(device)
            runtime = Runtime.create(device, *model_norm(model))
            # the images come from the array; no file is read, so the paths stay empty
            train = ImageDataset([""] * len(tr), size, targets=y[tr], images=images[tr])
            loader = make_loader(train, batch_size=LENET_BATCH, shuffle=True)
            state = TrainingState.create(model, settings, task.classes, model_norm(model), len(loader), device)
            with silenced():  # the bar counts the epochs: no line per epoch
                ticks = Recorder(on_epoch=lambda _: bar.update(1))
                status = train_epochs(state, loader, None, runtime, task, recorder=ticks)
            if status != "finished":
                raise KeyboardInterrupt
            val = ImageDataset([""] * len(va), size, targets=y[va], images=images[va])
            probs = predict_batches(model, make_loader(val, batch_size=256), runtime, task).probs
            oof[va] = probs if probs.ndim == 2 else np.stack([1 - probs, probs], 1)  # two classes: one output
    bar.close()
    return oof


LENET_BATCH, LENET_LR = 64, 3e-3  # the mislabel LeNet's batch and peak learning rate (batches of 128 and 256
# were no faster per image on 2 cores, and found fewer flips: docs/audit.md)


def auto_epochs(n_images: int, n_distinct: int | None = None) -> int:
    """The mislabel LeNet's epochs per fold: 12 passes over the distinct pictures, counting each clip of video
    frames or group of near copies once (6 frames of one clip teach it little more than one: on 5,700 frames
    of 1,319 clips 3 epochs find what 12 do, in a quarter of the time; on 6,000 distinct Fashion-MNIST images
    5 epochs find fewer flips than 12: docs/audit.md), at least 3; and for large sets about 200,000
    image-steps per fold at most (at least 2)."""
    n = max(n_images, 1)
    by_content = max(3, math.ceil(12 * (n_distinct or n) / n))
    return int(max(2, min(12, by_content, round(200_000 / n))))


def find_mislabels(images, y, groups, classes, cfg: AuditConfig, progress=True) -> pd.DataFrame:
    """suggested label, score (higher = more suspect) and is_issue for each image, via cleanlab."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    fit = feature_probs if cfg.label_model == "features" else lenet_probs
    probs = fit(images, y, groups, classes, cfg, progress)
    is_issue = find_label_issues(labels=y, pred_probs=probs)
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    return pd.DataFrame(
        {
            "suggested": [classes[k] for k in probs.argmax(1)],
            "score": 1 - quality,
            "is_issue": is_issue,
            "given_prob": probs[np.arange(len(y)), y],
        }
    )
