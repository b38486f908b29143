"""Groups of images that must stay on one side of a split: one way to join them, one way to say "no group".

A grouping is one value per image. The near-copy grouping and the audit number their groups with integers
(-1: the image is in no group); a split keeps them as strings (split.csv's `group` column, "" or NaN: no
group). Wherever a group is needed as a key (a split, folds, the bootstrap over groups), an image in no
group is a group of its own, keyed "solo:<its id>": `group_keys` is the one place that rule is written.

    group_keys   a grouping + the image ids -> one string key per image
    components   connected components of pairs of images (union of every link)
    join_groups  several groupings -> one: two images share a group when any grouping puts them together
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NO_GROUP = -1  # an integer grouping's "in no group"
SOLO = "solo:"  # the key prefix of an image in no group


def group_keys(groups, ids) -> np.ndarray:
    """One key per image: its group (as a string), or "solo:<id>" for an image in no group (an integer
    grouping's -1, a string grouping's "" or NaN; no grouping at all: every image alone)."""
    ids = pd.Series(ids).astype(str).to_numpy()
    if groups is None:
        return np.array([SOLO + i for i in ids], dtype=object)
    values = pd.Series(groups).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(values) and not values.isna().any():
        alone = (values < 0).to_numpy()
        keys = values.astype(int).astype(str).to_numpy()
    else:
        alone = (values.isna() | (values.astype(str) == "")).to_numpy()
        keys = values.astype(str).to_numpy()
    return np.where(alone, np.char.add(SOLO, ids.astype(str)), keys).astype(object)


def components(n: int, rows, cols) -> np.ndarray:
    """The connected component of each of `n` images, linked by the pairs (rows[k], cols[k])."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(rows)), (list(rows), list(cols))), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def join_groups(*labelings: pd.Series | None) -> pd.Series | None:
    """One grouping from several (near copies, an audit's sequences): two images share a group when any
    labeling puts them together. NaN = alone. None when every labeling is None."""
    given = [pd.Series(g).reset_index(drop=True) for g in labelings if g is not None]
    if not given:
        return None
    n = len(given[0])
    rows, cols = [], []
    for g in given:
        for members in g.dropna().groupby(g.dropna()).indices.values():
            index = g.dropna().index.to_numpy()[members]
            rows += index[:-1].tolist()
            cols += index[1:].tolist()
    component = components(n, rows, cols)
    sizes = np.bincount(component, minlength=n)
    return pd.Series([f"g{c}" if sizes[c] > 1 else np.nan for c in component], dtype=object)
