"""Helpers shared by the tests: tiny data made on the spot, and a tiny training config."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from signvision.config import TrainConfig

SIGN_DIGITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sign-digits"

# Class names as awkward as real ones: a slash (the challenge's Enough/Satisfied), a space, non-ASCII.
CLASSES = ["Enough/Satisfied", "Me voy", "Ñandú"]


def draw(label_index: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A learnable RGB image: a bright block whose position says the class, on a smooth random
    background that differs from image to image (so distinct images are not near copies)."""
    noise = rng.integers(0, 255, (size // 4, size // 4, 3), dtype=np.uint8)
    img = (cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC) * 0.45).astype(np.uint8)
    q = size // 3
    y, x = [(0, 0), (q, q), (2 * q, 2 * q)][label_index % 3]
    img[y : y + q, x : x + q] = rng.integers(200, 255, 3, dtype=np.uint8)
    return img


def write_images(
    folder: Path, labels: list[str], classes: list[str], seed: int = 0, ext: str = ".jpg", size: int = 32
) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i, label in enumerate(labels):
        img_id = f"ImageID_{i:04d}"
        cv2.imwrite(str(folder / f"{img_id}{ext}"), draw(classes.index(label), rng, size)[..., ::-1])
        ids.append(img_id)
    return ids


def make_zindi(root: Path, n_per_class: int = 12, classes: list[str] = CLASSES, n_test: int = 6, seed: int = 0) -> Path:
    labels = [c for c in classes for _ in range(n_per_class)]
    ids = write_images(root / "Images", labels + [classes[i % len(classes)] for i in range(n_test)], classes, seed)
    pd.DataFrame({"img_IDS": ids[: len(labels)], "Label": labels}).to_csv(root / "Train.csv", index=False)
    pd.DataFrame({"img_IDS": ids[len(labels) :]}).to_csv(root / "Test.csv", index=False)
    return root


def tiny_config(data, out, **kw) -> TrainConfig:
    """A LeNet run that takes a second or two on the tiny data."""
    base = dict(
        data=str(data),
        out=str(out) if out is not None else None,
        model="lenet",
        lenet_width=1,
        epochs=2,
        image_size=16,
        batch_size=8,
        lr=5e-3,
        device="cpu",
        augment="none",  # tiny images, two epochs: no loader processes to start
    )
    return TrainConfig(**{**base, **kw})


def tiny_args(epochs: int = 2) -> list[str]:
    """The command line's smallest training on the tiny data (tiny_config's settings, but the default lr)."""
    sizes = ["--lenet-width", "1", "--epochs", str(epochs), "--image-size", "16", "--batch-size", "8"]
    return ["--model", "lenet", "--augment", "none", *sizes, "--device", "cpu"]


QUIET = {"log": lambda *_: None}


def submission(run, data, out, *, log=None, **options) -> pd.DataFrame:
    """What `signvision predict` does, through the public API: the run's calibrated probabilities for the images
    of `data`, written to `out` (refused if it exists), returned as the submission's rows."""
    import signvision as sv

    predictions = sv.load_run(run).predict(data, **options)
    predictions.to_csv(out)
    return predictions.frame


def assert_picture(path: Path, min_side: int = 100) -> np.ndarray:
    """The file is a readable image of a real size with something drawn on it (not one flat colour)."""
    img = cv2.imread(str(path))
    assert img is not None, f"{path}: not an image"
    assert min(img.shape[:2]) >= min_side, f"{path}: only {img.shape[1]}x{img.shape[0]}"
    assert img.std() > 5 and len(np.unique(img.reshape(-1, 3), axis=0)) > 8, f"{path}: a blank picture"
    return img
