"""The data audit: broken files, exact and near duplicates, conflicting labels, likely mislabels, and
test images that leak from the training set. `signvision audit --data DIR --out AUDIT`.

How each finding is made:

    broken          the file is missing, empty, not an image, or a truncated JPEG (`data.read_image`)
    exact copies    the same file bytes, or the same decoded pixels (SHA-1 of each)
    near copies     two steps. Candidates: every image's nearest neighbours (scikit-learn) by cosine
                    similarity of a 16x16 grey thumbnail with its mean removed, which ignores brightness
                    shifts and survives re-encoding and resizing. Verification: the two images
                    themselves, compared at up to 96 px by normalised cross-correlation
                    (`cv2.matchTemplate`), under two hypotheses: the same picture resized (both squashed
                    to one size, small shifts allowed) or one a crop of the other at the same pixel scale.
                    Sign photos share plain backgrounds, so thumbnails alone would join different photos;
                    the verification keeps only pairs whose pixels really agree (score >= 0.965).
                    Verified pairs are joined into groups (connected components).
    conflicts       groups whose training images carry different labels
    mislabels       out-of-fold probabilities from k-fold cross-validation of a small CNN (LeNet, copies
                    kept within one fold), given to cleanlab's `find_label_issues`; the suggested label
                    is the model's, the score is 1 - cleanlab's self-confidence label quality (higher is
                    more suspect)
    leakage         Test.csv images in a group with training images

Outputs in AUDIT: duplicates.csv, label_issues.csv, summary.json, clean.csv and audit.html (one page,
thumbnails embedded, opens offline).
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from signvision.config import AuditConfig
from signvision.errors import BadImage, UserError, check_writable_folder
from signvision.images import decode_image, read_bytes, read_image, resize
from signvision.pages import escape, img_tag, write_page
from signvision.progress import show_progress
from signvision.runtime import cpu_threads
from signvision.tables import read_data_of

VERIFY_SIZE = 96  # verification compares images at up to this many pixels a side
VIDEO_FRAMES = 5  # a sequence of this many near-identical frames or more is called video-like
THUMB = 16  # candidate-search thumbnail side


# ----------------------------------------------------------------------------------------------------
# Scanning: decode every image once
# ----------------------------------------------------------------------------------------------------
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
    stored = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)  # channels and depth as stored
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
        "channels": 1 if stored is None or stored.ndim == 2 else stored.shape[2],
        "bits": 16 if stored is not None and stored.dtype == np.uint16 else 8,
        "file_hash": hashlib.sha1(raw.tobytes()).hexdigest(),
        "pixel_hash": hashlib.sha1(rgb.tobytes()).hexdigest(),
        "grey": grey,
        "thumb": thumb,
        "small": resize(rgb, model_size),
    }


def scan_images(paths: list[str], model_size: int, progress: bool = True) -> Scan:
    """Decode every image once on a thread pool (progress bar) into a `Scan`."""
    n = len(paths)
    results = [None] * n
    with ThreadPoolExecutor(cpu_threads()) as pool:
        futures = pool.map(lambda p: _scan_one(p, model_size), paths, chunksize=32)
        for i, r in enumerate(tqdm(futures, total=n, desc="scanning images", unit="img", disable=not progress)):
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


# ----------------------------------------------------------------------------------------------------
# Duplicates
# ----------------------------------------------------------------------------------------------------
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
    detail_a = region - cv2.GaussianBlur(region, (0, 0), 2.0)
    detail_b = template - cv2.GaussianBlur(template, (0, 0), 2.0)
    floor = 0.25 * max(float(detail_a.std()), float(detail_b.std()), 1e-6)
    h, w = detail_a.shape
    lowest = 1.0
    for i in range(blocks):
        for j in range(blocks):
            ta = detail_a[i * h // blocks : (i + 1) * h // blocks, j * w // blocks : (j + 1) * w // blocks].ravel()
            tb = detail_b[i * h // blocks : (i + 1) * h // blocks, j * w // blocks : (j + 1) * w // blocks].ravel()
            if ta.size < 4 or (ta.std() < floor and tb.std() < floor):
                continue  # a flat tile in both: nothing to compare
            if ta.std() < 1e-6 or tb.std() < 1e-6:
                return 0.0  # detail in one image only
            lowest = min(lowest, float(np.corrcoef(ta, tb)[0, 1]))
    return lowest


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


def _unit(values: np.ndarray) -> np.ndarray:
    """Flattened, zero mean, unit norm (float32): a descriptor whose dot products are cosines."""
    v = values.astype(np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def zoomed_thumbnail(grey: np.ndarray, zoom: float) -> np.ndarray:
    """The candidate-search thumbnail (THUMB x THUMB, zero mean, unit norm) of the central 1/zoom of an image."""
    h, w = grey.shape
    ch, cw = max(2, round(h / zoom)), max(2, round(w / zoom))
    y, x = (h - ch) // 2, (w - cw) // 2
    return _unit(cv2.resize(grey[y : y + ch, x : x + cw], (THUMB, THUMB), interpolation=cv2.INTER_AREA))


_WINDOW = np.outer(np.hanning(32), np.hanning(32)).astype(np.float32)


def shift_invariant_descriptor(grey: np.ndarray, k: int = 8) -> np.ndarray:
    """Log magnitudes of the lowest (2k)^2 spatial frequencies of a windowed 32x32 thumbnail, zero mean, unit
    norm: a moved copy keeps its spectrum, so it is found even where its thumbnail no longer lines up."""
    t = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    t = (t - t.mean()) * _WINDOW
    spectrum = np.fft.fftshift(np.abs(np.fft.fft2(t)))[16 - k : 16 + k, 16 - k : 16 + k]
    return _unit(np.log1p(spectrum))


def find_duplicates(
    scan: Scan, cfg: AuditConfig, progress: bool = True
) -> tuple[list[tuple[int, int, str, float]], int]:
    """Pairs (i, j, kind, score) of copies among the readable images; kind is 'exact' or 'near'.
    Also returns how many candidate pairs were verified."""
    from sklearn.neighbors import NearestNeighbors

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
    k = min(cfg.neighbours + 1, len(idx))
    nn = NearestNeighbors(n_neighbors=k).fit(scan.thumbs[idx])
    dist, nbr = nn.kneighbors(scan.thumbs[idx])
    similarity = 1 - dist**2 / 2  # unit vectors: cosine from Euclidean distance
    directed = set()
    for row in range(len(idx)):
        for col in range(1, k):
            if similarity[row, col] >= cfg.candidate_similarity and nbr[row, col] != row:
                directed.add((int(idx[row]), int(idx[nbr[row, col]])))
    # mutual neighbours only: a copy is among its original's nearest images and the other way round,
    # which stops chains of merely similar images from growing through dense regions
    # candidate pair -> the zooms at which the searches saw it (1.0: as they are)
    candidates = {(i, j): {1.0} for i, j in directed if i < j and (j, i) in directed and (i, j) not in pairs}
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
        dist, nbr = NearestNeighbors(n_neighbors=min(3, len(index))).fit(index).kneighbors(query)
        for row in range(len(idx)):
            for col in range(dist.shape[1]):
                i, j = sorted((int(idx[row]), int(owner[nbr[row, col]])))
                if i != j and 1 - dist[row, col] ** 2 / 2 >= threshold and (i, j) not in pairs:
                    candidates.setdefault((i, j), set()).add(float(zoom[nbr[row, col]]))
    candidates_list = sorted(candidates)

    def threshold(i: int, j: int) -> float:  # tiny images look alike more easily
        tiny = min(max(scan.grey[i].shape), max(scan.grey[j].shape)) < 48
        return cfg.small_near_threshold if tiny else cfg.near_threshold

    def check(pair):
        i, j = pair
        size_i = (int(scan.height[i]), int(scan.width[i]))
        size_j = (int(scan.height[j]), int(scan.width[j]))
        return verify_pair(scan.grey[i], scan.grey[j], size_i, size_j, candidates[pair], min_score=threshold(i, j))

    with ThreadPoolExecutor(cpu_threads()) as pool:
        matches = list(
            tqdm(
                pool.map(check, candidates_list, chunksize=64),
                total=len(candidates_list),
                desc="verifying near copies",
                unit="pair",
                disable=not progress,
            )
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
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = [i for i, _, _, _ in pairs]
    cols = [j for _, j, _, _ in pairs]
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
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


# ----------------------------------------------------------------------------------------------------
# Likely mislabels
# ----------------------------------------------------------------------------------------------------
def out_of_fold_probs(
    images: np.ndarray, y: np.ndarray, groups: np.ndarray, num_classes: int, cfg: AuditConfig, progress: bool = True
) -> np.ndarray:
    """Probabilities for each image from a LeNet that never saw it (k-fold; copies stay in one fold)."""
    import torch
    from sklearn.model_selection import StratifiedGroupKFold

    from signvision.config import TrainConfig
    from signvision.dataset import ImageDataset, make_loader
    from signvision.loop import predict, train_one_epoch
    from signvision.models import build_model
    from signvision.runtime import Runtime, pick_device
    from signvision.task import Task
    from signvision.train import make_scheduler

    device = pick_device(cfg.device)
    task = Task([str(c) for c in range(num_classes)], loss="ce")  # softmax: trains faster than BCE (docs/results.md)
    size = images.shape[1]
    runtime = Runtime.create(device, (0.5,) * 3, (0.5,) * 3)
    folds = min(cfg.folds, int(np.bincount(y).min())) if len(y) else 2
    if folds < 2:
        raise UserError("audit: a class has fewer than 2 images; cannot cross-validate for mislabels")
    epochs = cfg.epochs or auto_epochs(len(y))
    oof = np.zeros((len(y), num_classes), np.float32)
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=cfg.seed)
    bar = tqdm(total=folds * epochs, desc="mislabel model (k-fold)", unit="epoch", disable=not progress)
    for fold, (tr, va) in enumerate(splitter.split(images, y, groups)):
        torch.manual_seed(cfg.seed * 100 + fold)
        model = build_model("lenet", task.num_outputs, image_size=size).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
        # the images come from the array; no file is read, so the paths stay empty
        train = ImageDataset([""] * len(tr), size, targets=y[tr], images=images[tr])
        loader = make_loader(train, batch_size=64, shuffle=True)
        scheduler = make_scheduler(optimizer, TrainConfig(epochs=epochs, lr=3e-3), len(loader))
        for epoch in range(epochs):
            train_one_epoch(model, loader, optimizer, scheduler, runtime, task, epoch=epoch)
            bar.update(1)
        val = ImageDataset([""] * len(va), size, targets=y[va], images=images[va])
        probs = predict(model, make_loader(val, batch_size=256), runtime, task).probs
        oof[va] = probs if probs.ndim == 2 else np.stack([1 - probs, probs], 1)
    bar.close()
    return oof


def auto_epochs(n_images: int) -> int:
    """12 epochs for a few thousand images, fewer for more (about 200,000 image-steps per fold), at least 2."""
    return int(max(2, min(12, round(200_000 / max(n_images, 1)))))


def find_mislabels(images, y, groups, classes, cfg: AuditConfig, progress=True) -> pd.DataFrame:
    """suggested label, score (higher = more suspect) and is_issue for each image, via cleanlab."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = out_of_fold_probs(images, y, groups, len(classes), cfg, progress)
    is_issue = find_label_issues(labels=y, pred_probs=probs)
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    return pd.DataFrame(
        {
            "suggested": [classes[k] for k in probs.argmax(1)],
            "score": 1 - quality,
            "is_issue": is_issue,
            "given_prob": probs[np.arange(len(y)), y],
        }
    )


