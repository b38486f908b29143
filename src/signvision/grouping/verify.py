"""The audit's copies: every image scanned once, exact copies by hash, near copies found and verified pixel by
pixel, and the verified pairs joined into duplicate groups (never chained) and sequences (chained: the frames
of a video).

    exact copies    the same file bytes, or the same decoded pixels (SHA-1 of each)
    near copies     two steps. Candidates: every image's nearest neighbours by three thumbnails, a plain one,
                    the central crops (so a copy zoomed in by up to 1.3x meets its original) and the
                    magnitude of the Fourier transform (which a shift does not change). Verification on the
                    images themselves: the best alignment over zooms of up to 1.32x and shifts of up to 10%
                    must correlate (>= `near_threshold`), and the fine detail must agree in every textured
                    tile of a 4x4 grid (>= `subject_agreement`), so that two different hands in front of one
                    wall are not copies even when the wall makes them correlate
    groups          an image and the images verified as its copies (`group_pairs`); chains of copies form a
                    sequence, which a split keeps on one side

The fast grouping every split runs is `nearcopies.py`: recall first, no pixel verification. This is the
audit's careful version, for deciding what to delete.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from signvision.config import AuditConfig
from signvision.data.images import decode_image, jpeg_frame, read_bytes, resize
from signvision.data.threads import cpu_threads
from signvision.errors import BadImage
from signvision.grouping.fingerprints import TINY, mutual, nearest, neighbour_links, thumbnail, unit
from signvision.grouping.groups import components
from signvision.progress import progress_bar

VERIFY_SIZE = 96  # verification compares images at up to this many pixels a side
VIDEO_FRAMES = 5  # a sequence of this many near-identical frames or more is called video-like
THUMB = 16  # candidate-search thumbnail side


@dataclass
class Scan:
    """What scanning every image once gives: readability, sizes, hashes, thumbnails, small copies."""

    ok: np.ndarray  # (N,) bool
    errors: list[str | None]
    height: np.ndarray
    width: np.ndarray
    channels: np.ndarray  # channels and bit depth of the file as stored
    bits: np.ndarray
    file_hash: list[str]
    pixel_hash: list[str]
    grey: list[np.ndarray | None]  # grey image, longest side <= VERIFY_SIZE, aspect kept
    thumbs: np.ndarray  # (N, THUMB*THUMB) float32, zero-mean, unit-norm
    small: np.ndarray  # (N, s, s, 3) uint8 for the mislabel model


def _scan_one(path: str, model_size: int):
    try:
        raw = read_bytes(path)
        rgb = decode_image(raw, path)  # the bytes already read, not the file again
    except BadImage as e:
        return {"error": str(e)}
    channels, bits = stored_depth(raw)
    h, w = rgb.shape[:2]
    scale = min(1.0, VERIFY_SIZE / max(h, w))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    thumb = zoomed_thumbnail(grey, 1.0)
    return {
        "error": None,
        "height": h,
        "width": w,
        "channels": channels,
        "bits": bits,
        "file_hash": hashlib.sha1(raw.tobytes()).hexdigest(),
        "pixel_hash": hashlib.sha1(rgb.tobytes()).hexdigest(),
        "grey": grey,
        "thumb": thumb,
        "small": resize(rgb, model_size),
    }


def stored_depth(raw: np.ndarray) -> tuple[int, int]:
    """(channels, bits per sample) of an image file as stored: a JPEG's from its frame header (a phone photo is
    not decoded a second time, at full size, to learn it is 3 x 8 bits), other formats' by decoding unchanged."""
    frame = jpeg_frame(raw) if raw[:2].tobytes() == b"\xff\xd8" else None
    if frame is not None:
        return frame[2], frame[3]
    stored = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    channels = 1 if stored is None or stored.ndim == 2 else stored.shape[2]
    return channels, 16 if stored is not None and stored.dtype == np.uint16 else 8


def scan_images(paths: list[str], model_size: int, progress: bool = True) -> Scan:
    """Decode every image once on a thread pool (progress bar) into a `Scan`."""
    n = len(paths)
    results = [None] * n
    with ThreadPoolExecutor(cpu_threads()) as pool:
        futures = pool.map(lambda p: _scan_one(p, model_size), paths, chunksize=32)
        for i, r in enumerate(progress_bar(futures, total=n, desc="scanning images", unit="img", show=progress)):
            results[i] = r
    ok = np.array([r["error"] is None for r in results])
    zeros_thumb = np.zeros(THUMB * THUMB, np.float32)
    zeros_small = np.zeros((model_size, model_size, 3), np.uint8)
    return Scan(
        ok=ok,
        errors=[r["error"] for r in results],
        height=np.array([r.get("height", 0) for r in results]),
        width=np.array([r.get("width", 0) for r in results]),
        channels=np.array([r.get("channels", 0) for r in results]),
        bits=np.array([r.get("bits", 0) for r in results]),
        file_hash=[r.get("file_hash", f"missing-{i}") for i, r in enumerate(results)],
        pixel_hash=[r.get("pixel_hash", f"missing-{i}") for i, r in enumerate(results)],
        grey=[r.get("grey") for r in results],
        thumbs=np.stack([r.get("thumb", zeros_thumb) for r in results]),
        small=np.stack([r.get("small", zeros_small) for r in results]),
    )


