"""Training options of backbones, transfer learning, mixing, TTA and speed, each run on tiny data."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers import QUIET, make_zindi, submission, tiny_config

from signvision.errors import SignvisionError
from signvision.inference.evaluate import evaluate_run
from signvision.models.augment import TTA
from signvision.runs.run import fit
from signvision.training.checkpoint import load_checkpoint


@pytest.mark.slow
def test_resnet_binary_with_cutmix_and_tta(tiny_zindi, tmp_path):
    cfg = tiny_config(
        tiny_zindi,
        tmp_path / "r18",
        model="resnet18",
        image_size=32,
        epochs=1,
        target="Ñandú",
        mix="cutmix",
        mix_alpha=1.0,
        augment="light",
    )
    summary = fit(cfg)
    assert summary["epochs"] == 1
    ckpt = load_checkpoint(tmp_path / "r18" / "best.pt")
    assert ckpt["model"]["fc.weight"].shape == (1, 512)
    result = evaluate_run(tmp_path / "r18", tta="hflip+crops", device="cpu")
    assert set(result["with_tta"]) >= {"roc_auc", "log_loss", "accuracy"}
    sub = submission(
        tmp_path / "r18",
        tiny_zindi,
        tmp_path / "s.csv",
        tta=TTA("hflip", merge="gmean"),
        device="cpu",
        workers=0,
        **QUIET,
    )
    assert list(sub.columns) == ["img_IDS", "Ñandú"]


def test_amp_on_a_cpu_follows_its_bf16(monkeypatch):
    from signvision.training import runtime

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)  # an AVX2 processor: bf16 only emulated
    assert runtime.amp_dtype(cpu, True) is None
    assert runtime.precision_name(cpu, True).startswith("fp32 (amp left off: this CPU has no native bf16")
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # AVX512-BF16 or AMX
    assert runtime.amp_dtype(cpu, True) is torch.bfloat16
    assert runtime.precision_name(cpu, True) == "bf16 autocast"
    assert runtime.precision_name(cpu, False) == "fp32" and runtime.amp_dtype(cpu, False) is None


def test_speed_options_on_cpu(tiny_zindi, tmp_path, monkeypatch, caplog):
    from signvision.training import runtime

    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # the bf16 autocast path, whatever this CPU has
    cfg = tiny_config(
        tiny_zindi,
        tmp_path / "fast",
        amp=True,
        channels_last=True,
        ema=True,
        ema_decay=0.9,
        grad_clip=1.0,
        mix="both",
        mix_off_epochs=1,
        schedule="onecycle",
        augment="heavy",
        workers=1,
    )
    with caplog.at_level("INFO", logger="signvision"):
        summary = fit(cfg)
    assert "device cpu, bf16 autocast" in caplog.text  # the run's first lines say how it computes
    last = load_checkpoint(tmp_path / "fast" / "last.pt")
    assert last["ema"] is not None and summary["epochs"] == 2
    # the average is not the raw weights, and best.pt holds what was evaluated: the average of its epoch
    best = load_checkpoint(tmp_path / "fast" / "best.pt")
    key = "features.0.weight"
    averaged = last["ema"]["module." + key]
    assert not torch.equal(averaged, last["model"][key])
    if best["epoch"] == last["epoch"]:
        assert torch.equal(best["model"][key].float(), averaged.float())


@pytest.mark.slow
def test_compile_on_cpu(tiny_zindi, tmp_path):
    pytest.importorskip("torch._inductor")
    summary = fit(tiny_config(tiny_zindi, tmp_path / "c", compile=True, epochs=1))
    weights = load_checkpoint(tmp_path / "c" / "best.pt")["model"]
    assert not any(k.startswith("_orig_mod.") for k in weights)  # loadable into a plain model
    again = evaluate_run(tmp_path / "c", device="cpu")["uncalibrated"]
    assert again["roc_auc"] == pytest.approx(summary["val_roc_auc"], abs=1e-4)


@pytest.mark.slow
def test_finetune_from_a_run_with_other_classes(tiny_zindi, tmp_path):
    fit(tiny_config(tiny_zindi, tmp_path / "src", model="resnet18", image_size=32, epochs=1))
    source = load_checkpoint(tmp_path / "src" / "best.pt")["model"]
    two = make_zindi(tmp_path / "two", classes=["left", "right"], n_per_class=10)
    cfg = tiny_config(
        two,
        tmp_path / "ft",
        model="resnet18",
        image_size=32,
        epochs=1,
        weights=str(tmp_path / "src" / "best.pt"),
        freeze_backbone_epochs=1,
    )
    fit(cfg)
    tuned = load_checkpoint(tmp_path / "ft" / "best.pt")["model"]
    assert tuned["fc.weight"].shape == (1, 512)  # a new one-output head, the 3-class head dropped
    assert torch.equal(tuned["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"])  # frozen backbone
    assert not torch.equal(tuned["fc.bias"], torch.zeros(1))


@pytest.mark.slow
def test_frozen_first_stages_keep_the_loaded_weights_through_training(tiny_zindi, tmp_path):
    from signvision.models.factory import build_model

    torch.save(build_model("resnet18", 3).state_dict(), tmp_path / "start.pth")
    weights = str(tmp_path / "start.pth")
    fit(tiny_config(tiny_zindi, tmp_path / "fz", model="resnet18", image_size=32, weights=weights, freeze_blocks=1))
    start, tuned = torch.load(tmp_path / "start.pth"), load_checkpoint(tmp_path / "fz" / "best.pt")["model"]
    for key in ("conv1.weight", "bn1.running_mean", "bn1.running_var", "layer1.0.conv1.weight"):
        assert torch.equal(tuned[key], start[key]), key  # the stem and the first stage: as loaded
    for key in ("layer2.0.conv1.weight", "layer2.0.bn1.running_mean"):
        assert not torch.equal(tuned[key], start[key]), key  # the later stages learnt
    assert 0 <= evaluate_run(tmp_path / "fz", device="cpu")["uncalibrated"]["log_loss"] < 10  # it loads as any other
    with pytest.raises(SignvisionError, match="freeze_blocks"):
        fit(tiny_config(tiny_zindi, tmp_path / "lenet", freeze_blocks=1))


def test_pretrained_offline_points_at_weights(tiny_zindi, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at import time, so also set the constant
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SignvisionError, match="`weights` FILE"):
        fit(tiny_config(tiny_zindi, tmp_path / "p", model="resnet18", pretrained=True))


def test_folder_layout_run_and_csv_layout_run(tmp_path):
    from helpers import write_images

    for c in ["a", "b"]:
        write_images(tmp_path / "f" / c, [c] * 8, ["a", "b"], seed=ord(c))
    summary = fit(tiny_config(tmp_path / "f", tmp_path / "run"))
    assert summary["classes"] == ["a", "b"]
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert split["img_IDS"].str.contains("/").all()
