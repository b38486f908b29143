"""--folds K: K fold runs, out-of-fold predictions, one temperature, the fold ensemble, resuming."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import QUIET, submission, tiny_config

import signvision.runs.run as train_module
from signvision.cli.commands import main
from signvision.inference.evaluate import evaluate_run
from signvision.inference.report import report_run as write_report
from signvision.logs import log_to
from signvision.reports.compare import compare_runs
from signvision.runs.crossval import fit_folds


@pytest.mark.slow
def test_three_folds_oof_ensemble_and_resume(tiny_zindi, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_zindi, tmp_path / "cv", folds=3, epochs=1)
    real_fit = train_module.fit
    calls = []

    def interrupt_second_fold(c, resume=False, **kw):
        calls.append(c.out)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(c, resume=resume, **kw)

    monkeypatch.setattr(train_module, "fit", interrupt_second_fold)
    with pytest.raises(KeyboardInterrupt):
        fit_folds(cfg)
    monkeypatch.setattr(
        train_module,
        "fit",
        lambda c, resume=False, **kw: calls.append(c.out) or real_fit(c, resume=resume, **kw),
    )
    calls.clear()
    summary = fit_folds(tiny_config(tiny_zindi, tmp_path / "cv", folds=3, epochs=1))  # the same command again
    assert [c.split("/")[-1] for c in calls] == ["fold2", "fold3"]  # fold 1 was kept

    cv = tmp_path / "cv"
    train_ids = pd.read_csv(tiny_zindi / "Train.csv")["img_IDS"]
    oof = pd.read_csv(cv / "oof.csv")
    assert sorted(oof["img_IDS"]) == sorted(train_ids)  # every training image exactly once
    assert set(oof["fold"]) == {1, 2, 3}
    folds = pd.read_csv(cv / "folds.csv").set_index("img_IDS")["fold"]
    for k in (1, 2, 3):  # fold k's model never trained on the images it scored
        split = pd.read_csv(cv / f"fold{k}" / "split.csv").set_index("img_IDS")["fold"]
        assert set(split[split == "val"].index) == set(folds[folds == k].index)
    assert np.allclose(oof[["Enough/Satisfied", "Me voy", "Ñandú"]].sum(axis=1), 1, atol=1e-4)
    assert summary["temperature"] > 0 and {"val_roc_auc", "val_log_loss"} <= set(summary["fold_mean"])
    assert summary["oof_images"] == len(train_ids)

    evaluation = evaluate_run(cv, device="cpu")
    assert evaluation["images"] == len(train_ids)
    assert evaluation["without_tta"]["log_loss"] == pytest.approx(summary["val_log_loss"], abs=1e-5)

    sub = submission(cv, tiny_zindi, tmp_path / "sub.csv", device="cpu", workers=0, **QUIET)
    singles = []
    for k in (1, 2, 3):  # the ensemble is the mean of the folds, each with the CV temperature
        path = tmp_path / f"f{k}.csv"
        best = cv / f"fold{k}" / "best.pt"
        import torch

        ckpt = torch.load(best, weights_only=True)
        ckpt["temperature"] = summary["temperature"]
        torch.save(ckpt, best)
        singles.append(submission(cv / f"fold{k}", tiny_zindi, path, device="cpu", workers=0, **QUIET).iloc[:, 1:])
    assert np.allclose(sub.iloc[:, 1:].to_numpy(), sum(s.to_numpy() for s in singles) / 3, atol=1e-5)

    page = write_report(cv, device="cpu").read_text()
    assert "out-of-fold" in page and "Per fold" in page
    table = compare_runs([cv, cv / "fold1"])
    assert table["val_roc_auc"].notna().all()


def test_folds_refuse_other_settings_in_the_same_folder(tiny_zindi, tmp_path):
    fit_folds(tiny_config(tiny_zindi, tmp_path / "cv", folds=2, epochs=1))
    code = main(["train", "--data", str(tiny_zindi), "--folds", "2", "--epochs", "2", "--out", str(tmp_path / "cv")])
    assert code == 2
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["config"]["epochs"] == 1


def test_each_fold_s_intervals_are_over_its_groups(tmp_path):
    import json

    from test_nearcopies import write_clips

    data = write_clips(tmp_path / "clips", clips_per_class=4, frames=6, stills=2, size=48)
    fit_folds(tiny_config(data, tmp_path / "cv", folds=2, epochs=1, split_by="near-copies"))
    split = pd.read_csv(tmp_path / "cv" / "splits" / "fold1.csv", dtype=str, keep_default_na=False)
    assert (split["group"] != "").sum() >= 60  # the clips' frames keep their groups in the fold's split
    fold = json.loads((tmp_path / "cv" / "fold1" / "summary.json").read_text())
    assert fold["val_groups"] < fold["val_images"]  # a bootstrap over clips, not frames


def test_a_class_that_is_one_clip_trains_in_every_fold(tmp_path):
    """Video frames: a class filmed as one clip cannot be on both sides of a fold. It is trained on by every
    fold and validated by none (fold 0), and the run says so in words, instead of stopping at a fold's split."""
    from test_nearcopies import CLASSES as CLIP_CLASSES
    from test_nearcopies import write_clips

    data = write_clips(tmp_path / "clips", clips_per_class=3, frames=6, stills=2, size=48)
    lone = CLIP_CLASSES[0]
    for f in (data / lone).iterdir():
        if not f.name.startswith("c0_"):
            f.unlink()  # the class is one clip of 6 frames
    said = []
    with log_to(said.append):  # the lines a user sees, through the "signvision" logger
        fit_folds(tiny_config(data, tmp_path / "cv", folds=2, epochs=1, split_by="near-copies"))
    folds = pd.read_csv(tmp_path / "cv" / "folds.csv", dtype=str, keep_default_na=False)
    assert (folds.loc[folds["Label"] == lone, "fold"] == "0").all()
    assert set(folds.loc[folds["Label"] != lone, "fold"]) == {"1", "2"}
    oof = pd.read_csv(tmp_path / "cv" / "oof.csv", dtype={"Label": str})
    assert lone not in set(oof["Label"]) and len(oof) == (folds["fold"] != "0").sum()
    assert any(repr(lone) in line and "every fold's training images" in line for line in said)


@pytest.mark.slow
def test_a_folds_job_decodes_each_image_once(tiny_zindi, tmp_path, monkeypatch):
    """Every fold trains and is scored out of fold on the images decoded once for the job (the memory cache),
    and an evaluation in the same process decodes nothing again."""
    import signvision.data.cache as cache

    cache._decoded.clear()
    decoded = []
    load_resized = cache.load_resized
    monkeypatch.setattr(cache, "load_resized", lambda path, size: decoded.append(path) or load_resized(path, size))
    fit_folds(tiny_config(tiny_zindi, tmp_path / "cv", folds=3, epochs=1))
    train_ids = pd.read_csv(tiny_zindi / "Train.csv")["img_IDS"]
    assert sorted(decoded) == sorted(str(tiny_zindi / "Images" / f"{i}.jpg") for i in train_ids)
    decoded.clear()
    evaluate_run(tmp_path / "cv", device="cpu")
    assert decoded == []
