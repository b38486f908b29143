"""The fast near-copy grouping every split runs, and the leak check: clips of moving frames become one group
each, distinct images stay alone, no group grows past its cap, and a leaky split is flagged while a
clip-safe one is not."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
from helpers import tiny_config

from signvision.grouping.nearcopies import (
    Fingerprints,
    fingerprint_arrays,
    fingerprint_images,
    group_near_copies,
    leak_check,
    measures_memory,
)

CLASSES = ["a", "b", "c"]


def photo(label: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A distinct 'photo': a full-contrast random texture (no two alike), with a small mark saying the class."""
    texture = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    q = size // 6
    texture[label * q : (label + 1) * q, :q] = 255
    return texture


def clip_frames(img: np.ndarray, frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A hand-held clip of one image: each frame moved, zoomed and relit a little more than the last."""
    h, w = img.shape[:2]
    dx, dy = rng.uniform(-1, 1, 2)
    out = []
    for t in range(frames):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.6 * t, 1 + 0.01 * t)
        m[:, 2] += (dx * 0.5 * t, dy * 0.5 * t)
        frame = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE).astype(np.float32) * (1 + 0.02 * t)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def write_clips(root, clips_per_class=4, frames=6, stills=8, size=64, seed=0):
    """root/<class>/c<k>_f<t>.png: clips of frames, and single stills (no copies) per class."""
    rng = np.random.default_rng(seed)
    for k, label in enumerate(CLASSES):
        folder = root / label
        folder.mkdir(parents=True)
        for c in range(clips_per_class):
            for t, frame in enumerate(clip_frames(photo(k, rng, size), frames, rng)):
                cv2.imwrite(str(folder / f"c{c}_f{t}.png"), frame)
        for s in range(stills):
            cv2.imwrite(str(folder / f"still{s}.png"), photo(k, rng, size))
    return root


def clip_of(ids: pd.Series) -> pd.Series:
    return ids.str.rsplit("_f", n=1).str[0]


def test_clips_are_one_group_each_and_stills_stay_alone(tmp_path):
    from signvision.data.tables import read_data

    table = read_data(write_clips(tmp_path / "clips"))
    group = group_near_copies(fingerprint_images(table.train["path"].tolist()))
    ids = table.train["img_IDS"]
    is_clip = ids.str.contains("_f").to_numpy()
    clips = pd.Series(group[is_clip]).groupby(clip_of(ids[is_clip]).to_numpy())
    assert (clips.nunique() == 1).all() and (clips.min() >= 0).all()  # every frame of a clip in its clip's group
    assert clips.first().nunique() == len(clips)  # and no two clips share a group
    assert (group[~is_clip] == -1).all()  # a still has no near copy


def test_groups_never_grow_past_the_cap():
    rng = np.random.default_rng(1)
    frames = clip_frames(photo(0, rng, 64), 40, rng)  # one long clip
    fp = fingerprint_arrays(np.stack(frames))
    assert np.bincount(group_near_copies(fp, max_group=40)).max() == 40
    capped = group_near_copies(fp, max_group=10)
    assert np.bincount(capped[capped >= 0]).max() <= 10 and (capped >= 0).sum() >= 35


def test_tiny_images_need_to_be_far_more_alike():
    rng = np.random.default_rng(2)
    base, other = photo(1, rng, 28), photo(1, rng, 28)
    similar = (0.8 * base + 0.2 * other).astype(np.uint8)  # a fifth of another image blended in
    photo_fp = fingerprint_arrays(np.stack([base, similar]), original_side=100)
    tiny_fp = fingerprint_arrays(np.stack([base, similar]), original_side=28)
    cosine = float(photo_fp.vectors[0] @ photo_fp.vectors[1])
    assert 0.92 <= cosine < 0.995, cosine  # alike enough for photos, not for 28 px images
    assert list(group_near_copies(photo_fp)) == [0, 0]
    assert list(group_near_copies(tiny_fp)) == [-1, -1]


def test_leak_check_flags_a_random_split_and_not_a_clip_safe_one():
    rng = np.random.default_rng(3)
    images, labels, clip = [], [], []
    for c in range(30):
        label = c % 3
        for frame in clip_frames(photo(label, rng, 64), 6, rng):
            images.append(frame)
            labels.append(label)
            clip.append(c)
    fp = fingerprint_arrays(np.stack(images))
    labels, clip = np.array(labels), np.array(clip)
    random_val = np.random.default_rng(0).random(len(labels)) < 0.33
    safe_val = clip % 3 == 0
    leaky, safe = leak_check(fp, labels, random_val), leak_check(fp, labels, safe_val)
    assert leaky["val_near_copy_share"] > 0.9 and leaky["memory_accuracy"] > 0.95
    assert safe["val_near_copy_share"] == 0.0
    assert measures_memory(leaky, model_accuracy=0.97) and not measures_memory(safe, model_accuracy=0.97)
    # a weak model no better than a 1-nearest-neighbour, without near copies, is weak, not remembering
    assert not measures_memory({"memory_accuracy": 0.4, "val_near_copy_share": 0.0}, model_accuracy=0.42)


def test_unreadable_files_are_left_out_of_every_group(tmp_path):
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), photo(0, np.random.default_rng(0), 64))
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    fp = fingerprint_images([str(good), str(good), str(tmp_path / "b.jpg"), str(tmp_path / "missing.png")])
    assert list(fp.ok) == [True, True, False, False]
    assert list(group_near_copies(fp)) == [0, 0, -1, -1]


def test_a_run_records_its_leak_figures_and_the_default_split_keeps_clips_together(tmp_path):
    from signvision.runs.run import fit

    data = write_clips(tmp_path / "clips", clips_per_class=6, stills=4)
    summary = fit(tiny_config(data, tmp_path / "run", epochs=1, image_size=16))
    split = pd.read_csv(tmp_path / "run" / "split.csv", keep_default_na=False)
    frames = split[split["img_IDS"].str.contains("_f")]
    assert (frames.groupby(clip_of(frames["img_IDS"]))["fold"].nunique() == 1).all()
    assert summary["split_by"] == "near-copies" and summary["grouped_images"] == len(frames)
    assert summary["val_near_copy_share"] == 0.0 and summary["val_groups"] < summary["val_images"]
    low, high = summary["val_accuracy_ci"]
    assert low <= summary["val_accuracy"] <= high
    assert (tmp_path / "run" / "split.json").is_file()


def test_fingerprints_subset():
    fp = Fingerprints(np.eye(3, 256, dtype=np.float32), np.array([True, False, True]), np.zeros(3, bool))
    part = fp.subset(np.array([0, 2]))
    assert len(part) == 2 and part.ok.all()


def test_identical_copies_are_one_group_however_many():
    rng = np.random.default_rng(3)
    photos = [photo(k % 3, rng) for k in range(120)]
    for copies in (12, 30, 60):  # more than the neighbours looked at (10), and more than the cap (25)
        fp = fingerprint_arrays(np.stack([photos[0]] * copies + photos[1:]))
        group = group_near_copies(fp)
        assert len(set(group[:copies])) == 1 and group[0] >= 0, copies
    black = np.zeros((64, 64, 3), np.uint8)
    group = group_near_copies(fingerprint_arrays(np.stack([black] * 40 + photos[1:])))
    assert len(set(group[:40])) == 1 and group[0] >= 0


def test_a_memory_baseline_above_the_model_is_flagged_whatever_the_share():
    # shifted variants of small photos are not linked by the thumbnails, yet a 1-nearest-neighbour beats the model
    assert measures_memory({"memory_accuracy": 0.924, "val_near_copy_share": 0.0}, model_accuracy=0.81)
    assert not measures_memory({"memory_accuracy": 0.70, "val_near_copy_share": 0.0}, model_accuracy=0.81)


def test_a_class_that_is_one_long_clip_stays_on_one_side(tmp_path):
    import signvision as sv

    rng = np.random.default_rng(4)
    root = tmp_path / "data"
    for k, label in enumerate(CLASSES):
        (root / label).mkdir(parents=True)
        if label == "a":  # one clip of 60 frames: longer than the group cap (25)
            for t, frame in enumerate(clip_frames(photo(k, rng, 64), 60, rng)):
                cv2.imwrite(str(root / label / f"clip_f{t}.png"), frame)
        else:
            for s in range(20):
                cv2.imwrite(str(root / label / f"still{s}.png"), photo(k, rng, 64))
    table, info = sv.split(root, seed=0)
    sides = table[table["img_IDS"].str.startswith("a/")]["fold"].unique()
    assert list(sides) == ["train"] and "a" in info.train_only_classes
