"""The one vocabulary for probabilities: merge names and their resolver, the temperature, and the merge that
views, folds, ensembles, serve and the ONNX graph share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from signvision.errors import OptionError
from signvision.models.probs import MERGES, get_merge, merge_probs, scaled_probs


def test_merge_names_resolve_and_a_wrong_one_names_its_option():
    assert [get_merge(n) for n in ("mean", "arithmetic", "geometric", "gmean")] == [
        "mean",
        "mean",
        "geometric",
        "geometric",
    ]
    with pytest.raises(OptionError, match="tta_merge='median': expected one of mean, geometric"):
        get_merge("median", option="tta_merge")
    assert list(MERGES) == ["mean", "geometric"]


def test_the_temperature_is_one_function_for_numpy_torch_and_one_output():
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    p = scaled_probs(z, 2.0)
    np.testing.assert_allclose(p, np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True))
    np.testing.assert_allclose(scaled_probs(torch.tensor(z, dtype=torch.float32), 2.0).numpy(), p, atol=1e-6)
    one = scaled_probs(np.array([[1.0], [-2.0]]), 0.5)
    np.testing.assert_allclose(one, 1 / (1 + np.exp(-np.array([2.0, -4.0]))))
    assert scaled_probs(z, None).argmax(1).tolist() == p.argmax(1).tolist()  # T never changes the ranking


def test_merging_weights_means_and_a_temperature_on_top():
    a, b = np.array([[0.8, 0.2], [0.3, 0.7]]), np.array([[0.4, 0.6], [0.1, 0.9]])
    np.testing.assert_allclose(merge_probs([a, b], [3, 1]), 0.75 * a + 0.25 * b)
    g = merge_probs([a, b], merge="geometric")
    np.testing.assert_allclose(g, np.sqrt(a * b) / np.sqrt(a * b).sum(1, keepdims=True))
    hot = merge_probs([a, b], temperature=0.5)  # p^(1/T) renormalised: sharper
    mean = (a + b) / 2
    np.testing.assert_allclose(hot, mean**2 / (mean**2).sum(1, keepdims=True))
    binary = merge_probs([np.array([0.9, 0.2]), np.array([0.5, 0.4])])  # P(positive) in, P(positive) out
    np.testing.assert_allclose(binary, [0.7, 0.3])
    views = merge_probs([torch.tensor(a), torch.tensor(b)])  # torch in, torch out (TTA's views)
    assert isinstance(views, torch.Tensor) and torch.allclose(views, torch.tensor(mean))
