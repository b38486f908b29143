"""Metrics checked against scikit-learn computed independently; the loss with soft targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from signvision.models.task import Task
from signvision.training.metrics import compute_metrics


def test_multiclass_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = torch.tensor(rng.normal(size=(200, 4)) + 2 * np.eye(4)[y])
    probs = Task(list("abcd")).probs(logits).numpy()
    assert np.allclose(probs.sum(1), 1)
    m = compute_metrics(y, probs, list("abcd"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, probs))
    assert m["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert m["per_class_roc_auc"]["c"] == pytest.approx(roc_auc_score(y == 2, probs[:, 2]))


def test_binary_against_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    p = Task(["rest", "five"]).probs(torch.tensor(rng.normal(size=(100, 1)) + y[:, None])).numpy()
    assert p.shape == (100,)
    m = compute_metrics(y, p, ["rest", "five"])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, np.stack([1 - p, p], 1)))
    assert m["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))


def test_class_missing_from_labels_is_left_out_of_macro_auc():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    m = compute_metrics(y, probs, ["a", "b", "c"])
    assert m["per_class_roc_auc"]["c"] is None and m["roc_auc"] == pytest.approx(1.0)


def test_task_targets_and_bce_with_soft_targets():
    multi = Task(["a", "b", "c"])
    assert multi.num_outputs == 3 and not multi.binary
    assert multi.encode(["c", "a"]).tolist() == [2, 0]
    binary = Task(["a", "b", "c"], target="b")
    assert binary.num_outputs == 1 and binary.encode(["c", "b"]).tolist() == [0, 1]
    assert Task(["no", "yes"]).num_outputs == 1 and Task(["no", "yes"]).positive == "yes"
    # BCEWithLogits with a soft target equals the hand-written formula
    logits = torch.tensor([[0.3, -1.0, 2.0]])
    soft = 0.7 * multi.one_hot(torch.tensor([0])) + 0.3 * multi.one_hot(torch.tensor([2]))
    assert torch.allclose(soft.sum(1), torch.tensor([1.0]))
    p = torch.sigmoid(logits)
    expected = -(soft * p.log() + (1 - soft) * (1 - p).log()).mean()
    assert torch.nn.functional.binary_cross_entropy_with_logits(logits, soft) == pytest.approx(expected.item())


def test_unknown_target_class():
    from signvision.errors import SignvisionError

    with pytest.raises(SignvisionError, match="target='six': not a class"):
        Task(["five", "four"], target="six")


def test_bootstrap_over_groups_counts_clips_not_frames():
    from signvision.training.metrics import group_bootstrap

    rng = np.random.default_rng(0)
    right = rng.random(60) < 0.7  # 60 clips, each right or wrong as a whole
    y = np.zeros(600, int)
    probs = np.where(np.repeat(right, 10)[:, None], [[0.9, 0.1]], [[0.2, 0.8]])  # 10 frames a clip
    by_clip = group_bootstrap(y, probs, np.repeat(np.arange(60), 10), seed=0)
    by_frame = group_bootstrap(y, probs, np.arange(600), seed=0)
    width = lambda r: r["accuracy"][1] - r["accuracy"][0]  # noqa: E731
    assert by_clip["groups"] == 60 and by_frame["groups"] == 600
    assert width(by_clip) > 2.5 * width(by_frame)  # 60 samples, not 600
    assert by_clip["accuracy"][0] < right.mean() < by_clip["accuracy"][1]
    assert by_clip == group_bootstrap(y, probs, np.repeat(np.arange(60), 10), seed=0)  # seeded
    assert group_bootstrap(y[:3], probs[:3], ["g", "g", "g"])["accuracy"] is None  # one group: no interval
