"""TensorBoard logs in every run folder: the same figures as metrics.csv, epoch by epoch (a resumed run too),
and the pictures at the end."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import QUIET, tiny_config

import signvision as sv

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not


def read_events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_a_run_s_tensorboard_log_holds_metrics_csv(tiny_zindi, tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    sv.train(config=tiny_config(tiny_zindi, run, epochs=2), log=QUIET["log"])
    sv.train(resume=run, epochs=3, log=QUIET["log"])  # a resumed run continues the same log
    metrics = pd.read_csv(run / "metrics.csv")
    events = read_events(run)
    for column, tag in (("val_log_loss", "val/log_loss"), ("train_loss", "train/loss"), ("lr", "lr")):
        assert column in metrics.columns, f"metrics.csv lost its {column} column"  # a rename fails here
        logged = {e.step: e.value for e in events.Scalars(tag)}
        assert sorted(logged) == metrics["epoch"].tolist(), tag  # each epoch once, none trained twice
        for epoch, value in zip(metrics["epoch"], metrics[column]):
            assert logged[epoch] == pytest.approx(value, rel=1e-6, abs=1e-7), (tag, epoch)
    assert {"val/roc_auc", "val/accuracy"} <= set(events.Tags()["scalars"])
    assert "train/augmented batch" in events.Tags()["images"]
    assert "val/confusion matrix" in events.Tags()["images"]
