"""Near copies and neighbouring frames: the fast grouping that keeps them on one side of a split, and the leak
check of a split.

Real sign-language photo sets are bursts and video frames of one signer in one place. A random split puts
near-identical neighbours on both sides, and the validation score then measures memory, not recognition.
This module finds such images in seconds (cheap enough to run before every split) and measures how much a
given split leaks:

    fingerprint_images  every image once, decoded small and grey (JPEGs at 1/2-1/8 size while decoding),
                        as a 16x16 thumbnail with its mean removed and unit length: the cosine of two
                        thumbnails ignores brightness and contrast and survives small moves and zooms
    group_near_copies   each image's nearest neighbours by that cosine (scikit-learn); two images are
                        linked when each is among the other's nearest and their cosine is at least
                        `SIMILAR` (`SIMILAR_TINY` for images under `TINY` px, which look alike far more
                        easily); links are joined strongest first into groups, so that the frames of a
                        clip chain into one group, but a link that would make a group larger than
                        `max_group` is left out (no dense region grows into one giant group)
    leak_check          for a split: the share of validation images whose nearest training image is such
                        a near copy, and the memory baseline, the accuracy of that nearest training
                        image's label (a 1-nearest-neighbour on thumbnails): when near copies are common
                        and it comes near the model's accuracy, the validation figure measures memory

Recall matters more than precision here: two distinct photos joined by mistake only make the split a little
coarser, while one missed copy inflates the validation score. `signvision audit` verifies copies pixel
by pixel when precision matters (what to delete); its groups, when given, are joined with these.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signvision.data.images import read_grey_small
from signvision.data.threads import cpu_threads
from signvision.errors import OptionError
from signvision.grouping.fingerprints import SIDE, TINY, mutual, nearest, neighbour_links, thumbnail
from signvision.progress import progress_bar

SIMILAR = 0.92  # thumbnail cosine that links two photos (measured: docs/benchmarks.md#near-copy-grouping)
SIMILAR_TINY = 0.995  # ... two images of which one is under TINY px a side
NEIGHBOURS = 10  # nearest images looked at per image


@dataclass
class Fingerprints:
    """One thumbnail per image: `vectors` (N, 256) float32, zero mean, unit length (zeros where the file
    could not be read, `ok` False); `tiny` (N,) whether the image is under TINY px a side."""

    vectors: np.ndarray
    ok: np.ndarray
    tiny: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)

    def subset(self, rows: np.ndarray) -> Fingerprints:
        return Fingerprints(self.vectors[rows], self.ok[rows], self.tiny[rows])


def fingerprint_images(
    paths: list[str], *, threads: int | None = None, desc: str = "finding near copies"
) -> Fingerprints:
    """Fingerprints of image files (decoded on a thread pool; an unreadable file is marked, not raised:
    the training data's own decoding reports it with its name)."""

    def one(path: str):
        try:
            grey, smaller_side = read_grey_small(path)
        except Exception:  # broken, missing, too large: left out of every group
            return None
        return thumbnail(grey), smaller_side < TINY

    n = len(paths)
    vectors = np.zeros((n, SIDE * SIDE), np.float32)
    ok, tiny = np.zeros(n, bool), np.zeros(n, bool)
    with ThreadPoolExecutor(threads or cpu_threads()) as pool:
        results = pool.map(one, paths, chunksize=64)
        for i, r in enumerate(progress_bar(results, total=n, desc=desc, unit="img", min_total=2000)):
            if r is not None:
                vectors[i], tiny[i], ok[i] = r[0], r[1], True
    return Fingerprints(vectors, ok, tiny)


def fingerprint_arrays(images: np.ndarray, original_side: int | None = None) -> Fingerprints:
    """Fingerprints of decoded images, uint8 (N, H, W, 3) RGB or (N, H, W) grey; `original_side` is the
    smaller side of the files they came from (default: theirs)."""
    greys = images if images.ndim == 3 else images.mean(axis=3).astype(np.uint8)
    vectors = np.stack([thumbnail(g) for g in greys]) if len(greys) else np.zeros((0, SIDE * SIDE), np.float32)
    side = original_side if original_side is not None else min(images.shape[1:3])
    return Fingerprints(vectors, np.ones(len(images), bool), np.full(len(images), side < TINY))


def links(fp: Fingerprints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The near-copy links (i, j, cosine), i < j: mutual nearest neighbours at or above the threshold."""
    rows = np.flatnonzero(fp.ok)
    if len(rows) < 2:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32)
    a, b, s = neighbour_links(fp.vectors[rows], NEIGHBOURS)
    tiny = fp.tiny[rows]
    keep = s >= np.where(tiny[a] | tiny[b], SIMILAR_TINY, SIMILAR)
    a, b, s = a[keep], b[keep], s[keep]
    keep = mutual(a, b)
    return rows[a[keep]], rows[b[keep]], s[keep]


def identical_pairs(fp: Fingerprints) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (first image, each other image) of readable images whose thumbnails are the same (to 1e-3)."""
    rows = np.flatnonzero(fp.ok)
    keys = np.round(fp.vectors[rows], 3)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    others = np.flatnonzero(first[inverse] != np.arange(len(rows)))
    return rows[first[inverse[others]]], rows[others]


def default_max_group(n: int) -> int:
    """The largest group the grouping makes: 2% of the images, at least 25."""
    return max(25, round(0.02 * n))


def group_near_copies(fp: Fingerprints, *, max_group: int | None = None) -> np.ndarray:
    """Group per image (-1: no near copy), numbered 0, 1, ... by first member: near copies and neighbouring
    frames, chained, strongest links first, no group over `max_group` images, except that identical images
    are one group however many there are."""
    n = len(fp)
    cap = max_group or default_max_group(n)
    a, b, s = links(fp)
    parent, size = np.arange(n), np.ones(n, int)
    # identical thumbnails (byte copies, re-saves, blank frames) are one group however many there are: the
    # nearest-neighbour search sees only NEIGHBOURS of them, and the cap is for chains of similar frames
    same_a, same_b = identical_pairs(fp)
    a, b, s = np.r_[same_a, a], np.r_[same_b, b], np.r_[np.full(len(same_a), 2.0), s]
    uncapped = s > 1  # the identical pairs

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k in np.argsort(-s, kind="stable"):
        ra, rb = root(int(a[k])), root(int(b[k]))
        if ra != rb and (size[ra] + size[rb] <= cap or uncapped[k]):
            if size[ra] < size[rb]:
                ra, rb = rb, ra
            parent[rb], size[ra] = ra, size[ra] + size[rb]
    roots = np.array([root(i) for i in range(n)])
    counts = np.bincount(roots, minlength=n)
    group = np.full(n, -1)
    numbering: dict[int, int] = {}
    for i in range(n):
        if counts[roots[i]] > 1:
            group[i] = numbering.setdefault(int(roots[i]), len(numbering))
    return group


def whole_clip_classes(group: np.ndarray, fp: Fingerprints, labels) -> np.ndarray:
    """`group` with each class that is one clip made one group: a class all of whose images chain into one
    component (without the cap) would otherwise be cut by the cap into pieces that land on both sides of the
    split; as one group it stays in training, like any class of a single group."""
    labels = np.asarray(labels)
    # a candidate: every image grouped, in more than one group (the cap cut it); most data has none, and then
    # the links are not searched again
    candidates = [
        rows
        for rows in (np.flatnonzero(labels == label) for label in np.unique(labels))
        if len(rows) > 1 and (group[rows] >= 0).all() and len(set(group[rows].tolist())) > 1
    ]
    if not candidates:
        return group
    whole = group_near_copies(fp, max_group=max(len(fp), 1))
    group = group.copy()
    for rows in candidates:
        if len(set(whole[rows].tolist())) == 1:
            group[rows] = group.max() + 1
    return group


def describe_groups(group: np.ndarray) -> dict:
    """How many images are grouped, in how many groups, and the largest group's size."""
    grouped = group >= 0
    sizes = np.bincount(group[grouped]) if grouped.any() else np.zeros(0, int)
    return {
        "images": int(len(group)),
        "grouped_images": int(grouped.sum()),
        "groups": int((sizes > 0).sum()),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
    }


def leak_check(fp: Fingerprints, labels: np.ndarray, is_val: np.ndarray) -> dict:
    """How much a split leaks: the share of validation images that have a near copy in training, and the
    memory baseline (accuracy of the label of each validation image's nearest training image)."""
    labels = np.asarray(labels)
    train = np.flatnonzero(~is_val & fp.ok)
    val = np.flatnonzero(is_val)
    result = {"val_images": int(len(val)), "val_near_copy_share": None, "memory_accuracy": None}
    result["copy_label_agreement"] = None
    if len(train) == 0 or len(val) == 0:
        return result
    similarity, closest = nearest(fp.vectors[train], fp.vectors[val], 1)
    similarity, closest = similarity[:, 0], train[closest[:, 0]]
    threshold = np.where(fp.tiny[val] | fp.tiny[closest], SIMILAR_TINY, SIMILAR)
    copied = (similarity >= threshold) & fp.ok[val]
    same = labels[closest] == labels[val]
    result["val_near_copy_share"] = float(copied.mean())
    result["memory_accuracy"] = float(same.mean())
    result["copy_label_agreement"] = float(same[copied].mean()) if copied.any() else None
    return result


def near_copies_of(reference: Fingerprints, queries: Fingerprints) -> np.ndarray:
    """Which of `queries` have a near copy (or an exact one) among `reference`: the thumbnail likeness that links
    two photos into one group (bool per query; an unreadable image has none)."""
    ref = np.flatnonzero(reference.ok)
    if len(ref) == 0 or len(queries.vectors) == 0:
        return np.zeros(len(queries.vectors), bool)
    similarity, closest = nearest(reference.vectors[ref], queries.vectors, 1)
    threshold = np.where(queries.tiny | reference.tiny[ref[closest[:, 0]]], SIMILAR_TINY, SIMILAR)
    return (similarity[:, 0] >= threshold) & queries.ok


def measures_memory(leak: dict, model_accuracy: float | None, margin: float = 0.05, share: float = 0.1) -> bool:
    """Whether a validation accuracy may measure memory: at least `share` of the validation images have a near
    copy in training and remembering the nearest training image scores within `margin` of the model; or,
    whatever the share, remembering scores better than the model by more than `margin` / 2 (copies the
    thumbnails do not link, such as shifted variants of small photos, leak just the same; or the model is
    weaker than a lookup)."""
    memory, copied = leak.get("memory_accuracy"), leak.get("val_near_copy_share")
    if memory is None or copied is None or model_accuracy is None:
        return False
    return (copied >= share and memory >= model_accuracy - margin) or memory > model_accuracy + margin / 2


def near_copy_groups(paths) -> np.ndarray:
    """The near copies and neighbouring frames among image files, as `split` finds them.

    Args:
        paths: image files (any iterable of paths).

    Returns:
        one group number per file (int array; -1 where the image has no near copy).

    Example:
        >>> paths = read_data("../shared/data/sign-digits").train["path"]
        >>> groups = near_copy_groups(paths)
        >>> int((groups >= 0).sum()), len(set(groups[groups >= 0]))     # images in a group, groups
        (70, 24)
    """
    if isinstance(paths, (str, Path)):
        raise OptionError("give a list of image files, not one name", option="paths", value=paths)
    return group_near_copies(fingerprint_images([str(p) for p in paths]))
