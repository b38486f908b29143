"""Metrics: ROC AUC (the course's), log loss (the challenge's) and accuracy, from scikit-learn.

Conventions used everywhere in signvision:
    y      integer labels, (N,): a class index, or 0/1 for a binary task
    probs  (N, K) class probabilities whose rows sum to 1, or (N,) P(positive) for a binary task

How logits become probabilities is the task's business (`Task.probs`), calibration's (`training/calibrate.py`)
after training.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from signvision.errors import DataError
from signvision.training.calibrate import expected_calibration_error

SCORES = ("roc_auc", "log_loss", "accuracy", "ece")  # the figures tables of runs show, in this order


def compute_metrics(y: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """ROC AUC (binary, or macro one-vs-rest plus one per class), log loss, accuracy and calibration error.

    Args:
        y: integer labels (N,).   probs: (N, K) rows summing to 1, or (N,) P(positive).
        class_names: the columns of `probs` (or [negative, positive] for a binary task).

    Returns:
        {"roc_auc", "log_loss", "accuracy", "ece", "per_class_roc_auc", "n"}. A class absent from `y` has no
        defined AUC: it is left out of the macro mean and reported as None.

    Example:
        >>> compute_metrics(np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]), ["a", "b"])["accuracy"]
        1.0
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
    aucs = one_vs_rest_auc(y, probs)
    per_class = {name: (None if np.isnan(a) else float(a)) for name, a in zip(class_names, aucs)}
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


def one_vs_rest_auc(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each class's ROC AUC against the rest (K,), NaN for a class absent from `y` or alone in it: the
    Mann-Whitney statistic of its column's ranks (ties counted half), the value `roc_auc_score` gives, computed
    for every class at once (thousands of classes take a moment, not minutes)."""
    from scipy.stats import rankdata

    ranks = rankdata(probs, axis=0)  # (N, K), average ranks for ties
    positive = y[:, None] == np.arange(probs.shape[1])[None, :]  # (N, K)
    n_pos = positive.sum(0)
    n_neg = len(y) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * positive).sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def per_image_figures(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each image is classified right, its log loss), as `compute_metrics` counts them."""
    y = np.asarray(y)
    probs = np.asarray(probs, dtype=np.float64)
    eps = 1e-7
    if probs.ndim == 1:
        p_true = np.where(y == 1, probs, 1 - probs)
        return (probs >= 0.5) == (y == 1), -np.log(np.clip(p_true, eps, 1 - eps))
    clipped = np.clip(probs, eps, 1)
    clipped = clipped / clipped.sum(1, keepdims=True)
    return probs.argmax(1) == y, -np.log(clipped[np.arange(len(y)), y])


def group_bootstrap(
    y: np.ndarray, probs: np.ndarray, groups, *, draws: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """95% intervals of accuracy and log loss from a bootstrap over groups, not images.

    Near copies and the frames of one clip are not independent evidence: 726 validation frames that are 60
    clips are 60 samples. Each draw takes as many groups as there are, with replacement (a cluster
    bootstrap), and pools their images.

    Args:
        y: labels (N,).   probs: (N, K) or (N,) probabilities.   groups: each image's group (N,).
        draws, seed, confidence: the bootstrap's size, stream and level.

    Returns:
        {"groups": how many, "accuracy": [low, high], "log_loss": [low, high]} (None below two groups).

    Example:
        >>> y, probs = np.array([0, 0, 1, 1]), np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
        >>> group_bootstrap(y, probs, ["a", "a", "b", "c"])["groups"]
        3
    """
    if not len(y) == len(probs) == len(groups):
        raise DataError(f"group_bootstrap: {len(y)} labels, {len(probs)} rows of probabilities, {len(groups)} groups")
    correct, loss = per_image_figures(y, probs)
    _, which = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups = int(which.max()) + 1 if len(which) else 0
    if n_groups < 2:
        return {"groups": n_groups, "accuracy": None, "log_loss": None}
    sums = np.stack([np.bincount(which, correct.astype(float), n_groups), np.bincount(which, loss, n_groups)])
    counts = np.bincount(which, minlength=n_groups).astype(float)
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, draws, 100):  # chunks keep memory at 100 x groups
        picks = rng.integers(0, n_groups, size=(min(100, draws - start), n_groups))
        stats.append(sums[:, picks].sum(2) / counts[picks].sum(1))  # (2, draws)
    stats = np.concatenate(stats, axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail], axis=1)
    return {
        "groups": n_groups,
        "accuracy": [float(low[0]), float(high[0])],
        "log_loss": [float(low[1]), float(high[1])],
    }


def paired_bootstrap(
    y: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, groups, *, draws: int = 1000, seed: int = 0
) -> dict:
    """How much A beats B on the same images: the mean difference A - B in log loss and accuracy, with 95%
    intervals from a bootstrap over groups (the same groups drawn for both: a paired comparison, so that
    the images' own difficulty cancels out). A log loss interval below zero: A is better beyond noise.

    Example:
        >>> y = np.array([0, 1, 1, 0])
        >>> a, b = np.array([0.1, 0.9, 0.8, 0.2]), np.array([0.4, 0.6, 0.5, 0.5])
        >>> paired_bootstrap(y, a, b, ["g1", "g2", "g3", "g4"])["log_loss"] < 0
        True
    """
    correct_a, loss_a = per_image_figures(y, probs_a)
    correct_b, loss_b = per_image_figures(y, probs_b)
    diff = np.stack([correct_a.astype(float) - correct_b, loss_a - loss_b])  # (2, N)
    _, which = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups = int(which.max()) + 1 if len(which) else 0
    result = {"groups": n_groups, "accuracy": float(diff[0].mean()), "log_loss": float(diff[1].mean())}
    if n_groups < 2:
        return {**result, "accuracy_ci": None, "log_loss_ci": None}
    sums = np.stack([np.bincount(which, d, n_groups) for d in diff])
    counts = np.bincount(which, minlength=n_groups).astype(float)
    rng, stats = np.random.default_rng(seed), []
    for start in range(0, draws, 100):  # chunks keep memory at 100 x groups
        picks = rng.integers(0, n_groups, size=(min(100, draws - start), n_groups))
        stats.append(sums[:, picks].sum(2) / counts[picks].sum(1))
    stats = np.concatenate(stats, axis=1)  # (2, draws)
    low, high = np.percentile(stats, [2.5, 97.5], axis=1)
    return {
        **result,
        "accuracy_ci": [float(low[0]), float(high[0])],
        "log_loss_ci": [float(low[1]), float(high[1])],
    }
