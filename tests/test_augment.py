"""Augmentation presets, a user's saved pipeline, and test-time augmentation."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from signvision.errors import SignvisionError
from signvision.models.augment import STRENGTH, TTA, build_augment, crop_views
from signvision.models.probs import merge_probs


def test_presets_keep_size_and_grow_in_strength():
    img = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    assert build_augment("none", image_size=48) is None
    sizes = []
    for level in STRENGTH[1:]:
        t = build_augment(level, image_size=48, seed=0)
        assert t(image=img)["image"].shape == (48, 48, 3)
        sizes.append(len(t.transforms))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    names = {type(op).__name__ for op in build_augment("heavy", image_size=48).transforms}
    assert {"HorizontalFlip", "Affine", "RandomResizedCrop", "GaussianBlur", "CoarseDropout", "ColorJitter"} <= names


def test_capture_moves_and_relights_but_never_mirrors():
    capture = build_augment("capture", image_size=48, seed=0)
    names = {type(op).__name__ for op in capture.transforms}
    assert {"Affine", "RandomBrightnessContrast", "GaussianBlur"} <= names and "HorizontalFlip" not in names
    img = np.zeros((48, 48, 3), np.uint8)
    img[:, :12] = 255  # a bright band on the left stays on the left, whatever the draw
    for _ in range(30):
        out = capture(image=img)["image"].astype(float).mean(axis=(0, 2))
        assert out[:16].mean() > out[-16:].mean()


def test_user_pipeline_file(tmp_path):
    A.save(A.Compose([A.HorizontalFlip(p=1.0)]), str(tmp_path / "aug.json"))
    t = build_augment(str(tmp_path / "aug.json"), image_size=8)
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    assert np.array_equal(t(image=img)["image"], img[:, ::-1])
    A.save(A.Compose([A.Resize(4, 4)]), str(tmp_path / "shrink.json"))
    with pytest.raises(SignvisionError, match="changes the image shape"):
        build_augment(str(tmp_path / "shrink.json"), image_size=8)
    with pytest.raises(SignvisionError, match="augment='wild'"):
        build_augment("wild", image_size=8)


def test_tta_views_and_merge():
    images = torch.randint(0, 255, (2, 3, 10, 10), dtype=torch.uint8)
    seen = []

    def predict(x):
        seen.append(x)
        return torch.softmax(x.mean((2, 3)), 1)  # any function of the view

    prepare = lambda u: u.float() / 255  # noqa: E731
    out = TTA("hflip")(predict, images, prepare)
    assert len(seen) == 2 and torch.equal(seen[1], prepare(images).flip(-1))
    assert torch.allclose(out, (predict(seen[0]) + predict(seen[1])) / 2)
    seen.clear()
    TTA("hflip+crops")(predict, images, prepare)
    assert len(seen) == 7 and all(v.shape == (2, 3, 10, 10) for v in seen)
    assert len(crop_views(torch.zeros(1, 3, 20, 20))) == 5


def test_gmean_merge_sums_to_one():
    p1, p2 = torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.5, 0.4, 0.1]])
    g = merge_probs([p1, p2], merge="gmean")
    assert torch.allclose(g.sum(1), torch.ones(1))
    expected = (p1 * p2).sqrt() / (p1 * p2).sqrt().sum()
    assert torch.allclose(g, expected)
    b = merge_probs([torch.tensor([0.9]), torch.tensor([0.6])], merge="gmean")
    assert 0.6 < b.item() < 0.9


def test_tta_from_file(tmp_path):
    A.save(A.Compose([A.VerticalFlip(p=1.0)]), str(tmp_path / "tta.json"))
    images = torch.randint(0, 255, (2, 3, 6, 6), dtype=torch.uint8)
    seen = []
    TTA(str(tmp_path / "tta.json"), views=2, image_size=6)(
        lambda x: seen.append(x) or torch.ones(2, 3) / 3, images, lambda u: u.float()
    )
    assert len(seen) == 3 and torch.equal(seen[1], images.float().flip(-2))
