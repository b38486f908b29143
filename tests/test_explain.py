"""Class-activation heatmaps: shapes and ranges for LeNet and a timm CNN, `run.explain` for a run and a fold
ensemble, `signvision explain`'s page, and bad targets refused in one line. (Whether the heatmaps are
faithful is measured on real photos in tests/test_sign_digits.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import QUIET, tiny_config

import signvision as sv
from signvision.cli.commands import main
from signvision.models.hirescam import hires_cam
from signvision.models.lenet import LeNet
from signvision.runs.crossval import fit_folds


@pytest.mark.parametrize("outputs", [3, 1])
def test_heatmaps_are_maps_in_0_1_at_the_input_size(outputs):
    import timm

    torch.manual_seed(0)
    for model in (LeNet(outputs, image_size=32), timm.create_model("resnet18", num_classes=outputs)):
        maps = hires_cam(model.eval(), torch.randn(4, 3, 32, 32))
        assert maps.shape == (4, 32, 32) and maps.min() >= 0 and maps.max() <= 1
        assert not any(p.grad is not None for p in model.parameters())  # the model is left as it was


def test_a_heatmap_finds_the_one_place_that_decides():
    """A CNN whose class-1 logit is the value of one pixel region: the heatmap peaks there."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.Flatten(), torch.nn.Linear(16 * 16, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
        net[2].weight.zero_()
        net[2].weight[1, 5 * 16 + 10] = 1.0  # class 1 reads row 5, column 10 only
    x = torch.rand(1, 3, 16, 16)
    maps = hires_cam(net, x, torch.tensor([1]))
    assert divmod(int(maps[0].argmax()), 16) == (5, 10)


@pytest.mark.slow
def test_run_explain_and_the_command(tiny_zindi, tmp_path, capsys):
    run = sv.train(config=tiny_config(tiny_zindi, tmp_path / "run", image_size=24), log=QUIET["log"])
    images = sorted((tiny_zindi / "Images").glob("*.jpg"))[:5]
    maps = run.explain(images)
    assert maps.shape == (5, 24, 24) and maps.dtype == np.float32 and 0 <= maps.min() and maps.max() <= 1
    predicted = run.predict(images).frame[run.classes].to_numpy().argmax(axis=1)
    again = run.explain(images, target=[run.classes[k] for k in predicted])  # one target per image: the predicted
    np.testing.assert_allclose(again, maps, atol=1e-6)  # the default explains the predicted class
    other = run.explain(images, target=[run.classes[(k + 1) % 3] for k in predicted])  # another class each
    assert other.shape == maps.shape and not np.allclose(other, maps)  # ... gets its own map
    with pytest.raises(sv.OptionError, match="target"):
        run.explain(images, target="no such class")

    out = tmp_path / "explained"
    args = ["explain", "--run", str(tmp_path / "run"), "--data", str(tiny_zindi), "--out", str(out), "--limit", "4"]
    assert main(args) == 0
    page = (out / "explain.html").read_text()
    assert page.count("<figure>") == 4 and page.count("<img") == 8
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err  # the page is not replaced unasked
    assert main([*args, "--overwrite", "--target", "nope"]) == 2
    assert "--target" in capsys.readouterr().err
    # G11: the CSV the help names (img_IDS, images beside it in Images/) is read as a list of images
    csv = ["explain", "--run", str(tmp_path / "run"), "--data", str(tiny_zindi / "Train.csv"), "--limit", "3"]
    assert main([*csv, "--out", str(tmp_path / "from_csv")]) == 0, capsys.readouterr().err
    assert (tmp_path / "from_csv" / "explain.html").read_text().count("<figure>") == 3


def test_a_fold_ensemble_averages_its_members_heatmaps(tiny_zindi, tmp_path):
    fit_folds(tiny_config(tiny_zindi, tmp_path / "cv", folds=2, epochs=1, image_size=16))
    run = sv.load_run(tmp_path / "cv")
    images = sorted((tiny_zindi / "Images").glob("*.jpg"))[:3]
    maps = run.explain(images, target=0)
    singles = [sv.load_run(tmp_path / "cv" / f"fold{k}").explain(images, target=0) for k in (1, 2)]
    mean = (singles[0] + singles[1]) / 2
    expected = mean / np.maximum(mean.reshape(3, -1).max(1), 1e-12)[:, None, None]
    np.testing.assert_allclose(maps, expected, atol=1e-5)
