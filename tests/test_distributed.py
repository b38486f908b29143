"""Two CPU processes under torchrun (gloo): the run's validation metrics equal a single-process
evaluation of the same checkpoint, so every validation image was counted exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import make_zindi

from signvision.inference.evaluate import evaluate_run

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not


def test_two_processes_match_single_process_evaluation(tmp_path):
    data = make_zindi(tmp_path / "z", n_per_class=11)  # 33 images: a validation set of odd size
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "signvision",
        "train",
        "--data",
        str(data),
        "--model",
        "lenet",
        "--lenet-width",
        "1",
        "--epochs",
        "2",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--out",
        str(run),
    ]
    env = {**os.environ, "SIGNVISION_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("best epoch") == 1  # only rank 0 reports
    summary = json.loads((run / "summary.json").read_text())
    single = evaluate_run(run, device="cpu")["without_tta"]
    assert single["roc_auc"] == pytest.approx(summary["val_roc_auc"], abs=1e-6)
    assert single["log_loss"] == pytest.approx(summary["val_log_loss"], abs=1e-6)
    assert single["accuracy"] == pytest.approx(summary["val_accuracy"], abs=1e-9)
    n_val = (run / "split.csv").read_text().count(",val")
    assert json.loads((run / "evaluations" / "run-validation" / "evaluation.json").read_text())["images"] == n_val
    # resume under torchrun: two more epochs continue the same run
    resume = cmd[: cmd.index("train") + 1] + ["--resume", str(run), "--epochs", "4"]
    result = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["epochs"] == 4
    assert (run / "metrics.csv").read_text().count("\n") == 5  # header + 4 epochs, none repeated
