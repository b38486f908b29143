"""The command line as a user meets it: one-line errors with exit code 2, and a whole run."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from signvision.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(capsys, argv, pattern):
    with pytest.raises(SystemExit) as exc:  # argparse errors exit
        main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pattern in err, err


TRAIN = [
    "train",
    "--model",
    "lenet",
    "--lenet-width",
    "1",
    "--epochs",
    "2",
    "--image-size",
    "16",
    "--batch-size",
    "8",
    "--device",
    "cpu",
]


def test_end_to_end_train_predict_evaluate(tiny_zindi, tmp_path, capsys):
    code, out, err = run_cli(capsys, *TRAIN, "--data", tiny_zindi, "--out", tmp_path / "run")
    assert code == 0, err
    assert "best epoch" in out
    code, out, err = run_cli(
        capsys,
        "predict",
        "--run",
        tmp_path / "run",
        "--data",
        tiny_zindi,
        "--out",
        tmp_path / "sub.csv",
        "--device",
        "cpu",
    )
    assert code == 0, err
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert len(sub) == 6 and sub.shape[1] == 4
    code, out, err = run_cli(capsys, "evaluate", "--run", tmp_path / "run", "--tta", "hflip", "--device", "cpu")
    assert code == 0 and "gain" in out and "roc_auc" in out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--epochs", "0"], "--epochs 0: must be positive"),
        (["--target", "Nope"], "--target Nope: not a class"),
    ],
)
def test_bad_options_one_line(tiny_zindi, tmp_path, capsys, extra, message):
    args = [a for a in TRAIN if a not in ("--epochs", "2")] + ["--data", tiny_zindi, "--out", tmp_path / "run"] + extra
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_bad_data_one_line(tiny_zindi, tmp_path, capsys):
    (tiny_zindi / "Train.csv").rename(tiny_zindi / "Other.csv")
    code, _, err = run_cli(capsys, *TRAIN, "--data", tiny_zindi, "--out", tmp_path / "run")
    assert code == 2 and "Train.csv: file not found" in err and len(err.strip().splitlines()) == 1


def test_argparse_errors_are_one_line(capsys):
    assert_one_line_error(capsys, ["train", "--epochs", "x"], "invalid int value")
    assert_one_line_error(capsys, ["nonsense"], "invalid choice")


def test_out_with_run_refused(tiny_zindi, tmp_path, capsys):
    assert run_cli(capsys, *TRAIN, "--data", tiny_zindi, "--out", tmp_path / "run")[0] == 0
    before = (tmp_path / "run" / "metrics.csv").read_text()
    code, _, err = run_cli(capsys, *TRAIN, "--data", tiny_zindi, "--out", tmp_path / "run")
    assert code == 2 and "already holds a run" in err
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


def test_help_shows_an_example():
    for cmd in ("train", "evaluate", "predict", "demo"):
        out = subprocess.run(
            [sys.executable, "-m", "signvision", cmd, "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert "example:" in out and f"signvision {cmd}" in out
