"""Calibration: one temperature fitted on held-out logits, and the figures that say whether it worked.

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks",
https://arxiv.org/abs/1706.04599): probabilities = softmax(logits / T) (sigmoid(logit / T) for one
output), with the single number T chosen to minimise the log loss on images the model did not train
on (the validation split, or the out-of-fold predictions of a cross-validated run). T never changes
which class is ranked first, so accuracy and ROC AUC stay the same; only the confidence moves.

The expected calibration error (ECE) bins images by the confidence of the top class and averages
|accuracy - confidence| over the bins, weighted by their size; a reliability diagram draws the bins.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from signvision.errors import DataError


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean negative log likelihood of the labels under softmax(logits / T) (or the sigmoid)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.shape[1] == 1:
        z = logits[:, 0] / temperature
        # -log sigmoid(z) for positives, -log sigmoid(-z) for negatives, computed stably
        return float(np.mean(np.logaddexp(0, -z * np.where(y == 1, 1, -1))))
    return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T in [0.05, 20] that minimises the log loss of softmax(logits / T) (Guo et al., 2017).

    Args:
        logits: held-out logits (N, K), or (N, 1) for one output.   y: their labels (N,).

    Returns:
        T (a float); `models.probs.scaled_probs(logits, T)` gives the calibrated probabilities.

    Example:
        >>> round(fit_temperature(np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]]), np.array([0, 1, 1])), 2) > 1
        True
    """
    y = np.asarray(y, dtype=np.int64)
    if len(y) != len(logits):
        raise DataError(f"calibration: {len(logits)} rows of logits for {len(y)} labels")
    if len(np.unique(y)) < 2:
        raise DataError(
            f"calibration: the held-out images hold only one class ({len(y)} images); a temperature cannot be "
            "fitted; use a larger `val_fraction`"
        )
    result = minimize_scalar(
        lambda log_t: nll(logits, y, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def predicted(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class index, its probability) per image, from probabilities (N, K) or P(positive) (N,)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:  # binary: P(positive)
        pred = (probs >= 0.5).astype(int)
        return pred, np.where(pred == 1, probs, 1 - probs)
    return probs.argmax(1), probs.max(1)


def top_confidence(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted class, whether it is right) per image."""
    pred, confidence = predicted(probs)
    return confidence, pred == y


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> list[dict]:
    """Per confidence bin: its range, image count, mean confidence and accuracy (empty bins left out)."""
    confidence, correct = top_confidence(probs, y)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(inside.sum()),
                    "confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                }
            )
    return rows


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Sum over bins of (share of images) * |accuracy - mean confidence|; 0 is perfectly calibrated."""
    n = len(y)
    return float(sum(r["count"] / n * abs(r["accuracy"] - r["confidence"]) for r in reliability(probs, y, bins)))
