"""A benchmark where validation and test come from different capture sessions, built from real photos.

Real sign-language sets are bursts and video frames: one signer, one place, many near-identical frames.
This script makes such a set from the real hand photos of sign-digits (`../shared/data/sign-digits`), in
the split-folders layout that `signvision train` and `signvision evaluate --data` read:

    OUT/train/<class>/<photo>_f<k>.jpg   session A: each of P photos per class filmed as a clip of F frames
                                         (the hand moves, zooms, turns and the light drifts a little from
                                         frame to frame)
    OUT/test/<class>/<photo>_f<k>.jpg    session B: other photos (other signers), filmed the same way in
                                         another capture: the camera further away and to one side, warmer
                                         and dimmer light, a softer lens

A random split of OUT/train puts frames of one clip on both sides, so its validation score measures memory;
the test folder says what a new capture gets. Only Train.csv's labelled photos are used (Test.csv's labels
are withheld and stay unused).

    python benchmarks/sessions.py --out data/sessions                 # 1,800 training frames, 600 test frames
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

SIGN_DIGITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sign-digits"


def clip(photo: np.ndarray, frames: int, rng: np.random.Generator, session: dict) -> list[np.ndarray]:
    """A short clip of one photo: a smooth path of shift, zoom, rotation and brightness, in a session's look."""
    h, w = photo.shape[:2]
    end = rng.uniform(-1, 1, 4) * np.array([0.06 * w, 0.12, 6.0, 0.10])  # shift px, zoom, degrees, light
    direction = rng.uniform(0, 2 * np.pi)
    out = []
    for k in range(frames):
        t = k / max(1, frames - 1)
        shift, zoom, angle, light = end[0] * t, 1 + abs(end[1]) * t, end[2] * t, 1 + end[3] * t
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom * session["zoom"])
        m[0, 2] += shift * np.cos(direction) + session["dx"] * w
        m[1, 2] += shift * np.sin(direction) + session["dy"] * h
        frame = cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        frame = frame * light * session["gain"] * np.array(session["bgr"], np.float32)
        if session["blur"]:
            frame = cv2.GaussianBlur(frame, (0, 0), session["blur"])
        frame += rng.normal(0, 2.0, frame.shape)  # sensor noise, new in every frame
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


SESSIONS = {
    "A": {"zoom": 1.0, "dx": 0.0, "dy": 0.0, "gain": 1.0, "bgr": (1.0, 1.0, 1.0), "blur": 0.0},
    "B": {"zoom": 0.92, "dx": 0.05, "dy": -0.03, "gain": 0.88, "bgr": (0.92, 1.0, 1.08), "blur": 0.7},
}


def build(out: Path, *, source: Path, photos: int, frames: int, test_photos: int, test_frames: int, seed: int) -> dict:
    """Write the benchmark into OUT (a new folder); returns what was written."""
    if out.exists() and any(out.iterdir()):
        sys.exit(f"sessions.py: {out} exists and is not empty; choose a new --out")
    train = pd.read_csv(source / "Train.csv", dtype=str)
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "test": 0}
    for label, rows in sorted(train.groupby("Label")):
        ids = rows["img_IDS"].to_numpy()[rng.permutation(len(rows))]
        if len(ids) < photos + test_photos:
            sys.exit(f"sessions.py: class {label} has {len(ids)} photos, fewer than {photos} + {test_photos}")
        parts = (("train", ids[:photos], frames, "A"), ("test", ids[photos : photos + test_photos], test_frames, "B"))
        for side, chosen, n_frames, session in parts:
            folder = out / side / label
            folder.mkdir(parents=True, exist_ok=True)
            for img_id in chosen:
                photo = cv2.imread(str(source / "Images" / f"{img_id}.jpg"))
                for k, frame in enumerate(clip(photo, n_frames, rng, SESSIONS[session])):
                    cv2.imwrite(str(folder / f"{img_id}_f{k}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
                    counts[side] += 1
    info = {
        "source": str(source),
        "photos_per_class": photos,
        "frames": frames,
        "test_photos_per_class": test_photos,
        "test_frames": test_frames,
        "seed": seed,
        "images": counts,
        "sessions": SESSIONS,
    }
    (out / "sessions.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="a new folder for the benchmark")
    p.add_argument("--source", default=str(SIGN_DIGITS), help="sign-digits (the Zindi layout)")
    p.add_argument("--photos", type=int, default=30, help="training photos per class (each a clip)")
    p.add_argument("--frames", type=int, default=6, help="frames per training clip")
    p.add_argument("--test-photos", type=int, default=15, help="test photos per class")
    p.add_argument("--test-frames", type=int, default=4, help="frames per test clip")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    info = build(
        Path(args.out),
        source=Path(args.source),
        photos=args.photos,
        frames=args.frames,
        test_photos=args.test_photos,
        test_frames=args.test_frames,
        seed=args.seed,
    )
    print(f"wrote {args.out}: {info['images']['train']} training frames, {info['images']['test']} test frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
