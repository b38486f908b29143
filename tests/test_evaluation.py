"""Scoring a run on labelled images it never trained on, as a new user does it from the README: the
split-folders layout's test/ folder, another folder of classes, a CSV; and the page it writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import assert_picture, tiny_args, write_images
from test_tables import split_folders

from signvision.cli.commands import main

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not

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


def test_memory_is_said_only_where_copies_carry_their_label(tiny_zindi, tmp_path, capsys):
    """A test set of copies of training images says "measures memory"; the same images under other labels are
    look-alikes (another capture of other hands looks alike at 16x16), and the line says so instead."""
    import shutil

    import signvision as sv

    assert main(["train", "--data", str(tiny_zindi), *TINY, "--out", str(tmp_path / "run")]) == 0
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    labels = pd.read_csv(tiny_zindi / "Train.csv").set_index("img_IDS")["Label"]
    trained = split.loc[split["fold"] == "train", "img_IDS"].head(12)
    classes = sorted(labels.unique())
    for name, relabel in (("copies", lambda c: c), ("lookalikes", lambda c: classes[(classes.index(c) + 1) % 3])):
        (tmp_path / name / "Images").mkdir(parents=True)
        for i in trained:
            shutil.copy(tiny_zindi / "Images" / f"{i}.jpg", tmp_path / name / "Images" / f"{i}.jpg")
        table = pd.DataFrame({"img_IDS": trained, "Label": [relabel(labels[i]) for i in trained]})
        table.to_csv(tmp_path / name / "test.csv", index=False)
    capsys.readouterr()
    run = sv.load_run(tmp_path / "run")
    copies = run.evaluate(data=tmp_path / "copies" / "test.csv")
    said = capsys.readouterr().out
    assert copies["near_copy_share"] == 1.0 and copies["copy_label_agreement"] == 1.0 and "measures memory" in said
    lookalikes = run.evaluate(data=tmp_path / "lookalikes" / "test.csv")
    said = capsys.readouterr().out
    assert lookalikes["copy_label_agreement"] == 0.0 and "look-alikes, not copies" in said
    assert "measures memory" not in said and "memory baseline" in said
