"""The learning-rate finder: the suggestion on a known curve, and `sv.lr_find` / `signvision lr-find` on tiny
data (an exponential sweep, a picture, a CSV, nothing overwritten unasked)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import QUIET, assert_picture, tiny_config

import signvision as sv
from signvision.cli.commands import main
from signvision.training.lrfind import suggest


def test_the_suggestion_is_the_steepest_fall_before_the_minimum():
    lrs = np.logspace(-6, 0, 61)
    x = np.log10(lrs)
    loss = 2.0 - 1.5 / (1 + np.exp(-3 * (x + 3)))  # falls fastest at 1e-3
    loss[x > -1.5] += 10 * (x[x > -1.5] + 1.5) ** 2  # then blows up
    suggestion, minimum = suggest(lrs, loss)
    assert suggestion == pytest.approx(1e-3, rel=0.3)
    assert 1e-2 < minimum < 10**-1.4


@pytest.mark.slow
def test_lr_find_in_python_and_on_the_command_line(tiny_zindi, tmp_path, capsys):
    found = sv.lr_find(config=tiny_config(tiny_zindi, None), steps=30, end_lr=10.0, **QUIET)
    assert len(found.lrs) <= 30 and np.all(np.diff(found.lrs) > 0) and found.lrs[0] == pytest.approx(1e-6)
    assert found.lrs[0] <= found.suggestion <= found.lrs[-1] and "suggested --lr" in found.describe()

    args = ["lr-find", "--data", str(tiny_zindi), "--model", "lenet", "--image-size", "16", "--steps", "20"]
    assert main([*args, "--out", str(tmp_path / "lr")]) == 0
    assert "suggested --lr" in capsys.readouterr().out
    curve = pd.read_csv(tmp_path / "lr" / "lr_find.csv")
    assert list(curve.columns) == ["lr", "loss", "smoothed"] and len(curve) >= 10
    assert_picture(tmp_path / "lr" / "lr_find.png")
    assert main([*args, "--out", str(tmp_path / "lr")]) == 2  # the picture is not replaced unasked
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "lr2"), "--start-lr", "1", "--end-lr", "0.1"]) == 2
    assert "--start-lr" in capsys.readouterr().err


@pytest.mark.slow
def test_the_fourth_adversarial_round_bounds_files_and_interruptions(tiny_zindi, tmp_path, capsys):
    """G7-G10: rates must be finite, steps bounded, --out a folder; a sweep killed between its two files is
    finished by the same command, a finished one is kept unless --overwrite."""
    args = ["lr-find", "--data", str(tiny_zindi), "--model", "lenet", "--image-size", "16", "--workers", "0"]
    for bad, words in (
        (["--end-lr", "inf"], "--end-lr inf: must be a finite number"),
        (["--start-lr", "nan"], "--start-lr nan: must be a finite number"),
        (["--steps", "100000000000"], "--steps 100000000000: from 10 to 10,000"),
    ):
        assert main([*args, *bad, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(sv.OptionError, match="end_lr=inf"):
        sv.lr_find(tiny_zindi, end_lr=float("inf"))
    notes = tmp_path / "notes.png"
    notes.write_text("mine")
    assert main([*args, "--steps", "20", "--out", str(notes)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err and notes.read_text() == "mine"

    out = tmp_path / "lr"
    assert main([*args, "--steps", "20", "--out", str(out)]) == 0
    picture = (out / "lr_find.png").read_bytes()
    (out / "lr_find.csv").unlink()  # killed after the picture, before the CSV that marks a finished sweep
    (out / "lr_find.png").write_bytes(picture[:100] + picture[100:])
    assert main([*args, "--steps", "20", "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "lr_find.csv").is_file()
    assert main([*args, "--steps", "20", "--out", str(out)]) == 2  # finished: kept unless --overwrite
    assert "a finished sweep" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "lr_find.png").write_bytes(picture.replace(b"signvision lr-find", b"somebody else's!!!"))
    assert main([*args, "--steps", "20", "--out", str(mine)]) == 2  # a picture lr-find did not write
    assert "did not write it" in capsys.readouterr().err
    assert b"somebody else's" in (mine / "lr_find.png").read_bytes()
