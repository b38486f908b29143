"""The README's sign-digits figures, re-checked: LeNet from scratch (15 epochs) and resnet18 from scratch
(4 epochs at 96 px) on the CPU. Skipped where ../shared/data/sign-digits is absent."""

from __future__ import annotations

import json

from signvision.cli import main


def test_lenet_readme_command(sign_digits, tmp_path, capsys):
    run = tmp_path / "lenet"
    code = main(
        [
            "train",
            "--data",
            str(sign_digits),
            "--model",
            "lenet",
            "--epochs",
            "15",
            "--image-size",
            "64",
            "--batch-size",
            "64",
            "--lr",
            "0.002",
            "--val-fraction",
            "0.33",
            "--seed",
            "0",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_roc_auc"] >= 0.97 and summary["val_accuracy"] >= 0.85, summary
    assert main(["predict", "--run", str(run), "--data", str(sign_digits), "--out", str(tmp_path / "sub.csv")]) == 0
    header = (tmp_path / "sub.csv").read_text().splitlines()[0]
    sample = (sign_digits / "SampleSubmission.csv").read_text().splitlines()[0]
    assert sorted(header.split(",")) == sorted(sample.split(","))


def test_resnet18_readme_command(sign_digits, tmp_path):
    run = tmp_path / "r18"
    code = main(
        [
            "train",
            "--data",
            str(sign_digits),
            "--model",
            "resnet18",
            "--epochs",
            "4",
            "--image-size",
            "96",
            "--batch-size",
            "32",
            "--lr",
            "0.002",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_roc_auc"] >= 0.98 and summary["val_accuracy"] >= 0.90, summary
