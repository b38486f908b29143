"""The decoded-image cache, the course's Dataset and the loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from signvision.data.cache import decode_all
from signvision.data.dataset import ImageDataset, collate_batch, make_loader
from signvision.data.tables import read_data


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


def test_a_second_run_on_the_same_images_decodes_none_again(tiny_zindi, monkeypatch):
    """The folds of a job (one process) share one decoded array per image size; a file that changes is decoded
    again, and only the last REUSED arrays are kept."""
    import signvision.data.cache as cache

    paths = read_data(tiny_zindi).train["path"].tolist()
    decoded = []
    real = cache.load_resized
    monkeypatch.setattr(cache, "load_resized", lambda p, s: decoded.append(p) or real(p, s))
    first, _, _ = decode_all(paths, 24)
    second, _, _ = decode_all(paths, 24)
    assert second is first and len(decoded) == len(paths)  # the second run decoded nothing
    decode_all(paths, 20)
    assert len(decoded) == 2 * len(paths)  # another size is another array
    Path(paths[5]).write_bytes(Path(paths[6]).read_bytes())  # a file replaced: its size and time change
    third, _, _ = decode_all(paths, 24)
    assert len(decoded) == 3 * len(paths) and np.array_equal(third[5], third[6]) and third is not first
    for size in (21, 22, 23):
        decode_all(paths, size)
    assert len(cache._decoded) == cache.REUSED


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
