"""The three layouts, the decoder, the cache, the Dataset, and every bad input of the data layer."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import CLASSES, make_zindi, write_images

from signvision.cache import decode_all
from signvision.dataset import ImageDataset, collate_batch, make_loader
from signvision.errors import BadImage, UserError
from signvision.images import read_image
from signvision.tables import read_data, read_unlabelled


def test_zindi_layout(tiny_zindi):
    table = read_data(tiny_zindi)
    assert table.layout == "zindi"
    assert len(table.train) == 36 and len(table.test) == 6
    assert table.classes == sorted(CLASSES)  # slash, space and non-ASCII kept as written
    assert all(Path(p).is_file() for p in table.train["path"])


def test_zindi_extension_any_case(tmp_path):
    root = make_zindi(tmp_path / "z", n_per_class=3)
    first = root / "Images" / "ImageID_0000.jpg"
    first.rename(root / "Images" / "ImageID_0000.JPEG")
    table = read_data(root)
    assert table.train["path"].iloc[0].endswith("ImageID_0000.JPEG")


def test_folder_layout(tmp_path):
    for c in ["cat", "dog house"]:
        write_images(tmp_path / "f" / c, [c] * 4, ["cat", "dog house"])
    table = read_data(tmp_path / "f")
    assert table.layout == "folder"
    assert table.classes == ["cat", "dog house"]
    assert len(table.train) == 8 and table.test is None


def test_csv_layout(tmp_path):
    ids = write_images(tmp_path / "pics", ["a", "b", "a"], ["a", "b"], ext=".png")
    pd.DataFrame({"file": [i + ".png" for i in ids], "y": ["a", "b", "a"]}).to_csv(tmp_path / "any.csv", index=False)
    table = read_data(csv=tmp_path / "any.csv", image_col="file", label_col="y", image_dir=tmp_path / "pics")
    assert table.layout == "csv" and table.classes == ["a", "b"] and len(table.train) == 3


def test_missing_train_csv(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no Train.csv"):
        read_data(tmp_path / "empty")


def test_row_without_image_names_the_row(tiny_zindi):
    (tiny_zindi / "Images" / "ImageID_0004.jpg").unlink()
    with pytest.raises(UserError, match=r"Train.csv row 6: no image for img_IDS='ImageID_0004'"):
        read_data(tiny_zindi)
    dropped: list[str] = []
    table = read_data(tiny_zindi, skip_missing=True, dropped=dropped)
    assert len(table.train) == 35 and "ImageID_0004" in dropped[0]


def test_empty_csv(tiny_zindi):
    (tiny_zindi / "Train.csv").write_text("")
    with pytest.raises(UserError, match="Train.csv: the file is empty"):
        read_data(tiny_zindi)


def test_missing_label_column(tiny_zindi):
    pd.read_csv(tiny_zindi / "Train.csv").rename(columns={"Label": "Class"}).to_csv(
        tiny_zindi / "Train.csv", index=False
    )
    with pytest.raises(UserError, match="no column 'Label'"):
        read_data(tiny_zindi)


def test_read_image_channels_and_depths(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])
    assert np.array_equal(read_image(tmp_path / "c.png"), rgb)  # BGR on disk -> RGB in memory
    cv2.imwrite(str(tmp_path / "g.png"), rgb[..., 0])
    gray = read_image(tmp_path / "g.png")
    assert gray.shape == (10, 12, 3) and np.array_equal(gray[..., 1], rgb[..., 0])
    rgba = np.dstack([rgb[..., ::-1], np.full((10, 12), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    cv2.imwrite(str(tmp_path / "d.png"), rgb[..., ::-1].astype(np.uint16) * 257)
    assert np.array_equal(read_image(tmp_path / "d.png"), rgb)  # 16-bit scaled back to 8


def test_corrupt_and_truncated_jpeg(tmp_path):
    ok = tmp_path / "ok.jpg"
    cv2.imwrite(str(ok), np.full((20, 20, 3), 128, np.uint8))
    data = ok.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "padded.jpg").write_bytes(data + b"\x00" * 5000)  # zero padding after EOI is fine
    assert read_image(tmp_path / "padded.jpg").shape == (20, 20, 3)
    for name, message in [("trunc.jpg", "truncated"), ("junk.jpg", "not a readable image"), ("empty.jpg", "empty")]:
        with pytest.raises(BadImage, match=message):
            read_image(tmp_path / name)


def test_decode_all_reports_bad_images_and_caches(tiny_zindi, tmp_path):
    table = read_data(tiny_zindi)
    paths = table.train["path"].tolist()
    Path(paths[3]).write_bytes(b"garbage")
    images, bad, messages = decode_all(paths, 16)
    assert images.shape == (36, 16, 16, 3) and bad == [3] and "ImageID_0003" in messages[0]
    none, bad2, _ = decode_all(paths, 16, cache="none")
    assert none is None and bad2 == [3]
    disk, _, _ = decode_all(paths, 16, cache="disk", cache_dir=tmp_path / "cache")
    assert np.array_equal(np.asarray(disk), images)
    again, _, _ = decode_all(paths, 16, cache="disk", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 1 and np.array_equal(np.asarray(again), images)


def test_dataset_batch_fetch_equals_single_items(tiny_zindi):
    table = read_data(tiny_zindi)
    paths = table.train["path"].tolist()
    images, _, _ = decode_all(paths, 24)
    targets = np.arange(len(paths)) % 3
    cached = ImageDataset(paths, 24, targets=targets, images=images)
    direct = ImageDataset(paths, 24, targets=targets)
    img, target = cached[5]
    assert img.dtype == torch.uint8 and img.shape == (3, 24, 24) and target == targets[5]
    assert torch.equal(direct[5][0], img)
    batch, ys = cached.__getitems__([5, 1, 7])
    assert batch.shape == (3, 3, 24, 24) and torch.equal(batch[0], img) and ys.tolist() == [2, 1, 1]
    stacked, ys2 = collate_batch([direct[5], direct[1], direct[7]])
    assert torch.equal(stacked, batch) and torch.equal(ys2, ys)
    loader = make_loader(cached, batch_size=8, shuffle=True, workers=2)
    seen = sum(x.shape[0] for x, _ in loader)
    assert seen == len(paths)


def test_unlabelled_returns_ids(tiny_zindi, tmp_path):
    test = read_unlabelled(tiny_zindi)
    ds = ImageDataset(test["path"], 16, ids=test["img_IDS"])
    img, img_id = ds[0]
    assert img.shape == (3, 16, 16) and img_id == test["img_IDS"].iloc[0]
    folder = tmp_path / "flat"
    (folder / "sub").mkdir(parents=True)
    for p in test["path"][:2]:
        shutil.copy(p, folder)
    shutil.copy(test["path"].iloc[0], folder / "sub" / "a.jpg")
    cv2.imwrite(str(folder / "sub" / "a.png"), cv2.imread(test["path"].iloc[0]))  # same stem, another file
    (folder / ".ipynb_checkpoints").mkdir()
    shutil.copy(test["path"].iloc[0], folder / ".ipynb_checkpoints" / "hidden.jpg")
    (folder / "._x.jpg").write_bytes(b"AppleDouble")
    names = [f"{i}.jpg" for i in test["img_IDS"][:2]]
    # found in sub-folders too, each named by its path in the folder; hidden files are not images
    assert list(read_unlabelled(folder)["img_IDS"]) == sorted(names) + ["sub/a.jpg", "sub/a.png"]


def test_huge_jpeg_is_decoded_at_reduced_size(tmp_path):
    """Over 16 megapixels, a JPEG is decoded at 1/2, 1/4 or 1/8 of its side (never whole in memory)."""
    from signvision.images import LARGE_PIXELS, read_image

    big = np.zeros((4000, 5000, 3), np.uint8)  # 20 megapixels
    big[:, 2500:] = (0, 0, 255)  # right half red (BGR)
    cv2.imwrite(str(tmp_path / "big.jpg"), big)
    img = read_image(tmp_path / "big.jpg")
    assert img.shape == (2000, 2500, 3) and img.shape[0] * img.shape[1] <= LARGE_PIXELS
    assert img[1000, 2000, 0] > 200 and img[1000, 500, 0] < 30  # still RGB, still the same picture
