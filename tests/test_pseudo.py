"""Pseudo-labels: a run's confident guesses on unlabelled images, and a second round that trains on them but
never validates on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import CLASSES, tiny_args, tiny_config

import signvision as sv
from signvision.cli.commands import main
from signvision.errors import DataError, OptionError
from signvision.runs.crossval import fit_folds
from signvision.runs.run import fit


def first_round(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "first", epochs=4))
    return sv.load_run(tmp_path / "first")


def test_pseudo_labels_keep_the_confident_guesses(tiny_zindi, tmp_path):
    run = first_round(tiny_zindi, tmp_path)
    probs = run.predict(tiny_zindi, device="cpu").frame.set_index("img_IDS")[CLASSES]
    threshold = float(np.median(probs.max(axis=1)))  # about half of the six test images
    table = run.pseudo_labels(tiny_zindi, threshold=threshold, device="cpu")
    assert list(table.columns) == ["img_IDS", "path", "Label", "confidence"]
    assert table.attrs["images"] == 6 and 1 <= len(table) < 6
    assert (table["confidence"] >= threshold).all() and table["confidence"].is_monotonic_decreasing
    for _, row in table.iterrows():  # the run's own most probable class and its probability
        assert row["Label"] == probs.loc[row["img_IDS"]].idxmax()
        assert row["confidence"] == pytest.approx(probs.loc[row["img_IDS"]].max(), abs=1e-6)
    with pytest.raises(OptionError, match="threshold"):
        run.pseudo_labels(tiny_zindi, threshold=1.5)


def test_second_round_trains_on_pseudo_labels_and_never_validates_on_them(tiny_zindi, tmp_path, capsys):
    fit_folds(tiny_config(tiny_zindi, tmp_path / "first", folds=2, epochs=2))  # the README's first round: folds
    csv = tmp_path / "pseudo.csv"
    args = ["pseudo-label", "--run", str(tmp_path / "first"), "--data", str(tiny_zindi), "--out", str(csv)]
    assert main([*args, "--threshold", "0.2", "--device", "cpu"]) == 0
    assert "6 of 6 images" in capsys.readouterr().out  # three classes: every guess is above 0.2
    assert main([*args, "--threshold", "0.2"]) == 2  # the CSV is never replaced without --overwrite
    pseudo = pd.read_csv(csv)

    second = tmp_path / "second"
    fit_folds(tiny_config(tiny_zindi, second, folds=2, epochs=1, pseudo_labels=str(csv)))
    labelled = set(pd.read_csv(tiny_zindi / "Train.csv")["img_IDS"])
    assert set(pd.read_csv(second / "folds.csv")["img_IDS"]) == labelled  # the folds: labelled images only
    assert set(pd.read_csv(second / "oof.csv")["img_IDS"]) == labelled  # so are the out-of-fold figures
    for k in (1, 2):
        split = pd.read_csv(second / f"fold{k}" / "split.csv")
        added = split[split["img_IDS"].str.startswith("pseudo:")]
        assert sorted(added["img_IDS"]) == sorted("pseudo:" + pseudo["img_IDS"])
        assert set(added["fold"]) == {"train"}  # trained on by every fold, validated by none
    assert sv.load_run(second).predict(tiny_zindi, device="cpu").frame.shape == (6, 4)
    both = sv.ensemble([tmp_path / "first", second], out=tmp_path / "e", report=False)  # the same folds: taken
    assert both.predict(tiny_zindi, device="cpu").frame.shape == (6, 4)


def test_a_bad_pseudo_label_csv_is_refused_in_one_line(tiny_zindi, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    image = tiny_zindi / "Images" / "ImageID_0036.jpg"
    pd.DataFrame({"path": [str(image)], "Label": ["Giraffe"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad.csv: row 2: label 'Giraffe' is not a class"):
        fit(tiny_config(tiny_zindi, tmp_path / "r", pseudo_labels=str(bad)))
    pd.DataFrame({"path": ["gone.jpg"], "Label": [CLASSES[0]]}).to_csv(bad, index=False)
    out = tmp_path / "r2"
    assert main(["train", "--data", str(tiny_zindi), *tiny_args(), "--pseudo-labels", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.csv: row 2:" in err[0] and "gone.jpg: file not found" in err[0]
    assert not (out / "best.pt").exists()
    folds = tmp_path / "folds"  # k folds: refused before the job starts, so the fixed command can use the folder
    assert main(["train", "--data", str(tiny_zindi), *tiny_args(), "--folds", "2", "--pseudo-labels", str(bad),
                 "--out", str(folds)]) == 2  # fmt: skip
    assert not folds.exists()


def test_pseudo_labels_of_labelled_images_never_reach_training(tiny_zindi, tmp_path, caplog, monkeypatch):
    """G2 of the fourth adversarial round: a pseudo-label CSV naming the labelled images themselves (by path,
    by img_IDS, or a copy of the file elsewhere) trained on the validation images and the leak check said 0%."""
    import shutil

    train = pd.read_csv(tiny_zindi / "Train.csv")
    copies = tmp_path / "copies"
    copies.mkdir()
    rows = []
    for k, (img_id, label) in enumerate(zip(train["img_IDS"], train["Label"])):
        src = tiny_zindi / "Images" / f"{img_id}.jpg"
        if k % 3 == 0:
            rows.append({"img_IDS": f"other{k}", "path": str(src), "Label": label})  # the same file
        elif k % 3 == 1:
            rows.append({"img_IDS": img_id, "path": str(shutil.copy(src, copies / f"{k}.jpg")), "Label": label})
        else:
            rows.append({"img_IDS": f"copy{k}", "path": str(shutil.copy(src, copies / f"c{k}.jpg")), "Label": label})
    test_ids = pd.read_csv(tiny_zindi / "Test.csv")["img_IDS"]
    rows += [{"img_IDS": i, "path": str(tiny_zindi / "Images" / f"{i}.jpg"), "Label": CLASSES[0]} for i in test_ids]
    csv = tmp_path / "leak.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)

    run = fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=1, pseudo_labels=str(csv)))
    assert f"{len(train)} of the {len(rows)} rows of {csv} are labelled images" in caplog.text, caplog.text
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    added = split[split["img_IDS"].str.startswith("pseudo:")]
    assert sorted(added["img_IDS"]) == sorted("pseudo:" + test_ids)  # only the unlabelled test images stay
    leak = pd.read_json(tmp_path / "run" / "split.json", typ="series")["leak"]
    assert leak["val_near_copy_share"] == 0.0  # nothing of the validation side reached training
    assert run["status"] == "finished"

    # and had they reached training, the leak check would count them (it counted labelled rows only)
    import signvision.training.rundata as rundata

    monkeypatch.setattr(rundata, "without_labelled_images", lambda extra, labelled, cfg: extra)
    fit(tiny_config(tiny_zindi, tmp_path / "leaky", epochs=1, pseudo_labels=str(csv)))
    leak = pd.read_json(tmp_path / "leaky" / "split.json", typ="series")["leak"]
    assert leak["val_near_copy_share"] == 1.0  # every validation image is in the CSV: copied into training
