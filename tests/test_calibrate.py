"""Temperature scaling and calibration error, checked on data whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from signvision.errors import SignvisionError
from signvision.models.probs import scaled_probs
from signvision.training.calibrate import expected_calibration_error, fit_temperature, nll, reliability


def sample(temperature: float, n: int = 4000, k: int = 5, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / temperature): that T is the right answer."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, k))
    p = softmax(logits / temperature, axis=1)
    y = np.array([rng.choice(k, p=row) for row in p])
    return logits, y


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_fit_recovers_the_temperature(true_t):
    logits, y = sample(true_t)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(true_t, rel=0.1)
    assert nll(logits, y, t) < nll(logits, y, 1.0)
    calibrated = scaled_probs(logits, t)
    assert expected_calibration_error(calibrated, y) < expected_calibration_error(scaled_probs(logits, 1.0), y)
    assert expected_calibration_error(calibrated, y) < 0.03


def test_binary_temperature_and_sigmoid():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=4, size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-z / 3.0))).astype(int)
    t = fit_temperature(z[:, None], y)
    assert t == pytest.approx(3.0, rel=0.15)
    assert scaled_probs(z[:, None], t).shape == (3000,)


def test_reliability_bins_and_perfect_calibration():
    probs = np.array([[0.9, 0.1]] * 10 + [[0.6, 0.4]] * 10)
    y = np.array([0] * 9 + [1] + [0] * 6 + [1] * 4)  # 90% right at 0.9, 60% right at 0.6
    bins = reliability(probs, y, bins=10)
    assert [b["count"] for b in bins] == [10, 10]
    assert expected_calibration_error(probs, y, bins=10) == pytest.approx(0.0, abs=1e-9)


def test_one_class_cannot_be_calibrated():
    with pytest.raises(SignvisionError, match="only one class"):
        fit_temperature(np.zeros((5, 3)), np.zeros(5, dtype=int))
