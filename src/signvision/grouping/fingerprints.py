"""What both near-copy detectors compare: small zero-mean thumbnails and their mutual nearest neighbours.

The fast grouping every split runs (`nearcopies.py`) and the audit's careful one (`verify.py`) find their
candidate pairs the same way, written once here:

    unit               any array -> flattened, zero mean, unit length: dot products are cosines
    thumbnail          a grey image -> its SIDE x SIDE thumbnail as a unit vector
    nearest            each query's k nearest unit vectors, as cosines
    neighbour_links    each vector's k nearest others, as directed links (i, j, cosine)
    mutual             the links whose reverse is there too, once each (i < j): a copy is among its
                       original's nearest images and the other way round, which stops chains of merely
                       similar images from growing through dense regions
    TINY               images under this many pixels a side look alike more easily (stricter thresholds)
"""

from __future__ import annotations

import cv2
import numpy as np

SIDE = 16  # thumbnail side: 256 numbers per image
TINY = 48  # px: an image with a smaller side than this is "tiny"


def unit(values: np.ndarray) -> np.ndarray:
    """Flattened, zero mean, unit norm (float32): a descriptor whose dot products are cosines."""
    v = values.astype(np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def thumbnail(grey: np.ndarray, side: int = SIDE) -> np.ndarray:
    """A grey image -> its side x side thumbnail (area-averaged), flattened, zero mean, unit length."""
    return unit(cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA))


def nearest(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, index) of each query's k nearest vectors (unit vectors: cosine = 1 - distance^2 / 2)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(vectors))
    distance, index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(vectors).kneighbors(queries)
    return 1 - distance.astype(np.float32) ** 2 / 2, index


def neighbour_links(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each vector's k nearest other vectors as directed links: (i, j, cosine) arrays, i != j."""
    similarity, neighbour = nearest(vectors, vectors, k + 1)
    a = np.repeat(np.arange(len(vectors)), neighbour.shape[1])
    b, s = neighbour.ravel(), similarity.ravel()
    keep = a != b
    return a[keep], b[keep], s[keep]


def mutual(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which directed links (a[k], b[k]) also run the other way, keeping each pair once (a < b)."""
    directed = set(zip(a.tolist(), b.tolist()))
    both = np.array([(j, i) in directed for i, j in zip(a.tolist(), b.tolist())], bool)
    return both & (a < b) if len(a) else np.zeros(0, bool)