# ----------------------------------------------------------------------------------------------------
# The audit
# ----------------------------------------------------------------------------------------------------
def run_audit(cfg: AuditConfig, log=print, progress: bool | None = None) -> dict:
    """Audit the data of `cfg` into the new folder `cfg.out`; returns the summary."""
    started = time.perf_counter()
    progress = show_progress() if progress is None else progress
    out = Path(cfg.out or "")
    if not cfg.out:
        raise UserError("--out: give a folder for the audit")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; give a new folder for the audit")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not empty; choose a new folder")
    if cfg.folds < 2 or cfg.epochs < 0:
        raise UserError("--folds must be >= 2 and --epochs >= 0 (0 = chosen from the data size)")
    check_writable_folder(out)
    missing: list[str] = []
    table = read_data_of(cfg, skip_missing=True, dropped=missing)
    train = table.train.assign(set="train")
    frames = [train]
    if table.test is not None:
        frames.append(table.test.assign(Label="", set="test"))
    images = pd.concat(frames, ignore_index=True)[["img_IDS", "path", "Label", "set"]]
    log(
        f"audit of {table.layout} layout at {table.root}: {len(train)} training images"
        + (f", {len(images) - len(train)} test images" if table.test is not None else "")
    )

    n_classes = images.loc[images["set"] == "train", "Label"].nunique()
    model_size = cfg.image_size if n_classes <= 10 else max(cfg.image_size, 48)  # many classes: more pixels
    scan = scan_images(images["path"].tolist(), model_size, progress)
    pairs, checked = find_duplicates(scan, cfg, progress)
    group, kinds, sequence = group_pairs(len(images), pairs)
    images["group"], images["sequence"] = group, sequence
    is_train = (images["set"] == "train").to_numpy()

    # conflicts and leakage, per duplicate group; groups and sequences of many classes are likely false
    conflicts, leaks = set(), set()
    for g, members in images[images["group"] > 0].groupby("group"):
        labels = set(members.loc[members["set"] == "train", "Label"])
        if len(labels) > 1:
            conflicts.add(g)
        if (members["set"] == "test").any() and (members["set"] == "train").any():
            leaks.add(g)
    group_classes = images[(images["group"] > 0) & is_train].groupby("group")["Label"].nunique().to_dict()
    seq_sizes = images.loc[images["sequence"] > 0, "sequence"].value_counts()
    seq_classes = images[(images["sequence"] > 0) & is_train].groupby("sequence")["Label"].nunique()
    dup_rows = images[images["sequence"] > 0].copy()
    dup_rows["kind"] = dup_rows["group"].map(kinds).fillna("frame")
    dup_rows["conflict"] = dup_rows["group"].isin(conflicts)
    dup_rows["group"] = dup_rows["group"].where(dup_rows["group"] > 0)
    dup_rows = dup_rows.sort_values(["sequence", "group", "set", "img_IDS"])[
        ["group", "sequence", "img_IDS", "Label", "kind", "conflict", "set"]
    ]
    dup_rows["group"] = dup_rows["group"].astype("Int64")
    pair_rows = pd.DataFrame(
        [(images["img_IDS"][i], images["img_IDS"][j], m.score, m.subject, m.zoom, copy) for i, j, m, copy in checked],
        columns=["img_a", "img_b", "score", "subject", "zoom", "copy"],
    )

    # likely mislabels among readable training images
    train_ok = np.flatnonzero(is_train & scan.ok)
    classes = sorted(images.loc[train_ok, "Label"].unique())
    issues = pd.DataFrame(columns=["img_IDS", "Label", "suggested", "score", "is_issue"])
    if not cfg.skip_label_issues and len(classes) >= 2:
        y = images.loc[train_ok, "Label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
        groups = np.where(sequence[train_ok] > 0, sequence[train_ok], -(train_ok + 1))  # frames share a fold
        found = find_mislabels(scan.small[train_ok], y, groups, classes, cfg, progress)
        issues = pd.concat([images.loc[train_ok, ["img_IDS", "Label"]].reset_index(drop=True), found], axis=1)
        issues = issues.sort_values("score", ascending=False)
    oof_accuracy = float((issues["suggested"] == issues["Label"]).mean()) if len(issues) else None
    weak_model = oof_accuracy is not None and oof_accuracy < cfg.weak_model_accuracy

    # the cleaned training table: one image per group, no conflicting groups, no broken files
    keep = is_train & scan.ok
    pixels = scan.height * scan.width
    for g, members in images[(images["group"] > 0) & is_train].groupby("group"):
        rows = members.index.to_numpy()
        keep[rows] = False
        if g not in conflicts:
            readable = [r for r in rows if scan.ok[r]]
            if readable:
                keep[max(readable, key=lambda r: (pixels[r], -r))] = True
    if cfg.drop_suspects and len(issues):
        suspects = set(issues.loc[issues["is_issue"], "img_IDS"])
        keep &= ~images["img_IDS"].isin(suspects).to_numpy()
    clean = images.loc[keep, ["img_IDS", "Label"]]

    broken = [(images["img_IDS"][i], images["set"][i], scan.errors[i]) for i in np.flatnonzero(~scan.ok)]
    broken += [(m.split(" (")[1].split(")")[0] if " (" in m else m, "train", m) for m in missing]
    ok_train = is_train & scan.ok
    summary = {
        "data": str(table.root),
        "layout": table.layout,
        "images": int(len(images)),
        "train_images": int(is_train.sum()),
        "test_images": int((~is_train).sum()),
        "broken_images": len(broken),
        "exact_duplicate_groups": int(sum(1 for k in kinds.values() if k == "exact")),
        "near_duplicate_groups": int(sum(1 for k in kinds.values() if k == "near")),
        "images_in_duplicate_groups": int((group > 0).sum()),
        "largest_group": int(pd.Series(group[group > 0]).value_counts().max()) if (group > 0).any() else 0,
        "group_sizes": _size_histogram(group),
        "sequence_sizes": _size_histogram(sequence),
        "groups_of_many_classes": int(sum(1 for g in conflicts if group_classes.get(g, 0) > 2)),
        "sequences": int(len(seq_sizes)),
        "video_like_sequences": int((seq_sizes >= VIDEO_FRAMES).sum()),
        "images_in_video_like_sequences": int(seq_sizes[seq_sizes >= VIDEO_FRAMES].sum()),
        "largest_sequence": int(seq_sizes.max()) if len(seq_sizes) else 0,
        "sequences_of_many_classes": int((seq_classes > 2).sum()),
        "duplicate_pairs": len(pairs),
        "candidate_pairs_verified": len(checked),
        "conflicting_groups": len(conflicts),
        "label_issues": int(issues["is_issue"].sum()) if len(issues) else 0,
        "mislabel_model_accuracy": oof_accuracy,
        "mislabel_model_weak": bool(weak_model),
        "leaked_test_images": int(dup_rows.loc[dup_rows["group"].isin(leaks) & (dup_rows["set"] == "test")].shape[0]),
        "clean_images": int(len(clean)),
        "class_balance": {str(k): int(v) for k, v in images.loc[ok_train, "Label"].value_counts().sort_index().items()},
        "image_sizes": _size_stats(scan),
        "seconds": None,
        "config": asdict(cfg),
    }
    out.mkdir(parents=True, exist_ok=True)
    dup_rows.to_csv(out / "duplicates.csv", index=False)
    pair_rows.to_csv(out / "pairs.csv", index=False, float_format="%.4f")
    issues[["img_IDS", "Label", "suggested", "score", "is_issue"]].to_csv(out / "label_issues.csv", index=False)
    clean.to_csv(out / "clean.csv", index=False)
    pd.DataFrame(broken, columns=["img_IDS", "set", "error"]).to_csv(out / "broken.csv", index=False)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_html(out / "audit.html", summary, images, dup_rows, issues, broken, conflicts, leaks)
    log(
        f"broken {summary['broken_images']}, duplicate groups {summary['exact_duplicate_groups']} exact + "
        f"{summary['near_duplicate_groups']} near ({summary['images_in_duplicate_groups']} images), conflicting "
        f"groups {summary['conflicting_groups']}, likely mislabels {summary['label_issues']}, leaked test images "
        f"{summary['leaked_test_images']}; clean.csv keeps {summary['clean_images']} images. "
        + (
            f"{summary['video_like_sequences']} video-like sequences of >= {VIDEO_FRAMES} near-identical frames "
            f"hold {summary['images_in_video_like_sequences']} images (kept on one side by split/train --audit). "
            if summary["video_like_sequences"]
            else ""
        )
        + (
            f"The mislabel model is right on only {oof_accuracy:.0%} of images: its suspects are weak evidence. "
            if weak_model
            else ""
        )
        + f"{summary['seconds']:.0f} s. Open {out / 'audit.html'}"
    )
    return summary


def _size_histogram(labels: np.ndarray) -> dict[str, int]:
    """{size: how many groups (or sequences) have that many images}, for labels > 0."""
    sizes = pd.Series(labels[labels > 0]).value_counts()
    return {str(k): int(v) for k, v in sizes.value_counts().sort_index().items()}


def _size_stats(scan: Scan) -> dict:
    ok = scan.ok
    if not ok.any():
        return {}
    sizes = pd.Series([f"{w}x{h}" for w, h in zip(scan.width[ok], scan.height[ok])]).value_counts()
    return {
        "width": {
            "min": int(scan.width[ok].min()),
            "median": float(np.median(scan.width[ok])),
            "max": int(scan.width[ok].max()),
        },
        "height": {
            "min": int(scan.height[ok].min()),
            "median": float(np.median(scan.height[ok])),
            "max": int(scan.height[ok].max()),
        },
        "most_common_sizes": {k: int(v) for k, v in sizes.head(5).items()},
        "channels": {str(k): int(v) for k, v in pd.Series(scan.channels[ok]).value_counts().items()},
        "bit_depths": {str(k): int(v) for k, v in pd.Series(scan.bits[ok]).value_counts().items()},
    }


# ----------------------------------------------------------------------------------------------------
# audit.html
# ----------------------------------------------------------------------------------------------------
def _thumb(path: str, size: int = 96) -> str:
    try:
        img = resize(read_image(path), size)
    except (BadImage, OSError):
        return '<div class="broken">unreadable</div>'
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    return img_tag(buf.tobytes(), Path(path).name, "image/jpeg", width=size, height=size)


def _figure(path: str, caption: str) -> str:
    return f"<figure>{_thumb(path)}<figcaption>{caption}</figcaption></figure>"


def write_html(
    path: Path,
    summary: dict,
    images: pd.DataFrame,
    dups: pd.DataFrame,
    issues: pd.DataFrame,
    broken: list,
    conflicts: set,
    leaks: set,
    max_groups: int = 200,
    max_issues: int = 100,
) -> None:
    """audit.html: summary, class balance, sizes, broken files, groups, sequences, suspects."""
    e = escape
    by_id = images.set_index("img_IDS")
    parts = ["<h2>Summary</h2><table>"]
    for key in (
        "images",
        "train_images",
        "test_images",
        "broken_images",
        "exact_duplicate_groups",
        "near_duplicate_groups",
        "images_in_duplicate_groups",
        "largest_group",
        "groups_of_many_classes",
        "group_sizes",
        "video_like_sequences",
        "images_in_video_like_sequences",
        "largest_sequence",
        "sequences_of_many_classes",
        "conflicting_groups",
        "label_issues",
        "mislabel_model_accuracy",
        "leaked_test_images",
        "clean_images",
        "seconds",
    ):
        parts.append(f"<tr><th>{e(key.replace('_', ' '))}</th><td>{e(str(summary[key]))}</td></tr>")
    parts.append("</table><h2>Class balance (training images)</h2><table>")
    total = max(1, sum(summary["class_balance"].values()))
    for label, count in summary["class_balance"].items():
        bar = f'<span class="bar" style="width:{300 * count / total:.0f}px"></span>'
        parts.append(f"<tr><th>{e(label)}</th><td>{count}</td><td class=l>{bar}</td></tr>")
    parts.append(f"</table><h2>Image sizes</h2><pre>{e(json.dumps(summary['image_sizes'], indent=1))}</pre>")
    parts.append(f"<h2>Broken files ({len(broken)})</h2><ul>")
    parts += [f"<li>{e(str(i))} ({e(s)}): {e(str(m))}</li>" for i, s, m in broken[:500]]
    parts.append("</ul>")
    groups = list(dups.dropna(subset=["group"]).groupby("group"))
    groups.sort(key=lambda t: (t[0] not in conflicts, t[0] not in leaks, t[0]))
    parts.append(
        f"<h2>Duplicate groups ({len(groups)}; conflicts and leaks first)</h2><p>Every member of a group is a verified "
        "copy of its first image (same picture after re-encoding, resizing, brightness, a crop, or a zoom of up to "
        "1.3x with a shift; the subject must agree tile by tile, not just the background). A group whose images "
        "carry more than two labels is marked <b>MANY CLASSES: likely false</b>; look before you drop it.</p>"
    )
    for g, members in groups[:max_groups]:
        many = members.loc[members["set"] == "train", "Label"].nunique() > 2
        tags = [members["kind"].iloc[0]] + (["CONFLICT"] if g in conflicts else []) + (["LEAK"] if g in leaks else [])
        tags += ["MANY CLASSES: likely false"] if many else []
        figs = "".join(
            _figure(by_id.loc[r.img_IDS, "path"], f"{e(r.img_IDS)}<br>{e(r.Label) if r.Label else '(test)'}")
            for r in members.itertuples()
        )
        cls = "group conflict" if g in conflicts else "group"
        parts.append(
            f'<div class="{cls}"><b>group {g}</b> ({len(members)} images) {e(", ".join(tags))}'
            f'<div class="row">{figs}</div></div>'
        )
    sequences = sorted(dups.groupby("sequence"), key=lambda t: -len(t[1]))
    video = [(k, m) for k, m in sequences if len(m) >= VIDEO_FRAMES]
    parts.append(f"<h2>Sequences of near-identical frames ({len(video)} of {VIDEO_FRAMES} or more images)</h2>")
    if video:
        parts.append(
            f'<p class="warn">{summary["images_in_video_like_sequences"]} images are frames of '
            f"{len(video)} video-like sequences (consecutive frames are near copies of each other; the largest "
            f"holds {summary['largest_sequence']}). A random split puts neighbouring frames on both sides and "
            "inflates validation scores: <code>split --audit</code>, <code>train --audit</code> and "
            "<code>--folds</code> with <code>--audit</code> keep each sequence on one side.</p>"
        )
    for k, members in video[:20]:
        labels = members.loc[members["set"] == "train", "Label"]
        tag = " <b>MANY CLASSES: likely false</b>" if labels.nunique() > 2 else ""
        figs = "".join(
            _figure(by_id.loc[r.img_IDS, "path"], f"{e(r.img_IDS)}<br>{e(r.Label) if r.Label else '(test)'}")
            for r in members.head(12).itertuples()
        )
        more = f"<p>... and {len(members) - 12} more</p>" if len(members) > 12 else ""
        parts.append(
            f'<div class="issue"><b>sequence {k}</b>: {len(members)} images, labels '
            f'{e(", ".join(sorted(labels.unique())))}{tag}<div class="row">{figs}</div>{more}</div>'
        )
    suspects = issues[issues["is_issue"]] if len(issues) else issues
    parts.append(f"<h2>Likely mislabelled ({len(suspects)}), most suspect first</h2>")
    if summary.get("mislabel_model_accuracy") is not None:
        accuracy = summary["mislabel_model_accuracy"]
        text = f"The out-of-fold model that flags these is right on {accuracy:.1%} of the training images." + (
            " That is too weak for its flags to be findings: most of them are images the model gets wrong, "
            "not wrong labels. Look at them; do not drop them with --drop-suspects."
            if summary.get("mislabel_model_weak")
            else ""
        )
        parts.append(f'<p class="{"warn" if summary.get("mislabel_model_weak") else ""}">{text}</p>')
    typical = {}
    if len(issues):
        confident = issues[~issues["is_issue"]].sort_values("score")
        typical = {label: rows["img_IDS"].head(3).tolist() for label, rows in confident.groupby("Label")}
    for r in suspects.head(max_issues).itertuples():
        given = "".join(_figure(by_id.loc[i, "path"], f"typical {e(r.Label)}") for i in typical.get(r.Label, []))
        sugg = "".join(_figure(by_id.loc[i, "path"], f"typical {e(r.suggested)}") for i in typical.get(r.suggested, []))
        parts.append(
            f'<div class="issue"><div class="row">{_figure(by_id.loc[r.img_IDS, "path"], f"<b>{e(r.img_IDS)}</b>")}'
            f"<div><p>given <b>{e(r.Label)}</b>, suggested <b>{e(r.suggested)}</b>, score {r.score:.3f}</p>"
            f'<div class="row">{given}<span class="sep"></span>{sugg}</div></div></div></div>'
        )
    style = (
        ".bar{display:inline-block;height:10px;background:#4a8}"
        ".row{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}figure{margin:0;font-size:11px;"
        "width:100px;word-break:break-all}.group,.issue{border:1px solid #ccc;margin:8px 0;padding:6px}"
        ".group{display:inline-block;vertical-align:top;margin:4px}.conflict{border-color:#c33;background:#fff4f4}.sep{width:24px}.broken{width:96px;height:96px;background:#eee}"
    )
    write_page(path, f"signvision audit of {summary['data']}", "".join(parts), style)
