"""MixUp and CutMix: mixed pixels, box area against lambda, targets that still sum to 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from signvision.models.mix import Mixer, cutmix, mixup, rand_bbox


def batch(b=5, k=4, size=16):
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 3, size, size).clone()  # image i is all i
    target = torch.nn.functional.one_hot(torch.arange(b) % k, k).float()
    return x, target


def test_mixup_pixels_and_targets():
    x, t = batch()
    perm = torch.tensor([1, 2, 3, 4, 0])
    mx, mt = mixup(x, t, 0.7, perm)
    assert torch.allclose(mx[0], torch.full_like(mx[0], 0.7 * 0 + 0.3 * 1))
    assert torch.allclose(mt, 0.7 * t + 0.3 * t[perm])
    assert torch.allclose(mt.sum(1), torch.ones(5))


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
def test_cutmix_area_equals_lambda(lam):
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, t = batch(size=20)
        perm = torch.tensor([1, 2, 3, 4, 0])
        mx, mt, used = cutmix(x, t, lam, perm, rng)
        pasted = (mx[0] != x[0]).float().mean().item()  # image 0 (all zeros) gets image 1's pixels in the box
        assert used == pytest.approx(1 - pasted, abs=1e-6)
        assert torch.allclose(mt, used * t + (1 - used) * t[perm])
        assert torch.allclose(mt.sum(1), torch.ones(5))


def test_rand_bbox_clips_to_image():
    rng = np.random.default_rng(1)
    for _ in range(200):
        y0, y1, x0, x1 = rand_bbox(10, 14, 0.2, rng)
        assert 0 <= y0 <= y1 <= 10 and 0 <= x0 <= x1 <= 14


@pytest.mark.parametrize("mode", ["mixup", "cutmix", "both"])
@pytest.mark.parametrize("b", [1, 3, 7])
def test_mixer_binary_and_odd_batches(mode, b):
    mixer = Mixer(mode=mode, alpha=0.4, seed=b)
    x = torch.rand(b, 3, 8, 8)
    binary = torch.randint(0, 2, (b, 1)).float()
    mx, mt = mixer(x, binary)
    assert mx.shape == x.shape and mt.shape == (b, 1)
    assert ((mt >= 0) & (mt <= 1)).all()
    if b == 1:  # a batch of one is mixed with itself: nothing changes
        assert torch.allclose(mx, x) and torch.allclose(mt, binary)


def test_mixer_prob_and_switch_off():
    x, t = batch()
    off = Mixer(mode="mixup", prob=0.0)
    assert off(x, t)[0] is x
    mixer = Mixer(mode="mixup")
    mixer.enabled = False
    assert mixer(x, t)[1] is t
    with pytest.raises(ValueError):
        Mixer(mode="blend")


def test_the_course_pieces_refuse_what_cannot_work():
    import signvision as sv

    with pytest.raises(sv.OptionError, match="one-hot"):
        sv.Mixer(mode="mixup")(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))  # class indices, not one-hot
    with pytest.raises(sv.OptionError, match="mode='mix'"):
        sv.Mixer(mode="mix")
    with pytest.raises(sv.OptionError, match="prob=2"):
        sv.Mixer(prob=2)
    with pytest.raises(sv.OptionError, match="tta=None"):
        sv.TTA(None)
    with pytest.raises(sv.OptionError, match="run=None"):
        sv.load_run(None)
    dataset = sv.ImageDataset(["a.jpg", "b.jpg"], 16)
    with pytest.raises(sv.OptionError, match="batch_size=0"):
        sv.make_loader(dataset, batch_size=0)
    with pytest.raises(sv.OptionError, match="paths="):
        sv.ImageDataset("images/", 16)
    with pytest.raises(sv.OptionError, match="num_outputs=0"):
        sv.build_model("lenet", 0)
