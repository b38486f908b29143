"""The audit's likely mislabels: out-of-fold probabilities of a small CNN trained through the engine (k folds,
copies and video frames kept in one fold), given to cleanlab. The suggested label is the model's; the
score is 1 - cleanlab's self-confidence label quality (higher is more suspect).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signvision.config import AuditConfig
from signvision.errors import DataError
from signvision.logs import silenced
from signvision.progress import progress_bar


def out_of_fold_probs(
    images: np.ndarray, y: np.ndarray, groups: np.ndarray, classes: list[str], cfg: AuditConfig, progress: bool = True
) -> np.ndarray:
    """Probabilities for each image from a LeNet that never saw it (k-fold; copies stay in one fold), each
    fold's model trained by the engine like any run (softmax cross-entropy: it learns faster than BCE)."""
    import torch
    from sklearn.model_selection import StratifiedGroupKFold

    from signvision.config import TrainConfig
    from signvision.data.dataset import ImageDataset, make_loader
    from signvision.models.factory import build_model, model_norm
    from signvision.models.task import Task
    from signvision.training.loop import predict_batches
    from signvision.training.runtime import Runtime, pick_device
    from signvision.training.trainer import Recorder, TrainingState, own_random_state, train_epochs

    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        raise DataError(
            f"class {classes[int(counts.argmin())]!r} has {counts.min()} image(s); the mislabel search cross-validates "
            "and needs 2 or more of each (or `skip_label_issues`)"
        )
    device = pick_device(cfg.device)
    task = Task([str(c) for c in range(len(classes))], loss="ce", label_smoothing=0.0)
    size, folds = images.shape[1], min(cfg.folds, int(counts.min()))
    epochs = cfg.epochs or auto_epochs(len(y))
    oof = np.zeros((len(y), len(classes)), np.float32)
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=cfg.seed)
    bar = progress_bar(total=folds * epochs, desc="mislabel model (k-fold)", unit="epoch", show=progress)
    with own_random_state():
        for fold, (tr, va) in enumerate(splitter.split(images, y, groups)):
            settings = TrainConfig(
                model="lenet", loss="ce", epochs=epochs, lr=3e-3, batch_size=64, seed=cfg.seed * 100 + fold
            )
            torch.manual_seed(settings.seed)
            model = build_model("lenet", task.num_outputs, image_size=size).to(device)
            runtime = Runtime.create(device, *model_norm(model))
            # the images come from the array; no file is read, so the paths stay empty
            loader = make_loader(
                ImageDataset([""] * len(tr), size, targets=y[tr], images=images[tr]), batch_size=64, shuffle=True
            )
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


def auto_epochs(n_images: int) -> int:
    """12 epochs for a few thousand images, fewer for more (about 200,000 image-steps per fold), at least 2."""
    return int(max(2, min(12, round(200_000 / max(n_images, 1)))))


def find_mislabels(images, y, groups, classes, cfg: AuditConfig, progress=True) -> pd.DataFrame:
    """suggested label, score (higher = more suspect) and is_issue for each image, via cleanlab."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = out_of_fold_probs(images, y, groups, classes, cfg, progress)
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
