"""The split: stratified, seeded, the right size, and copies of one image never on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signvision.errors import SignvisionError
from signvision.grouping.groups import join_groups
from signvision.grouping.splits import make_split, read_split, single_group_classes


@pytest.mark.slow
def test_stratified_and_seeded():
    ids = pd.Series([f"i{k}" for k in range(300)])
    labels = pd.Series(np.repeat(["a", "b", "c"], [150, 90, 60]))
    split = make_split(ids, labels, val_fraction=0.33, seed=3)
    val = split["fold"] == "val"
    assert abs(val.mean() - 0.33) < 0.01
    for label, n in [("a", 150), ("b", 90), ("c", 60)]:
        assert abs(val[labels == label].sum() - 0.33 * n) <= 1.5
    assert split.equals(make_split(ids, labels, val_fraction=0.33, seed=3))
    assert not split.equals(make_split(ids, labels, val_fraction=0.33, seed=4))


def test_groups_never_straddle():
    rng = np.random.default_rng(0)
    ids = pd.Series([f"i{k}" for k in range(200)])
    labels = pd.Series(rng.choice(["a", "b"], 200))
    groups = pd.Series([f"g{k // 4}" if k < 80 else None for k in range(200)])  # 20 groups of 4 copies
    for seed in range(5):
        split = make_split(ids, labels, seed=seed, groups=groups)
        folds = split.assign(group=groups).dropna().groupby("group")["fold"].nunique()
        assert (folds == 1).all()
        assert 0.25 < (split["fold"] == "val").mean() < 0.41


def test_read_split_checks(tmp_path):
    ids = pd.Series(["a", "b", "c"])
    pd.DataFrame({"img_IDS": ["a", "b"], "fold": ["train", "val"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(SignvisionError, match="1 images of the data are not in it"):
        read_split(tmp_path / "s.csv", ids)
    pd.DataFrame({"img_IDS": ["a", "b", "c"], "fold": ["train", "val", "test"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(SignvisionError, match="row 4: fold 'test'"):
        read_split(tmp_path / "s.csv", ids)
    with pytest.raises(SignvisionError, match="val_fraction=1.5"):
        make_split(ids, ids, val_fraction=1.5)


def test_a_class_in_one_group_stays_in_training():
    ids = pd.Series([f"i{k}" for k in range(60)])
    labels = pd.Series(["a"] * 25 + ["b"] * 25 + ["c"] * 10)
    groups = pd.Series([None] * 50 + ["clip"] * 10)  # every image of c is one clip
    for seed in range(5):
        split = make_split(ids, labels, seed=seed, groups=groups)
        assert (split.loc[labels == "c", "fold"] == "train").all()
        assert set(split.loc[split["fold"] == "val"].index.map(labels)) == {"a", "b"}
    assert single_group_classes(labels, groups) == ["c"]
    assert list(split["group"].iloc[48:52]) == ["", "", "clip", "clip"]


def test_join_groups_links_through_either_grouping():
    near = pd.Series(["n1", "n1", None, None, "n2", None])
    audit = pd.Series([None, "a1", "a1", None, None, None])
    joined = join_groups(near, audit)
    assert joined[0] == joined[1] == joined[2]  # 0-1 near copies, 1-2 in one audit sequence
    assert pd.isna(joined[3]) and pd.isna(joined[4]) and pd.isna(joined[5])  # a group of one is no group
    assert join_groups(None, None) is None


def test_split_data_reports_groups_and_leaks(tmp_path):
    from test_nearcopies import write_clips

    from signvision.grouping.splits import split as split_data

    data = write_clips(tmp_path / "clips", clips_per_class=4, stills=6)
    split, info = split_data(data, val_fraction=0.33, seed=0)
    assert info.grouping["groups"] == 12 and info.grouping["largest_group"] == 6
    assert info.leak["val_near_copy_share"] == 0.0 and "12 groups" in info.describe()
    random_split, random_info = split_data(data, split_by="random", seed=0)
    assert random_info.leak["val_near_copy_share"] > 0.3 and "warning: a random split" in random_info.describe()


def test_a_split_of_two_images_a_class_leaves_every_class_a_training_image(tmp_path):
    from helpers import make_zindi

    from signvision.data.tables import read_data
    from signvision.grouping.splits import split

    data = make_zindi(tmp_path / "z2", n_per_class=2)
    labels = read_data(data).train[["img_IDS", "Label"]]
    for seed in range(6):
        drawn = split(data, seed=seed).table.merge(labels)
        trained = drawn[drawn["fold"] == "train"].groupby("Label").size()
        assert len(trained) == labels["Label"].nunique(), (seed, drawn)  # `train --split` takes it


def test_what_a_split_says_of_itself(tmp_path):
    from helpers import make_zindi

    from signvision.errors import DataError
    from signvision.grouping.splits import SplitInfo, make_split

    grouping = {"images": 100, "grouped_images": 30, "groups": 5, "largest_group": 8}
    said = SplitInfo("random", grouping=grouping).describe()
    assert "with the audit's copies and sequences" in said and "each kept on one side" in said  # they were
    assert "not looked for" in SplitInfo("random", grouping={**grouping, "grouped_images": 0}).describe()
    with pytest.raises(DataError, match="3 classes each have one image"):
        make_split(pd.Series(["a", "b", "c"]), pd.Series(["x", "y", "z"]))
    data = make_zindi(tmp_path / "z", n_per_class=3)
    import signvision as sv

    with pytest.raises(sv.OptionError, match="not a list"):
        sv.train([str(p) for p in (data / "Images").glob("*.jpg")], epochs=1)
    with pytest.raises(sv.OptionError, match="not a dict"):
        sv.audit({"data": str(data)})