ZOOMS = (1.0, 1.04, 1.08, 1.12, 1.17, 1.22, 1.27, 1.32)  # a copy may be zoomed in this much (and shifted)
SHIFT = 0.1  # ... and shifted by up to this share of its side
BLOCKS = 4  # the subject check compares the aligned images in BLOCKS x BLOCKS tiles
THUMB_ZOOMS = (1.1, 1.2, 1.3)  # candidate search: thumbnails of central crops too, so zoomed copies meet


@dataclass
class Match:
    """How two grey images agree once aligned: `score` is the normalised cross-correlation (in [-1, 1]) at
    the best zoom and shift; `subject` the agreement of their fine detail in the tile where it is lowest
    (`subject_agreement`); `zoom` the zoom that aligned them."""

    score: float
    subject: float
    zoom: float = 1.0


def _best_alignment(image: np.ndarray, template: np.ndarray) -> tuple[float, tuple[int, int]]:
    if template.shape[0] > image.shape[0] or template.shape[1] > image.shape[1] or min(template.shape) < 4:
        return -1.0, (0, 0)
    result = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    _, score, _, loc = cv2.minMaxLoc(result)
    return float(score), loc


def subject_agreement(region: np.ndarray, template: np.ndarray, blocks: int = BLOCKS) -> float:
    """The lowest correlation, over the textured tiles of two aligned images, of their fine detail (each
    minus its Gaussian blur). A shared wall, light or frame is smooth or the same in both; a hand is
    detail, so two different hands before one background disagree in some tile (about 0 or below),
    while a copy agrees in every tile (0.75 or more after re-encoding, resizing, zooming)."""
    detail_a = (region - cv2.GaussianBlur(region, (0, 0), 2.0)).astype(np.float64)
    detail_b = (template - cv2.GaussianBlur(template, (0, 0), 2.0)).astype(np.float64)
    floor = 0.25 * max(float(detail_a.std()), float(detail_b.std()), 1e-6)
    h, w = detail_a.shape
    rows = np.array([i * h // blocks for i in range(blocks)])  # each tile's first row and column
    cols = np.array([j * w // blocks for j in range(blocks)])
    n = np.outer(np.diff(rows, append=h), np.diff(cols, append=w))  # (blocks, blocks) pixels per tile

    def tile_sums(x: np.ndarray) -> np.ndarray:  # (blocks, blocks) sum over each tile
        return np.add.reduceat(np.add.reduceat(x, rows, axis=0), cols, axis=1)

    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a, mean_b = tile_sums(detail_a) / n, tile_sums(detail_b) / n
        sd_a = np.sqrt(np.maximum(tile_sums(detail_a * detail_a) / n - mean_a**2, 0))
        sd_b = np.sqrt(np.maximum(tile_sums(detail_b * detail_b) / n - mean_b**2, 0))
        compared = (n >= 4) & ~((sd_a < floor) & (sd_b < floor))  # a flat tile in both: nothing to compare
        if (compared & ((sd_a < 1e-6) | (sd_b < 1e-6))).any():
            return 0.0  # detail in one image only
        corr = (tile_sums(detail_a * detail_b) / n - mean_a * mean_b) / (sd_a * sd_b)
    return float(min(1.0, np.clip(corr[compared], -1, 1).min(initial=1.0)))


def verify_pair(
    a: np.ndarray,
    b: np.ndarray,
    size_a: tuple[int, int],
    size_b: tuple[int, int],
    zoom_hints: set[float] | None = None,
    min_score: float = -1.0,
) -> Match:
    """How well two grey images agree pixel for pixel, allowing for what a copy goes through: re-encoding,
    a brightness change, a resize, a shift, a zoom of up to 1.32x combined with a shift (a crop resized
    back), or a crop at the same pixel scale. The best alignment's score, and the subject check.

    a, b: grey thumbnails (longest side <= VERIFY_SIZE); size_a, size_b: their original (h, w).
    zoom_hints: where the candidate searches saw the pair (1.0: as they are; z: one like the other's central
    1/z); only zooms near them are tried (all of ZOOMS when None), which keeps large audits fast.
    min_score: below this correlation the subject check is skipped (its result is then NaN).
    """
    s = max(a.shape + b.shape)
    a_sq = cv2.resize(a, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32)
    b_sq = cv2.resize(b, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32)
    best = (-2.0, None, None, 1.0, (0, 0))

    def try_zoom(image, other, zoom):
        nonlocal best
        side = round(s / zoom)  # `other` zoomed in by `zoom`: shrunk back, it lies somewhere inside `image`
        shrunk = other if side == s else cv2.resize(other, (side, side), interpolation=cv2.INTER_AREA)
        m = max(1, round(SHIFT * side))
        template = shrunk[m:-m, m:-m]
        score, loc = _best_alignment(image, template)
        if score > best[0]:
            best = (score, image, template, zoom, loc)

    zooms = ZOOMS if zoom_hints is None else [z for z in ZOOMS if any(abs(z - h) <= 0.045 for h in zoom_hints)]
    for image, other in ((a_sq, b_sq), (b_sq, a_sq)):
        for zoom in zooms:
            try_zoom(image, other, zoom)
    if best[3] > 1.0:  # refine the zoom between the grid's steps
        image = best[1]
        other = b_sq if image is a_sq else a_sq
        for delta in (-0.02, -0.01, 0.01, 0.02):
            try_zoom(image, other, best[3] + delta)
    # a crop at the same pixel scale: the smaller picture (by its original size) inside the larger one
    (big, big_size), (small, small_size) = sorted([(a, size_a), (b, size_b)], key=lambda t: -t[1][0] * t[1][1])
    scale = big.shape[1] / big_size[1]
    w, h = round(small_size[1] * scale), round(small_size[0] * scale)
    if 4 <= w <= big.shape[1] and 4 <= h <= big.shape[0] and (w, h) != big.shape[::-1]:
        template = cv2.resize(small, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[1:-1, 1:-1]
        score, loc = _best_alignment(big.astype(np.float32), template)
        if score > best[0]:
            best = (score, big.astype(np.float32), template, 1.0, loc)
    score, image, template, zoom, (x, y) = best
    if template is None:
        return Match(-1.0, -1.0)
    if score < min_score:  # not a copy whatever the tiles say: skip the (slower) subject check
        return Match(score, float("nan"), zoom)
    region = image[y : y + template.shape[0], x : x + template.shape[1]]
    return Match(score, subject_agreement(region, template), zoom)


def zoomed_thumbnail(grey: np.ndarray, zoom: float) -> np.ndarray:
    """The candidate-search thumbnail (THUMB x THUMB, zero mean, unit norm) of the central 1/zoom of an image."""
    h, w = grey.shape
    ch, cw = max(2, round(h / zoom)), max(2, round(w / zoom))
    y, x = (h - ch) // 2, (w - cw) // 2
    return thumbnail(grey[y : y + ch, x : x + cw], THUMB)


_WINDOW = np.outer(np.hanning(32), np.hanning(32)).astype(np.float32)


def shift_invariant_descriptor(grey: np.ndarray, k: int = 8) -> np.ndarray:
    """Log magnitudes of the lowest (2k)^2 spatial frequencies of a windowed 32x32 thumbnail, zero mean, unit
    norm: a moved copy keeps its spectrum, so it is found even where its thumbnail no longer lines up."""
    t = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    t = (t - t.mean()) * _WINDOW
    spectrum = np.fft.fftshift(np.abs(np.fft.fft2(t)))[16 - k : 16 + k, 16 - k : 16 + k]
    return unit(np.log1p(spectrum))


def find_duplicates(
    scan: Scan, cfg: AuditConfig, progress: bool = True
) -> tuple[list[tuple[int, int, str, float]], int]:
    """Pairs (i, j, kind, score) of copies among the readable images; kind is 'exact' or 'near'.
    Also returns how many candidate pairs were verified."""

    idx = np.flatnonzero(scan.ok)
    pairs: dict[tuple[int, int], tuple[str, float]] = {}
    for hashes in (scan.file_hash, scan.pixel_hash):
        first: dict[str, int] = {}
        for i in idx:
            j = first.setdefault(hashes[i], i)
            if j != i:
                pairs[(j, i)] = ("exact", 1.0)
    if len(idx) < 2:
        return [(i, j, k, s) for (i, j), (k, s) in pairs.items()], []
    a, b, s = neighbour_links(scan.thumbs[idx], cfg.neighbours)
    keep = s >= cfg.candidate_similarity
    a, b = a[keep], b[keep]
    keep = mutual(a, b)
    # mutual neighbours only (fingerprints.mutual); candidate pair -> the zooms at which the searches saw it
    # (1.0: as they are)
    mutual_pairs = zip(idx[a[keep]].tolist(), idx[b[keep]].tolist())
    candidates = {(i, j): {1.0} for i, j in mutual_pairs if (i, j) not in pairs}
    # zoomed copies: a copy zoomed in by z looks like the central 1/z of its original, so every image's
    # thumbnail is also looked up among the thumbnails of the others' central crops (its nearest 3);
    # shifted copies: the magnitude of the Fourier transform does not change when a picture moves, so each
    # image's nearest 3 by that descriptor too
    crops = np.concatenate([np.stack([zoomed_thumbnail(scan.grey[i], z) for i in idx]) for z in THUMB_ZOOMS])
    spectra = np.stack([shift_invariant_descriptor(scan.grey[i]) for i in idx])
    zoom_of_row = np.repeat(THUMB_ZOOMS, len(idx))
    searches = (
        (crops, np.tile(idx, len(THUMB_ZOOMS)), zoom_of_row, scan.thumbs[idx], cfg.zoom_candidate_similarity),
        (spectra, idx, np.ones(len(idx)), spectra, cfg.shift_candidate_similarity),
    )
    for index, owner, zoom, query, threshold in searches:
        similarity, nbr = nearest(index, query, 3)
        for row in range(len(idx)):
            for col in range(similarity.shape[1]):
                i, j = sorted((int(idx[row]), int(owner[nbr[row, col]])))
                if i != j and similarity[row, col] >= threshold and (i, j) not in pairs:
                    candidates.setdefault((i, j), set()).add(float(zoom[nbr[row, col]]))
    candidates_list = sorted(candidates)

    def threshold(i: int, j: int) -> float:  # tiny images look alike more easily
        tiny = min(max(scan.grey[i].shape), max(scan.grey[j].shape)) < TINY
        return cfg.small_near_threshold if tiny else cfg.near_threshold

    def check(pair):
        i, j = pair
        size_i = (int(scan.height[i]), int(scan.width[i]))
        size_j = (int(scan.height[j]), int(scan.width[j]))
        return verify_pair(scan.grey[i], scan.grey[j], size_i, size_j, candidates[pair], min_score=threshold(i, j))

    with ThreadPoolExecutor(cpu_threads()) as pool:
        checks = pool.map(check, candidates_list, chunksize=64)
        matches = list(
            progress_bar(checks, total=len(candidates_list), desc="verifying near copies", unit="pair", show=progress)
        )
    checked = []
    for (i, j), match in zip(candidates_list, matches):
        copy = match.score >= threshold(i, j) and match.subject >= cfg.subject_agreement
        if copy:
            pairs[(i, j)] = ("near", match.score)
        checked.append((i, j, match, copy))
    return [(i, j, kd, s) for (i, j), (kd, s) in sorted(pairs.items())], checked


def group_pairs(n: int, pairs: list[tuple[int, int, str, float]]) -> tuple[np.ndarray, dict[int, str], np.ndarray]:
    """Duplicate groups and sequences from verified copy pairs.

    A *sequence* is a connected component of the copy graph (scipy): frames of one video chain into one,
    and `split --audit` keeps it on one side. A *duplicate group* never chains: it is a centre (the image
    with the most verified copies) and the images verified as its copies, taken greedily, so that every
    member is a copy of the centre. Returns (group per image, -1 = none; each group's kind, exact if every
    link to its centre is exact; sequence per image, -1 = none)."""
    component = components(n, [i for i, _, _, _ in pairs], [j for _, j, _, _ in pairs])
    sizes = np.bincount(component, minlength=n)
    sequence = np.full(n, -1)
    numbering: dict[int, int] = {}
    for i in range(n):
        if sizes[component[i]] > 1:
            sequence[i] = numbering.setdefault(int(component[i]), len(numbering) + 1)
    links: dict[int, dict[int, str]] = {}
    for i, j, kind, _ in pairs:
        links.setdefault(i, {})[j] = kind
        links.setdefault(j, {})[i] = kind
    group = np.full(n, -1)
    kinds: dict[int, str] = {}
    for seq in range(1, len(numbering) + 1):
        remaining = set(np.flatnonzero(sequence == seq).tolist())
        while len(remaining) > 1:
            centre = max(remaining, key=lambda v: (len(links.get(v, {}).keys() & remaining), -v))
            copies = links.get(centre, {}).keys() & remaining
            if not copies:
                break
            number = len(kinds) + 1
            for v in (centre, *copies):
                group[v] = number
            kinds[number] = "exact" if all(links[centre][v] == "exact" for v in copies) else "near"
            remaining -= {centre, *copies}
    return group, kinds, sequence
