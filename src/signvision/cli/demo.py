"""`signvision demo`: the whole job on data that needs no download.

scikit-learn ships 1,797 real 8x8 scans of handwritten digits (UCI "optdigits"). The demo writes them
as PNG files in the Zindi layout (Train.csv, Test.csv, Images/), keeps the test labels aside as
Zindi does, trains LeNet, evaluates it on the validation split, predicts the test images and scores
that prediction against the withheld labels. `--source fashion-mnist` does the same with the 70,000
Fashion-MNIST images of Debian's `dataset-fashion-mnist` package.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from signvision.errors import DataError, MissingError, OptionError

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_zindi(
    dest: Path,
    images: np.ndarray,
    labels: list[str],
    *,
    test_fraction: float = 0.2,
    is_test: np.ndarray | None = None,
    seed: int = 0,
    ext: str = ".png",
) -> Path:
    """Write uint8 images (N, H, W[, 3]) as DEST/Images/ImageID_<n>.png with Train.csv, Test.csv and the
    withheld test labels in DEST/TestLabels.csv. The test images are `is_test`, or a random
    `test_fraction` of them. Returns DEST."""
    (dest / "Images").mkdir(parents=True, exist_ok=True)
    ids = [f"ImageID_{i:06d}" for i in range(len(images))]
    for img_id, img in zip(ids, images):
        cv2.imwrite(str(dest / "Images" / f"{img_id}{ext}"), img if img.ndim == 2 else img[..., ::-1])
    if is_test is None:
        is_test = np.random.default_rng(seed).random(len(images)) < test_fraction
    table = pd.DataFrame({"img_IDS": ids, "Label": labels})
    table[~is_test].to_csv(dest / "Train.csv", index=False)
    table[is_test][["img_IDS"]].to_csv(dest / "Test.csv", index=False)
    table[is_test].to_csv(dest / "TestLabels.csv", index=False)
    return dest


def digits_images() -> tuple[np.ndarray, list[str]]:
    """scikit-learn's digits as 32x32 uint8 images (0..16 intensities scaled to 0..255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)  # (1797, 8, 8)
    images = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_CUBIC) for im in small])
    return images, [DIGIT_WORDS[t] for t in digits.target]


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style idx file (gzip or not) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype != 0x08:
            raise DataError(f"{path}: not an idx file of unsigned bytes")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def fashion_images(folder: Path = FASHION_DIR) -> tuple[np.ndarray, list[str], np.ndarray]:
    """All 70,000 Fashion-MNIST images, labels, and whether each is one of the official test images."""
    files = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    if not all((folder / f).is_file() for f in files):
        raise MissingError(
            f"{folder} lacks the Fashion-MNIST files; install them with: sudo apt-get install dataset-fashion-mnist",
            option="source",
            value="fashion-mnist",
        )
    arrays = [read_idx(folder / f) for f in files]
    images = np.concatenate([arrays[0], arrays[2]])
    labels = [FASHION_CLASSES[t] for t in np.concatenate([arrays[1], arrays[3]])]
    is_test = np.r_[np.zeros(len(arrays[0]), bool), np.ones(len(arrays[2]), bool)]
    return images, labels, is_test


def prepare_demo_data(workdir: Path, source: str) -> Path:
    """Write the demo data once into WORKDIR/data-<source>; later demos reuse it."""
    dest = workdir / f"data-{source}"
    marker = dest / "signvision-demo.json"
    if marker.is_file():
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise OptionError(
            f"{dest}: exists but was not written by the demo; remove it or pick another one", option="workdir"
        )
    if source == "digits":
        images, labels = digits_images()
        write_zindi(dest, images, labels)
    elif source == "fashion-mnist":
        images, labels, is_test = fashion_images()
        write_zindi(dest, images, labels, is_test=is_test)
    else:
        raise OptionError("expected digits or fashion-mnist", option="source", value=source)
    marker.write_text(json.dumps({"source": source}) + "\n")
    return dest


def next_run_dir(runs: Path, stem: str) -> Path:
    """runs/<stem>-1, -2, ...: a demo never overwrites an earlier run."""
    n = 1
    while (runs / f"{stem}-{n}").exists():
        n += 1
    return runs / f"{stem}-{n}"


def score_submission(submission: pd.DataFrame, labels_csv: Path, classes: list[str]) -> dict:
    """ROC AUC, log loss and accuracy of a submission against withheld labels."""
    from signvision.training.metrics import compute_metrics

    truth = pd.read_csv(labels_csv, dtype=str).set_index("img_IDS").loc[submission["img_IDS"], "Label"]
    y = truth.map({c: i for i, c in enumerate(classes)}).to_numpy()
    return compute_metrics(y, submission[classes].to_numpy(), classes)


def run_demo(
    *,
    workdir: str | Path = "signvision-demo",
    source: str = "digits",
    epochs: int | None = None,
    device: str = "auto",
    log=print,
) -> dict:
    """Write the demo data, train LeNet, evaluate, predict the test images, score them."""
    import time

    import signvision as sv

    started = time.perf_counter()
    workdir = Path(workdir)
    data = prepare_demo_data(workdir, source)
    log(f"demo data ({source}): {data} (Zindi layout; test labels withheld in TestLabels.csv)")
    run = next_run_dir(workdir / "runs", f"lenet-{source}")
    small = source == "digits"
    trained = sv.train(
        data,
        out=run,
        log=log,
        model="lenet",
        image_size=32,
        epochs=epochs or (12 if small else 3),
        batch_size=64 if small else 256,
        lr=3e-3,
        device=device,
        seed=0,
    )
    summary = trained.summary
    log(f"report: {run / 'report.html'}")
    evaluation = trained.evaluate(tta="hflip" if not small else "none", device=device, log=log)
    predictions = trained.predict(data, device=device, workers=-1)
    predictions.to_csv(run / "submission.csv")
    log(f"wrote {run / 'submission.csv'}: {len(predictions)} images x {len(predictions.classes)} probability column(s)")
    submission = predictions.frame
    test = score_submission(submission, data / "TestLabels.csv", summary["classes"])
    log(
        f"test images ({len(submission)}), scored against the withheld labels: ROC AUC {test['roc_auc']:.4f}  "
        f"log loss {test['log_loss']:.4f}  accuracy {test['accuracy']:.4f}"
    )
    seconds = time.perf_counter() - started
    log(
        f"done in {seconds:.0f} s. The run: {run}/ (report.html, metrics.csv, best.pt, summary.json); "
        f"the submission: {run / 'submission.csv'}"
    )
    return {"run": str(run), "summary": summary, "evaluation": evaluation, "test": test, "seconds": seconds}
