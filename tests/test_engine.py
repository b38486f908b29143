"""Training end to end on tiny data: the run folder, resume after an interruption, checkpoints."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import signvision.engine as engine
from signvision.config import TrainConfig
from signvision.engine import fit, load_checkpoint, predict
from signvision.errors import UserError


def tiny_config(data, out, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        model="lenet",
        lenet_width=1,
        epochs=2,
        image_size=16,
        batch_size=8,
        lr=5e-3,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def test_run_folder_contents(tiny_zindi, tmp_path):
    summary = fit(tiny_config(tiny_zindi, tmp_path / "run"), log=lambda *_: None)
    run = tmp_path / "run"
    for name in ("config.json", "split.csv", "metrics.csv", "best.pt", "last.pt", "summary.json"):
        assert (run / name).is_file(), name
    assert {"val_roc_auc", "val_log_loss", "val_accuracy", "classes", "epochs", "train_seconds"} <= set(summary)
    assert summary["epochs"] == 2 and len(pd.read_csv(run / "metrics.csv")) == 2
    assert json.loads((run / "config.json").read_text())["image_size"] == 16
    split = pd.read_csv(run / "split.csv")
    assert list(split.columns) == ["img_IDS", "fold"] and set(split["fold"]) == {"train", "val"}
    ckpt = torch.load(run / "best.pt", weights_only=True)  # a plain dict, loadable without pickle code
    assert ckpt["classes"] == summary["classes"]


def test_out_folder_with_a_run_is_not_overwritten(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=1), log=lambda *_: None)
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(UserError, match="already holds a run"):
        fit(tiny_config(tiny_zindi, tmp_path / "run", epochs=1), log=lambda *_: None)
    assert (tmp_path / "run" / "best.pt").read_bytes() == before


def test_interrupt_then_resume_matches_uninterrupted(tiny_zindi, tmp_path, monkeypatch):
    fit(tiny_config(tiny_zindi, tmp_path / "full", epochs=3), log=lambda *_: None)
    real = engine.train_one_epoch
    calls = {"n": 0}

    def interrupt_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", interrupt_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(tiny_zindi, tmp_path / "cut", epochs=3), log=lambda *_: None)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(engine, "train_one_epoch", real)
    resumed = fit(TrainConfig.load(tmp_path / "cut" / "config.json"), resume=True, log=lambda *_: None)
    assert resumed["epochs"] == 3
    a, b = pd.read_csv(tmp_path / "full" / "metrics.csv"), pd.read_csv(tmp_path / "cut" / "metrics.csv")
    assert a["val_roc_auc"].tolist() == pytest.approx(b["val_roc_auc"].tolist())
    assert a["train_loss"].tolist() == pytest.approx(b["train_loss"].tolist(), rel=1e-5)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"\x80\x04junk")
    with pytest.raises(UserError, match="x.pt: not a signvision checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "y.pt")
    with pytest.raises(UserError, match="y.pt: not a signvision checkpoint"):
        load_checkpoint(tmp_path / "y.pt")


def test_predict_file_format(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "run"), log=lambda *_: None)
    sub = predict(tmp_path / "run", tiny_zindi, tmp_path / "sub.csv", device="cpu", workers=0, log=lambda *_: None)
    test_ids = pd.read_csv(tiny_zindi / "Test.csv")["img_IDS"].tolist()
    written = pd.read_csv(tmp_path / "sub.csv")
    assert written["img_IDS"].tolist() == test_ids
    assert list(written.columns[1:]) == sorted(["Enough/Satisfied", "Me voy", "Ñandú"])
    assert (written.iloc[:, 1:].sum(axis=1) - 1).abs().max() < 1e-4
    with pytest.raises(UserError, match="already exists"):
        predict(tmp_path / "run", tiny_zindi, tmp_path / "sub.csv", device="cpu", log=lambda *_: None)
    assert len(sub) == len(test_ids)


def test_binary_target_one_output(tiny_zindi, tmp_path):
    summary = fit(tiny_config(tiny_zindi, tmp_path / "run", target="Me voy"), log=lambda *_: None)
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["model"]["classifier.7.weight"].shape[0] == 1
    sub = predict(tmp_path / "run", tiny_zindi, tmp_path / "sub.csv", device="cpu", workers=0, log=lambda *_: None)
    assert list(sub.columns) == ["img_IDS", "Me voy"] and sub["Me voy"].between(0, 1).all()
    assert 0 <= summary["val_roc_auc"] <= 1


def test_skip_bad_images_drops_and_lists(tiny_zindi, tmp_path):
    (tiny_zindi / "Images" / "ImageID_0002.jpg").write_bytes(b"\xff\xd8broken")
    with pytest.raises(UserError, match="ImageID_0002.jpg.*--skip-bad-images"):
        fit(tiny_config(tiny_zindi, tmp_path / "run"), log=lambda *_: None)
    assert not (tmp_path / "run").exists()
    summary = fit(tiny_config(tiny_zindi, tmp_path / "run", skip_bad_images=True), log=lambda *_: None)
    assert summary["dropped_images"] == 1
    assert "ImageID_0002" in (tmp_path / "run" / "dropped.txt").read_text()
    assert "ImageID_0002" not in (tmp_path / "run" / "split.csv").read_text()


def test_run_works_from_another_directory(tiny_zindi, tmp_path, monkeypatch):
    from signvision.engine import evaluate_run

    monkeypatch.chdir(tiny_zindi.parent)
    fit(tiny_config(tiny_zindi.name, "run", epochs=1), log=lambda *_: None)  # relative --data and --out
    monkeypatch.chdir(tmp_path.parent)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == str(tiny_zindi.resolve())
    assert evaluate_run(tmp_path / "run", device="cpu", log=lambda *_: None)["images"] > 0
    cfg = TrainConfig.load(tmp_path / "run" / "config.json")
    cfg.out, cfg.epochs = str(tmp_path / "run"), 2
    assert fit(cfg, resume=True, log=lambda *_: None)["epochs"] == 2
