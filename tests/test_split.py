"""The split: stratified, seeded, the right size, and copies of one image never on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signvision.errors import UserError
from signvision.split import make_split, read_split


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
    with pytest.raises(UserError, match="1 images of the data are not in it"):
        read_split(tmp_path / "s.csv", ids)
    pd.DataFrame({"img_IDS": ["a", "b", "c"], "fold": ["train", "val", "test"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(UserError, match="row 4: fold 'test'"):
        read_split(tmp_path / "s.csv", ids)
    with pytest.raises(UserError, match="val_fraction=1.5"):
        make_split(ids, ids, val_fraction=1.5)
