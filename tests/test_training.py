"""Training end to end on tiny data: the run folder, resume after an interruption, checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import make_zindi, submission, tiny_config

import signvision.training.trainer as engine_module
from signvision.cli.commands import main
from signvision.config import TrainConfig
from signvision.errors import SignvisionError
from signvision.inference.evaluate import evaluate_run
from signvision.runs.run import fit
from signvision.training.checkpoint import load_checkpoint


def test_run_folder_contents(tiny_zindi, tmp_path):
    summary = fit(tiny_config(tiny_zindi, tmp_path / "run"))
    run = tmp_path / "run"
    for name in ("config.json", "split.csv", "metrics.csv", "best.pt", "last.pt", "summary.json"):
        assert (run / name).is_file(), name
    assert {"val_roc_auc", "val_log_loss", "val_accuracy", "classes", "epochs", "train_seconds"} <= set(summary)
    assert summary["epochs"] == 2 and len(pd.read_csv(run / "metrics.csv")) == 2
    assert json.loads((run / "config.json").read_text())["image_size"] == 16
    split = pd.read_csv(run / "split.csv")
    assert list(split.columns) == ["img_IDS", "fold", "group"] and set(split["fold"]) == {"train", "val"}
    ckpt = torch.load(run / "best.pt", weights_only=True)  # a plain dict, loadable without pickle code
    assert ckpt["classes"] == summary["classes"]


def test_out_folder_with_a_run_is_not_overwritten(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=1))
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(SignvisionError, match="already holds a run"):
        fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=1))
    assert (tmp_path / "run" / "best.pt").read_bytes() == before


def test_interrupt_then_resume_matches_uninterrupted(tiny_zindi, tmp_path, monkeypatch):
    fit(tiny_config(tiny_zindi, tmp_path / "full", epochs=3))
    real = engine_module.train_one_epoch
    calls = {"n": 0}

    def interrupt_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "train_one_epoch", interrupt_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(tiny_zindi, tmp_path / "cut", epochs=3))
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(engine_module, "train_one_epoch", real)
    resumed = fit(TrainConfig.load(tmp_path / "cut" / "config.json"), resume=True)
    assert resumed["epochs"] == 3
    a, b = pd.read_csv(tmp_path / "full" / "metrics.csv"), pd.read_csv(tmp_path / "cut" / "metrics.csv")
    assert a["val_roc_auc"].tolist() == pytest.approx(b["val_roc_auc"].tolist())
    assert a["train_loss"].tolist() == pytest.approx(b["train_loss"].tolist(), rel=1e-5)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"\x80\x04junk")
    with pytest.raises(SignvisionError, match="x.pt: not a signvision checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "y.pt")
    with pytest.raises(SignvisionError, match="y.pt: not a signvision checkpoint"):
        load_checkpoint(tmp_path / "y.pt")


def test_predict_file_format(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "run"))
    sub = submission(tmp_path / "run", tiny_zindi, tmp_path / "sub.csv", device="cpu", workers=0, log=lambda *_: None)
    test_ids = pd.read_csv(tiny_zindi / "Test.csv")["img_IDS"].tolist()
    written = pd.read_csv(tmp_path / "sub.csv")
    assert written["img_IDS"].tolist() == test_ids
    assert list(written.columns[1:]) == sorted(["Enough/Satisfied", "Me voy", "Ñandú"])
    assert (written.iloc[:, 1:].sum(axis=1) - 1).abs().max() < 1e-4
    with pytest.raises(SignvisionError, match="already exists"):
        submission(tmp_path / "run", tiny_zindi, tmp_path / "sub.csv", device="cpu", log=lambda *_: None)
    assert len(sub) == len(test_ids)


def test_binary_target_one_output(tiny_zindi, tmp_path):
    summary = fit(tiny_config(tiny_zindi, tmp_path / "run", target="Me voy"))
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["model"]["classifier.7.weight"].shape[0] == 1
    sub = submission(tmp_path / "run", tiny_zindi, tmp_path / "sub.csv", device="cpu", workers=0, log=lambda *_: None)
    assert list(sub.columns) == ["img_IDS", "Me voy"] and sub["Me voy"].between(0, 1).all()
    evaluation = evaluate_run(tmp_path / "run", device="cpu")
    assert evaluation["uncalibrated"]["roc_auc"] == pytest.approx(summary["val_roc_auc"], abs=1e-6)
    assert evaluation["without_tta"]["log_loss"] == pytest.approx(summary["val_log_loss"], abs=1e-6)


@pytest.mark.slow
def test_scoring_a_run_again_decodes_its_validation_images_only_and_once(tiny_zindi, tmp_path, monkeypatch):
    """evaluate rebuilds a finished run's validation side from split.csv: in a new process only those images
    are decoded, and choose_tta decodes and scores them once for all the modes it tries."""
    import signvision.data.cache as cache
    import signvision.training.rundata as rundata
    from signvision.inference.tta_choice import choose_tta

    fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=1))
    cache._decoded.clear()  # as in a new process (in the one that trained, every image is decoded already)
    decoded, decode_all = [], rundata.decode_all
    monkeypatch.setattr(
        rundata, "decode_all", lambda paths, *a, **k: decoded.append(list(paths)) or decode_all(paths, *a, **k)
    )
    split = pd.read_csv(tmp_path / "run" / "split.csv", dtype=str)
    val = set(split.loc[split["fold"] == "val", "img_IDS"])
    assert evaluate_run(tmp_path / "run", device="cpu")["images"] == len(val)
    assert len(decoded) == 1 and {Path(p).stem for p in decoded[0]} == val
    decoded.clear()
    assert set(choose_tta(tmp_path / "run", device="cpu")["gains"]) == {"hflip", "capture"}
    assert len(decoded) == 1


def test_skip_bad_images_drops_and_lists(tiny_zindi, tmp_path):
    (tiny_zindi / "Images" / "ImageID_0002.jpg").write_bytes(b"\xff\xd8broken")
    with pytest.raises(SignvisionError, match="ImageID_0002.jpg.*skip_bad_images"):
        fit(tiny_config(tiny_zindi, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    summary = fit(tiny_config(tiny_zindi, tmp_path / "run", skip_bad_images=True))
    assert summary["dropped_images"] == 1
    assert "ImageID_0002" in (tmp_path / "run" / "dropped.txt").read_text()
    assert "ImageID_0002" not in (tmp_path / "run" / "split.csv").read_text()


def test_run_works_from_another_directory(tiny_zindi, tmp_path, monkeypatch):
    from signvision.inference.evaluate import evaluate_run

    monkeypatch.chdir(tiny_zindi.parent)
    fit(tiny_config(tiny_zindi.name, "run", epochs=1))  # relative --data and --out
    monkeypatch.chdir(tmp_path.parent)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == str(tiny_zindi.resolve())
    assert evaluate_run(tmp_path / "run", device="cpu")["images"] > 0
    cfg = TrainConfig.load(tmp_path / "run" / "config.json")
    cfg.out, cfg.epochs = str(tmp_path / "run"), 2
    assert fit(cfg, resume=True)["epochs"] == 2


@pytest.mark.slow
def test_resume_with_more_epochs_under_onecycle(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "run", schedule="onecycle", epochs=1))
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "3"]) == 0
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 3  # the longer run is kept


@pytest.mark.slow
def test_resume_with_moved_data_then_report(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=1))
    moved = shutil.move(str(tiny_zindi), str(tmp_path / "moved"))
    assert main(["train", "--resume", str(tmp_path / "run"), "--data", moved, "--epochs", "2"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == str(Path(moved).resolve())
    assert main(["report", str(tmp_path / "run")]) == 0  # the report finds the images where they are now


@pytest.mark.slow
def test_awkward_names_are_data_not_syntax(tmp_path):
    """A class named like matplotlib mathtext, and an id with a trailing space in Train.csv."""
    root = make_zindi(tmp_path / "z", classes=["$\\alpha_$", "plain", "x^2_"], n_per_class=8)
    table = pd.read_csv(root / "Train.csv")
    table.loc[0, "img_IDS"] = table.loc[0, "img_IDS"] + " "
    table.to_csv(root / "Train.csv", index=False)
    assert (
        main(
            [
                "train",
                "--data",
                str(root),
                "--out",
                str(tmp_path / "r"),
                "--epochs",
                "1",
                "--image-size",
                "16",
                "--lenet-width",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    page = (tmp_path / "r" / "report.html").read_text()
    assert "$\\alpha_$" in page
    sub = submission(tmp_path / "r", root, tmp_path / "s.csv", device="cpu", workers=0, log=lambda *_: None)
    assert list(sub.columns) == ["img_IDS", "$\\alpha_$", "plain", "x^2_"]


def test_interrupt_while_writing_best_leaves_no_temporary_and_a_true_summary(tiny_zindi, tmp_path, monkeypatch):
    import signvision.training.checkpoint as checkpoint_module

    real_save = torch.save
    calls = {"best": 0}

    def save(obj, path, *a, **k):
        if str(path).endswith("best.pt.tmp"):
            calls["best"] += 1
            if calls["best"] == 2:
                real_save(obj, path, *a, **k)  # half way: the temporary file exists, then Ctrl-C
                raise KeyboardInterrupt
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(checkpoint_module.torch, "save", save)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=4, lr=1e-2))
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    run = tmp_path / "run"
    assert not list(run.glob("*.tmp"))
    summary = json.loads((run / "summary.json").read_text())
    if calls["best"] >= 2:  # the second improvement was interrupted: best.pt still holds the first
        assert summary["best_epoch"] == load_checkpoint(run / "best.pt")["epoch"]


def test_disk_cache_through_fit(tiny_zindi, tmp_path):
    cache = tmp_path / "cache"
    a = fit(tiny_config(tiny_zindi, tmp_path / "a", cache="disk", cache_dir=str(cache)))
    files = sorted(cache.glob("*.u8"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    b = fit(tiny_config(tiny_zindi, tmp_path / "b", cache="disk", cache_dir=str(cache)))
    assert files[0].stat().st_mtime_ns == stamp  # reused, not decoded again
    m = fit(tiny_config(tiny_zindi, tmp_path / "m"))
    assert a["val_roc_auc"] == pytest.approx(m["val_roc_auc"]) == pytest.approx(b["val_roc_auc"])


def test_cross_entropy_with_label_smoothing_is_calibrated(tiny_zindi, tmp_path):
    summary = fit(tiny_config(tiny_zindi, tmp_path / "ce", loss="ce", label_smoothing=0.1))
    assert summary["loss"] == "ce" and summary["temperature"] > 0
    result = evaluate_run(tmp_path / "ce", device="cpu")
    assert result["without_tta"]["log_loss"] == pytest.approx(summary["val_log_loss"], abs=1e-6)
    assert result["uncalibrated"]["log_loss"] == pytest.approx(summary["val_log_loss_uncalibrated"], abs=1e-6)


def test_trainings_on_one_machine_share_its_cores(tmp_path, monkeypatch):
    import os

    import torch

    import signvision.training.runtime as runtime
    from signvision.logs import log_to
    from signvision.training.trainer import share_cores

    monkeypatch.setattr(runtime, "TRAININGS", tmp_path / "trainings")
    before = torch.get_num_threads()
    try:
        with runtime.sharing_cores():
            assert (tmp_path / "trainings" / str(os.getpid())).is_file()
            assert runtime.share_threads(4) == 4  # alone: all of its threads
            (tmp_path / "trainings" / str(os.getppid())).touch()  # another training, alive
            (tmp_path / "trainings" / str(2**22 + 17)).touch()  # one that died without unregistering
            assert runtime.share_threads(4) == 2 and torch.get_num_threads() == 2
            assert not (tmp_path / "trainings" / str(2**22 + 17)).exists()
            said = []  # the epoch that changes its threads says so (its sums differ from a run alone's)
            with log_to(said.append):
                assert share_cores(4, 4, epoch=2, say=True) == 2 and share_cores(4, 2, epoch=3, say=True) == 2
                (tmp_path / "trainings" / str(os.getppid())).unlink()
                assert share_cores(4, 2, epoch=4, say=True) == 4
            assert said == [
                "epoch 3: 2 of 4 threads (other trainings run on this machine; the figures differ in their last "
                "digits from a run alone)",
                "epoch 5: 4 threads again (alone on this machine)",
            ]
        assert not (tmp_path / "trainings" / str(os.getpid())).exists()
    finally:
        torch.set_num_threads(before)


def test_a_short_training_from_random_weights_gets_a_note():
    from signvision.training.setup import few_steps_note

    note = few_steps_note(TrainConfig(model="resnet18", epochs=4), 17)  # the course's task at batch 64
    assert note is not None and "68 optimiser steps" in note and "--batch-size" in note
    assert few_steps_note(TrainConfig(model="resnet18", epochs=4), 35) is None  # batch 32: 140 steps
    assert few_steps_note(TrainConfig(model="lenet", epochs=4), 17) is None
    assert few_steps_note(TrainConfig(model="resnet18", epochs=4, weights="w.safetensors"), 17) is None
