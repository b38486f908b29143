"""The data audit: broken files, exact and near duplicates, conflicting labels, likely mislabels, and test
images that leak from the training set. `audit(data)` in Python, `signvision audit --data DIR --out AUDIT`.

    broken          the file is missing, empty, not an image, or a truncated JPEG (data/images.py)
    copies          exact and near copies, duplicate groups and video-like sequences (grouping/verify.py)
    conflicts       groups whose training images carry different labels
    mislabels       a k-fold LeNet's out-of-fold probabilities given to cleanlab (audit_labels.py)
    leakage         Test.csv images in a group with training images

An `Audit` holds the findings as DataFrames (and shows its groups as thumbnails in a notebook); `save` writes
AUDIT/: duplicates.csv, pairs.csv, label_issues.csv, clean.csv (every readable image but extra exact copies, no
conflicting group, no suspect with `drop_suspects`), broken.csv, summary.json and audit.html (reports/audit_report.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from signvision.config import AUDIT_CHOICES, AuditConfig, packaged_weights, typed
from signvision.data.tables import read_data_of
from signvision.errors import OptionError
from signvision.files import atomic_write, check_writable_folder
from signvision.grouping.verify import VIDEO_FRAMES, Scan, find_duplicates, group_pairs, scan_images
from signvision.logs import get_logger, log_to
from signvision.progress import show_progress

logger = get_logger(__name__)


@dataclass
class Audit:
    """What an audit found, as DataFrames (what `audit` returns; `save(folder)` writes them with audit.html).

    Attributes:
        images: every image looked at: img_IDS, path, Label, set (train/test), group and sequence (-1: none).
        duplicates: group, sequence, img_IDS, Label, kind (exact/near/frame), conflict, set.
        pairs: every candidate pair verified: img_a, img_b, score, subject, zoom, copy.
        label_issues: img_IDS, Label, suggested, score, is_issue (most suspect first).
        clean: img_IDS, Label: readable images, one per set of exact copies, no conflicting group (what
            `train --audit` uses).
        broken: img_IDS, set, error.   summary: every count (summary.json).   folder: where it was saved.

    Example:
        >>> found = audit("../shared/data/sign-digits", skip_label_issues=True)
        >>> len(found.images), found.save("audits/sign-digits")
        (2062, PosixPath('audits/sign-digits'))
    """

    images: pd.DataFrame
    duplicates: pd.DataFrame  # group, sequence, img_IDS, Label, kind, conflict, set
    pairs: pd.DataFrame  # img_a, img_b, score, subject, zoom, copy: every pair it verified
    label_issues: pd.DataFrame  # img_IDS, Label, suggested, score, is_issue: most suspect first
    clean: pd.DataFrame  # img_IDS, Label: what `train --audit` trains on
    broken_list: list = field(default_factory=list)  # (img_IDS, set, error)
    conflicts: set = field(default_factory=set)
    leaks: set = field(default_factory=set)
    summary: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def broken(self) -> pd.DataFrame:
        return pd.DataFrame(self.broken_list, columns=["img_IDS", "set", "error"])

    def save(self, folder: str | Path) -> Path:
        """Write the audit folder (a new or empty folder): the CSVs, summary.json and audit.html."""
        from signvision.files import claim_folder, release_folder, write_json
        from signvision.reports.audit_report import write_html

        folder = Path(folder)
        check_audit_folder(folder)
        claim_folder(folder)
        try:
            for name, frame in (
                ("duplicates", self.duplicates),
                ("label_issues", self.label_issues),
                ("clean", self.clean),
                ("broken", self.broken),
            ):
                with atomic_write(folder / f"{name}.csv", newline="") as f:
                    frame.to_csv(f, index=False)
            with atomic_write(folder / "pairs.csv", newline="") as f:
                self.pairs.to_csv(f, index=False, float_format="%.4f")
            write_json(folder / "summary.json", self.summary)
            write_html(folder / "audit.html", self)
        finally:
            release_folder(folder)
        self.folder = folder
        return folder

    def _repr_html_(self) -> str:
        from signvision.reports.cards import audit_card

        return audit_card(self)


def check_audit_folder(out: Path) -> None:
    """A new or empty folder that can be written (checked before the long work)."""
    from signvision.files import check_new_folder

    check_new_folder(out)
    check_writable_folder(out)


def audit_images(cfg: AuditConfig) -> tuple[pd.DataFrame, list[str], object]:
    """Every image the audit looks at (training and test), the rows without an image, and the table."""
    missing: list[str] = []
    table = read_data_of(cfg, skip_missing=True, dropped=missing)
    frames = [table.train.assign(set="train")]
    if table.test is not None:
        frames.append(table.test.assign(Label="", set="test"))
    images = pd.concat(frames, ignore_index=True)[["img_IDS", "path", "Label", "set"]]
    logger.info(
        f"audit of {table.layout} layout at {table.root}: {len(table.train)} training images"
        + (f", {len(images) - len(table.train)} test images" if table.test is not None else "")
    )
    return images, missing, table


def conflicts_and_leaks(images: pd.DataFrame) -> tuple[set, set]:
    """Groups whose training images carry different labels; groups holding both training and test images."""
    conflicts, leaks = set(), set()
    for g, members in images[images["group"] > 0].groupby("group"):
        if members.loc[members["set"] == "train", "Label"].nunique() > 1:
            conflicts.add(g)
        if (members["set"] == "test").any() and (members["set"] == "train").any():
            leaks.add(g)
    return conflicts, leaks


def duplicate_rows(images: pd.DataFrame, kinds: dict, conflicts: set) -> pd.DataFrame:
    """duplicates.csv: every image in a sequence, with its group (if any), kind and whether it conflicts."""
    rows = images[images["sequence"] > 0].copy()
    rows["kind"] = rows["group"].map(kinds).fillna("frame")
    rows["conflict"] = rows["group"].isin(conflicts)
    rows["group"] = rows["group"].where(rows["group"] > 0).astype("Int64")
    return rows.sort_values(["sequence", "group", "set", "img_IDS"])[
        ["group", "sequence", "img_IDS", "Label", "kind", "conflict", "set"]
    ]


def label_issues(images: pd.DataFrame, scan: Scan, cfg: AuditConfig, progress: bool) -> pd.DataFrame:
    """Likely mislabels among the readable training images, most suspect first (empty when skipped)."""
    from signvision.auditing.labels import find_mislabels

    empty = pd.DataFrame(columns=["img_IDS", "Label", "suggested", "score", "is_issue"])
    train_ok = np.flatnonzero((images["set"] == "train").to_numpy() & scan.ok)
    classes = sorted(images.loc[train_ok, "Label"].unique())
    if cfg.skip_label_issues or len(classes) < 2:
        return empty
    y = images.loc[train_ok, "Label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    sequence = images["sequence"].to_numpy()
    groups = np.where(sequence[train_ok] > 0, sequence[train_ok], -(train_ok + 1))  # frames share a fold
    found = find_mislabels(scan.small[train_ok], y, groups, classes, cfg, progress)
    issues = pd.concat([images.loc[train_ok, ["img_IDS", "Label"]].reset_index(drop=True), found], axis=1)
    return issues.sort_values("score", ascending=False)


def clean_table(
    images: pd.DataFrame, scan: Scan, conflicts: set, issues: pd.DataFrame, drop_suspects: bool
) -> pd.DataFrame:
    """clean.csv: readable training images, one per set of exact copies (the same decoded pixels), no
    conflicting group, and no suspect when `drop_suspects`. Near copies and video frames are all kept: each
    is a real view of its sign, and every split keeps a group on one side (thinning a clip to one frame threw
    away most of a data set made of video)."""
    is_train = (images["set"] == "train").to_numpy()
    keep = is_train & scan.ok
    seen: set[str] = set()
    for r in np.flatnonzero(keep):
        if scan.pixel_hash[r] in seen:
            keep[r] = False  # an exact copy of an image already kept
        seen.add(scan.pixel_hash[r])
    for g, members in images[(images["group"] > 0) & is_train].groupby("group"):
        if g in conflicts:
            keep[members.index.to_numpy()] = False
    if drop_suspects and len(issues):
        keep &= ~images["img_IDS"].isin(set(issues.loc[issues["is_issue"], "img_IDS"])).to_numpy()
    return images.loc[keep, ["img_IDS", "Label"]]


def audit(data=None, *, out: str | Path | None = None, log=None, progress: bool | None = None, **settings) -> Audit:
    """Audit a data set: broken files, exact and near copies, duplicate groups and video-like sequences,
    conflicting labels, likely mislabels, test images leaking from training.

    Args:
        data: a data folder (any layout `read_data` reads).
        out: a new folder to save the audit into (CSVs, summary.json, audit.html); None keeps it in memory.
        log: where its lines go instead of the "signvision" logger (`lambda *_: None`: none).
        progress: show progress bars (None: where the output is a terminal or a notebook).
        settings: any AuditConfig field (`skip_label_issues=True`, `drop_suspects=True`, `near_threshold`, ...).

    Returns:
        an Audit (its findings as DataFrames: duplicates, pairs, label_issues, clean, broken; its summary).

    Example:
        >>> found = audit("../shared/data/sign-digits", skip_label_issues=True)
        >>> found.summary["images_in_duplicate_groups"], len(found.clean)   # no copies in sign-digits
        (0, 1650)
    """
    unknown = sorted(set(settings) - set(asdict(AuditConfig())))
    if unknown:
        raise OptionError("not an audit setting (see signvision.AuditConfig)", option=unknown[0])
    cfg = AuditConfig(**{**settings, "out": str(out) if out is not None else None})
    if getattr(data, "root", None) is not None and not isinstance(data, (str, Path)):  # a DataTable of a folder
        data = data.root
    if data is not None and not isinstance(data, (str, Path)):
        raise OptionError(
            f"expected a data folder (or a DataTable read from one), not a {type(data).__name__}", option="data"
        )
    if data is not None:
        cfg.data = str(data)
    with log_to(log):
        return run_audit(cfg, progress=progress, save=out is not None)


def run_audit(cfg: AuditConfig, progress: bool | None = None, save: bool = True) -> Audit:
    """Audit the data of `cfg` (and save it into the new folder `cfg.out` when `save`)."""
    started = time.perf_counter()
    progress = show_progress() if progress is None else progress
    if save and not cfg.out:
        raise OptionError("give a folder for the audit", option="out")
    for f in fields(cfg):  # numpy numbers taken, wrong types refused now (not deep inside the work)
        setattr(cfg, f.name, typed(f.name, getattr(cfg, f.name), f.type))
    if cfg.folds < 2:
        raise OptionError("must be 2 or more", option="folds", value=cfg.folds)
    if cfg.epochs < 0:
        raise OptionError("must not be negative (0 = chosen from the data size)", option="epochs", value=cfg.epochs)
    if cfg.image_size < 0:
        raise OptionError("must not be negative (0 = the model's own)", option="image_size", value=cfg.image_size)
    if cfg.label_model not in AUDIT_CHOICES["label_model"]:
        raise OptionError(
            f"expected one of {', '.join(AUDIT_CHOICES['label_model'])}", option="label_model", value=cfg.label_model
        )
    if cfg.label_model == "features" and not cfg.skip_label_issues:
        from signvision.models.features import FEATURE_MODEL

        packaged_weights(FEATURE_MODEL)  # the weights package missing: said before the images are read
    if save:  # the folder is this audit's from now on: a second audit into it is refused at once
        from signvision.files import claim_folder, release_folder

        check_audit_folder(Path(cfg.out))
        claim_folder(Path(cfg.out))
        try:
            return _audit(cfg, progress, started, save)
        finally:
            release_folder(Path(cfg.out))
    return _audit(cfg, progress, started, save)


def _audit(cfg: AuditConfig, progress: bool, started: float, save: bool) -> Audit:
    from signvision.training.runtime import sharing_cores

    with sharing_cores():  # a training beside it leaves it its share of the cores, and the other way round
        return _run_checks(cfg, progress, started, save)


def _run_checks(cfg: AuditConfig, progress: bool, started: float, save: bool) -> Audit:
    images, missing, table = audit_images(cfg)
    n_classes = images.loc[images["set"] == "train", "Label"].nunique()
    model_size = label_image_size(cfg, n_classes)
    scan = scan_images(images["path"].tolist(), model_size, progress)
    pairs, checked = find_duplicates(scan, cfg, progress)
    group, kinds, sequence = group_pairs(len(images), pairs)
    images["group"], images["sequence"] = group, sequence
    conflicts, leaks = conflicts_and_leaks(images)
    pair_rows = pd.DataFrame(
        [(images["img_IDS"][i], images["img_IDS"][j], m.score, m.subject, m.zoom, copy) for i, j, m, copy in checked],
        columns=["img_a", "img_b", "score", "subject", "zoom", "copy"],
    )
    issues = label_issues(images, scan, cfg, progress)
    broken = [(images["img_IDS"][i], images["set"][i], scan.errors[i]) for i in np.flatnonzero(~scan.ok)]
    broken += [(m.split(" (")[1].split(")")[0] if " (" in m else m, "train", m) for m in missing]
    result = Audit(
        images,
        duplicate_rows(images, kinds, conflicts),
        pair_rows,
        issues[["img_IDS", "Label", "suggested", "score", "is_issue"]],
        clean_table(images, scan, conflicts, issues, cfg.drop_suspects),
        broken,
        conflicts,
        leaks,
    )
    result.summary = audit_summary(result, table, scan, kinds, pairs, checked, cfg)
    result.summary["seconds"] = round(time.perf_counter() - started, 1)
    if save:
        result.save(cfg.out)
    logger.info(describe(result.summary, Path(cfg.out) / "audit.html" if save else None))
    return result


def label_image_size(cfg: AuditConfig, n_classes: int) -> int:
    """The image side of the mislabel model: `image_size`, or its model's own (LeNet: more pixels for many
    classes)."""
    if cfg.image_size:
        return cfg.image_size
    if cfg.label_model == "features":
        return FEATURE_IMAGE_SIZE
    return 32 if n_classes <= 10 else 48


FEATURE_IMAGE_SIZE = 96  # ImageNet features from 96-px images


def audit_summary(audit: Audit, table, scan: Scan, kinds: dict, pairs: list, checked: list, cfg: AuditConfig) -> dict:
    """summary.json: the counts of every finding, sizes, class balance, and the audit's settings."""
    images, issues = audit.images, audit.label_issues
    group, sequence = images["group"].to_numpy(), images["sequence"].to_numpy()
    is_train = (images["set"] == "train").to_numpy()
    seq_sizes = images.loc[images["sequence"] > 0, "sequence"].value_counts()
    seq_classes = images[(images["sequence"] > 0) & is_train].groupby("sequence")["Label"].nunique()
    group_classes = images[(images["group"] > 0) & is_train].groupby("group")["Label"].nunique().to_dict()
    accuracy = float((issues["suggested"] == issues["Label"]).mean()) if len(issues) else None
    dups = audit.duplicates
    return {
        "data": str(table.root),
        "layout": table.layout,
        "images": int(len(images)),
        "train_images": int(is_train.sum()),
        "test_images": int((~is_train).sum()),
        "broken_images": len(audit.broken_list),
        "exact_duplicate_groups": int(sum(1 for k in kinds.values() if k == "exact")),
        "near_duplicate_groups": int(sum(1 for k in kinds.values() if k == "near")),
        "images_in_duplicate_groups": int((group > 0).sum()),
        "largest_group": int(pd.Series(group[group > 0]).value_counts().max()) if (group > 0).any() else 0,
        "group_sizes": _size_histogram(group),
        "sequence_sizes": _size_histogram(sequence),
        "groups_of_many_classes": int(sum(1 for g in audit.conflicts if group_classes.get(g, 0) > 2)),
        "sequences": int(len(seq_sizes)),
        "video_like_sequences": int((seq_sizes >= VIDEO_FRAMES).sum()),
        "images_in_video_like_sequences": int(seq_sizes[seq_sizes >= VIDEO_FRAMES].sum()),
        "largest_sequence": int(seq_sizes.max()) if len(seq_sizes) else 0,
        "sequences_of_many_classes": int((seq_classes > 2).sum()),
        "duplicate_pairs": len(pairs),
        "candidate_pairs_verified": len(checked),
        "conflicting_groups": len(audit.conflicts),
        "label_issues": int(issues["is_issue"].sum()) if len(issues) else 0,
        "mislabel_model_accuracy": accuracy,
        "mislabel_model_weak": bool(accuracy is not None and accuracy < cfg.weak_model_accuracy),
        "leaked_test_images": int(dups.loc[dups["group"].isin(audit.leaks) & (dups["set"] == "test")].shape[0]),
        "clean_images": int(len(audit.clean)),
        "class_balance": {
            str(k): int(v) for k, v in images.loc[is_train & scan.ok, "Label"].value_counts().sort_index().items()
        },
        "image_sizes": _size_stats(scan),
        "seconds": None,
        "config": asdict(cfg),
    }


