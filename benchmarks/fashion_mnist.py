"""Scale on Fashion-MNIST (Debian's dataset-fashion-mnist: `make fashion-mnist`): write all 70,000
labelled images in the Zindi layout once, then time the audit, or a training run with the decoded
images in a disk-backed memmap cache (--cache disk), and report peak memory.

    python benchmarks/fashion_mnist.py --workdir /tmp/fmnist train --epochs 2
    python benchmarks/fashion_mnist.py --workdir /tmp/fmnist audit
    python benchmarks/fashion_mnist.py --workdir /tmp/fmnist prepare   # only write the data (fashion-all/)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

os.environ.setdefault("SIGNVISION_PROGRESS", "0")

from signvision.cli.demo import fashion_images, write_zindi  # noqa: E402


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def ensure_data(workdir: Path) -> Path:
    data = workdir / "fashion-all"
    if not (data / "Train.csv").is_file():
        start = time.perf_counter()
        images, labels, _ = fashion_images()
        write_zindi(data, images, labels, test_fraction=0.0)
        (data / "Test.csv").unlink()
        print(f"wrote {len(images)} images to {data} in {time.perf_counter() - start:.0f} s")
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/signvision-fashion")
    p.add_argument("job", choices=["train", "audit", "prepare"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--model", default="lenet")
    p.add_argument("--image-size", type=int, default=32)
    a = p.parse_args()
    workdir = Path(a.workdir)
    data = ensure_data(workdir)
    if a.job == "prepare":
        return
    start = time.perf_counter()
    if a.job == "train":
        from signvision.config import TrainConfig
        from signvision.training.setup import fit

        run = workdir / "run"
        shutil.rmtree(run, ignore_errors=True)
        cfg = TrainConfig(
            data=str(data),
            out=str(run),
            model=a.model,
            epochs=a.epochs,
            image_size=a.image_size,
            batch_size=256,
            lr=3e-3,
            cache="disk",
            cache_dir=str(workdir / "cache"),
            device="cpu",
        )
        summary = fit(cfg)
        cache_files = sorted((workdir / "cache").glob("*.u8"))
        print(json.dumps({k: summary[k] for k in ("val_roc_auc", "val_log_loss", "val_accuracy", "train_seconds")}))
        print(f"disk cache: {cache_files[-1].name} {cache_files[-1].stat().st_size / 2**20:.0f} MiB")
    else:
        from signvision.auditing.audit import run_audit
        from signvision.config import AuditConfig

        out = workdir / "audit"
        shutil.rmtree(out, ignore_errors=True)
        run_audit(AuditConfig(data=str(data), out=str(out), device="cpu"), progress=False)
    own, children = peak_rss_mib()
    print(f"{a.job}: {time.perf_counter() - start:.0f} s wall, peak memory {own:.0f} MiB (children {children:.0f} MiB)")


if __name__ == "__main__":
    main()
