"""Scoring a run on labelled images it never trained on, as a new user does it from the README: the
split-folders layout's test/ folder, another folder of classes, a CSV; and the page it writes."""

from __future__ import annotations

import json

import pandas as pd
from helpers import assert_picture, tiny_args, write_images
from test_tables import split_folders

from signvision.cli.commands import main

TINY = tiny_args()


def test_train_on_split_folders_then_score_the_test_folder(tmp_path, capsys):
    data = split_folders(tmp_path / "sf")
    assert main(["train", "--data", str(data), *TINY, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "split folders layout" in out
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert split.loc[split["fold"] == "val", "img_IDS"].str.startswith("valid/").all()  # the given validation set
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "4 labelled images" in out and "accuracy" in out
    folder = tmp_path / "run" / "evaluations" / "sf"
    result = json.loads((folder / "evaluation.json").read_text())
    assert result["images"] == 4 and 0 <= result["accuracy"] <= 1 and result["log_loss"] > 0
    assert set(result["per_class_roc_auc"]) == {"dog"}  # two classes: one output, P(dog)
    page = (folder / "evaluation.html").read_text()
    for words in ("Per class", "confusion", "reliability", "log_loss"):
        assert words in page
    assert_picture(folder / "confusion.png")
    # the run's own validation images are still what `evaluate` scores without --data
    assert main(["evaluate", "--run", str(tmp_path / "run")]) == 0
    assert "validation images: 6" in capsys.readouterr().out


def test_score_a_folder_of_classes_and_a_csv(tmp_path, capsys):
    data = split_folders(tmp_path / "sf")
    assert main(["train", "--data", str(data), *TINY, "--out", str(tmp_path / "run")]) == 0
    other = tmp_path / "other"
    for c in ("cat", "dog"):
        write_images(other / c, [c] * 3, ["cat", "dog"], seed=11)
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--data", str(other)]) == 0
    assert json.loads((tmp_path / "run" / "evaluations" / "other" / "evaluation.json").read_text())["images"] == 6
    ids = write_images(tmp_path / "csvdata" / "Images", ["cat", "dog", "cat"], ["cat", "dog"], seed=12)
    pd.DataFrame({"img_IDS": ids, "Label": ["cat", "dog", "cat"]}).to_csv(
        tmp_path / "csvdata" / "test.csv", index=False
    )
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--data", str(tmp_path / "csvdata" / "test.csv")]) == 0
    assert "3 labelled images" in capsys.readouterr().out