def describe(summary: dict, page: Path | None) -> str:
    """The audit's findings in one paragraph."""
    s = summary
    video = (
        f"{s['video_like_sequences']} video-like sequences of >= {VIDEO_FRAMES} near-identical frames hold "
        f"{s['images_in_video_like_sequences']} images (every split keeps them on one side). "
        if s["video_like_sequences"]
        else ""
    )
    weak = ""
    if s["mislabel_model_weak"]:
        weak = f"The mislabel model is right on only {s['mislabel_model_accuracy']:.0%} of images: weak evidence. "
    return (
        f"broken {s['broken_images']}, duplicate groups {s['exact_duplicate_groups']} exact + "
        f"{s['near_duplicate_groups']} near ({s['images_in_duplicate_groups']} images), conflicting "
        f"groups {s['conflicting_groups']}, likely mislabels {s['label_issues']}, leaked test images "
        f"{s['leaked_test_images']}; clean.csv keeps {s['clean_images']} images. {video}{weak}{s['seconds']:.0f} s."
        + (f" Open {page}" if page else "")
    )


def _size_histogram(labels: np.ndarray) -> dict[str, int]:
    """{size: how many groups (or sequences) have that many images}, for labels > 0."""
    sizes = pd.Series(labels[labels > 0]).value_counts()
    return {str(k): int(v) for k, v in sizes.value_counts().sort_index().items()}


def _size_stats(scan: Scan) -> dict:
    ok = scan.ok
    if not ok.any():
        return {}
    sizes = pd.Series([f"{w}x{h}" for w, h in zip(scan.width[ok], scan.height[ok])]).value_counts()
    spread = lambda v: {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}  # noqa: E731
    return {
        "width": spread(scan.width[ok]),
        "height": spread(scan.height[ok]),
        "most_common_sizes": {k: int(v) for k, v in sizes.head(5).items()},
        "channels": {str(k): int(v) for k, v in pd.Series(scan.channels[ok]).value_counts().items()},
        "bit_depths": {str(k): int(v) for k, v in pd.Series(scan.bits[ok]).value_counts().items()},
    }
