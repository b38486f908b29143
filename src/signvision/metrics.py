"""Metrics: ROC AUC (the course's), log loss (the challenge's) and accuracy, from scikit-learn.

Conventions used everywhere in signvision:
    y      integer labels, (N,): a class index, or 0/1 for a binary task
    probs  (N, K) class probabilities whose rows sum to 1, or (N,) P(positive) for a binary task

How logits become probabilities is the task's business (`Task.probs`), calibration's (`calibrate.py`)
after training.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from signvision.calibrate import expected_calibration_error

SCORES = ("roc_auc", "log_loss", "accuracy", "ece")  # the figures tables of runs show, in this order


def compute_metrics(y: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """ROC AUC (binary, or macro one-vs-rest plus one per class), log loss, accuracy and calibration error.

    `class_names` are the columns of `probs` (or [negative, positive] for a binary task). A class
    absent from `y` has no defined AUC: it is left out of the macro mean and reported as None.
    """
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    eps = 1e-7
    if probs.ndim == 1:  # binary: P(positive)
        both = np.stack([1 - probs, probs], axis=1)
        auc = float(roc_auc_score(y, probs)) if len(np.unique(y)) == 2 else float("nan")
        return {
            "roc_auc": auc,
            "log_loss": float(log_loss(y, np.clip(both, eps, 1 - eps), labels=[0, 1])),
            "accuracy": float(accuracy_score(y, probs >= 0.5)),
            "ece": expected_calibration_error(probs, y),
            "per_class_roc_auc": {class_names[-1]: auc},
            "n": int(len(y)),
        }
    per_class: dict[str, float | None] = {}
    for k, name in enumerate(class_names):
        positives = y == k
        per_class[name] = float(roc_auc_score(positives, probs[:, k])) if 0 < positives.sum() < len(y) else None
    defined = [v for v in per_class.values() if v is not None]
    clipped = np.clip(probs, eps, 1)
    return {
        "roc_auc": float(np.mean(defined)) if defined else float("nan"),
        "log_loss": float(log_loss(y, clipped / clipped.sum(1, keepdims=True), labels=list(range(len(class_names))))),
        "accuracy": float(accuracy_score(y, probs.argmax(1))),
        "ece": expected_calibration_error(probs, y),
        "per_class_roc_auc": per_class,
        "n": int(len(y)),
    }
