"""The command line as a user meets it: one-line errors with exit code 2, and a whole run."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from helpers import assert_picture, tiny_args

from signvision.cli.commands import main


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


TRAIN = ["train", *tiny_args()]


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_cli_module_imports_nothing_heavy():
    """`signvision --help` and every argument error answer at once: the CLI module imports no torch,
    timm, pandas, scipy or matplotlib (each sub-command imports them when it runs)."""
    code = (
        "import sys, signvision.cli.commands; "
        "heavy = [m for m in ('torch', 'timm', 'pandas', 'scipy', 'matplotlib', 'cv2') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"signvision.cli.commands imports {out}"


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    code, out, err = run_cli(capsys, "demo", "--workdir", tmp_path / "demo", "--epochs", "2", "--device", "cpu")
    assert code == 0, err
    assert "scored against the withheld labels" in out
    run = tmp_path / "demo" / "runs" / "lenet-digits-1"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["val_roc_auc"] > 0.9  # 2 epochs on digits already learn
    sub = pd.read_csv(run / "submission.csv")
    withheld = pd.read_csv(tmp_path / "demo" / "data-digits" / "TestLabels.csv")
    assert sorted(sub["img_IDS"]) == sorted(withheld["img_IDS"])
    code, _, _ = run_cli(capsys, "demo", "--workdir", tmp_path / "demo", "--epochs", "1", "--device", "cpu")
    assert code == 0 and (tmp_path / "demo" / "runs" / "lenet-digits-2").is_dir()  # a new run, the first kept


def test_show_augment_draws_the_grid(tiny_zindi, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, _, err = run_cli(
        capsys,
        "show-augment",
        "--data",
        tiny_zindi,
        "--augment",
        "heavy",
        "--out",
        out,
        "--rows",
        "2",
        "--cols",
        "4",
        "--image-size",
        "32",
    )
    assert code == 0, err
    img = assert_picture(out)
    assert img.shape[1] > img.shape[0]  # 4 columns, 2 rows
    code, _, err = run_cli(capsys, "show-augment", "--data", tiny_zindi, "--out", out)
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize("command", ["serve", "export", "predict", "evaluate"])
def test_a_wrong_run_is_refused_before_pytorch_loads(command, tmp_path):
    """A mistyped --run is one line at once: the run folder is checked before PyTorch (and the web or ONNX
    packages) are imported, which took 9 s for `serve`."""
    import subprocess
    import sys

    extra = ["--out", str(tmp_path / "s.csv")] if command == "predict" else []
    code = (
        "import sys; from signvision.cli.commands import main; "
        f"rc = main([{command!r}, '--run', {str(tmp_path / 'nowhere')!r}, *{extra!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert "folder not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_parser_makes_only_the_options_of_the_command_given():
    """`signvision --help` lists every command without making their options; `signvision train ...` makes train's
    alone (building all nineteen commands' flags was most of `--help`'s time after the imports)."""
    from signvision.cli.commands import HANDLERS
    from signvision.cli.parser import build_parser

    def options(parser, name):
        sub = next(a for a in parser._actions if a.dest == "command").choices[name]
        return {flag for a in sub._actions for flag in a.option_strings}

    every = build_parser(HANDLERS)
    assert "--epochs" in options(every, "train") and "--run" in options(every, "predict")
    train = build_parser(HANDLERS, commands=["train"])
    assert "--epochs" in options(train, "train") and "--run" not in options(train, "predict")
    listed = build_parser(HANDLERS, commands=[])
    assert options(listed, "train") == {"-h", "--help", "--debug"} and set(HANDLERS) <= set(
        next(a for a in listed._actions if a.dest == "command").choices
    )
