"""signvision's training beside timm's own `train.py`: the same network, ImageNet weights, split and recipe,
each run alone, wall time and validation figures side by side.

    git clone https://github.com/huggingface/pytorch-image-models /tmp/timm-repo   # for its train.py
    python benchmarks/timm_side_by_side.py --run runs/freeze-probe/plain --timm-train /tmp/timm-repo/train.py \
        --out runs/timm-side

RUN is a finished single-split signvision run (here Lite0 on the session benchmark: `signvision train --data
data/sessions/train --model tf_efficientnet_lite0 --weights imagenet --lr 2e-3 --epochs 6 --image-size 128`).
Its split.csv becomes an ImageFolder tree of links (OUT/data/train, OUT/data/validation), its weights file a
timm state dict (OUT/weights.pth, loaded through signvision's own name matching), and both trainings run from
its config.json: `signvision train` again (OUT/signvision) and timm's `train.py` with the same optimiser,
learning rate, weight decay, schedule, warm-up, label smoothing, batch size, epochs and image size, no
horizontal flips (the signs' hands), its own augmentation otherwise (random resized crop, colour jitter).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def image_folder(run: Path, cfg: dict, out: Path) -> int:
    """OUT/data/{train,validation}/<class>/<file>: links to the run's split; returns the number of classes."""
    from signvision.data.tables import read_labelled

    table = read_labelled(cfg["data"]).train.set_index("img_IDS")
    with open(run / "split.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        image = table.loc[row["img_IDS"]]
        side = "train" if row["fold"] == "train" else "validation"
        link = out / "data" / side / str(image["Label"]) / Path(row["img_IDS"]).name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(Path(image["path"]).resolve())
    return table["Label"].nunique()


def timm_weights(cfg: dict, out: Path) -> Path:
    """The run's weights file as a plain timm state dict (its 1000-class head kept; timm replaces it)."""
    import timm
    import torch

    from signvision.models.factory import load_weights

    model = timm.create_model(cfg["model"], num_classes=1000)
    load_weights(model, cfg["weights"])
    path = out / "weights.pth"
    torch.save(model.state_dict(), path)
    return path


def timed(command: list[str], log: Path) -> float:
    """Run `command` alone, its output to `log`; its wall seconds."""
    started = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"timm_side_by_side.py: `{' '.join(command)}` failed; see {log}")
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finished single-split signvision run (its split and config)")
    p.add_argument("--timm-train", required=True, help="timm's train.py (from a clone of pytorch-image-models)")
    p.add_argument("--out", required=True, help="a new folder")
    args = p.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    cfg = json.loads((run / "config.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    classes = image_folder(run, cfg, out)
    weights = timm_weights(cfg, out)
    threads = str(os.cpu_count())
    timm_command = [
        sys.executable, args.timm_train, "--data-dir", str(out / "data"), "--model", cfg["model"],
        "--pretrained", "--pretrained-path", str(weights), "--num-classes", str(classes),
        "--img-size", str(cfg["image_size"]), "--epochs", str(cfg["epochs"]), "--batch-size", str(cfg["batch_size"]),
        "--opt", "adamw", "--lr", str(cfg["lr"]), "--weight-decay", str(cfg["weight_decay"]),
        "--sched", "cosine", "--warmup-epochs", str(int(cfg["warmup_epochs"])), "--smoothing",
        str(cfg["label_smoothing"]), "--hflip", "0", "--device", "cpu", "--workers", threads,
        "--seed", str(cfg["seed"]), "--output", str(out / "timm"), "--experiment", "lite",
    ]  # fmt: skip
    ours_command = [
        sys.executable, "-m", "signvision", "train", "--data", cfg["data"], "--model", cfg["model"],
        "--weights", cfg["weights"], "--lr", str(cfg["lr"]), "--epochs", str(cfg["epochs"]),
        "--image-size", str(cfg["image_size"]), "--seed", str(cfg["seed"]), "--out", str(out / "signvision"),
    ]  # fmt: skip
    env_note = f"{threads} threads"
    ours = timed(ours_command, out / "signvision.log")
    theirs = timed(timm_command, out / "timm.log")
    with open(out / "timm" / "lite" / "summary.csv") as f:
        epochs = list(csv.DictReader(f))
    summary = json.loads((out / "signvision" / "summary.json").read_text())
    last = epochs[-1]
    best = max(epochs, key=lambda r: float(r["eval_top1"]))
    print(f"{cfg['model']}, {cfg['image_size']} px, {cfg['epochs']} epochs, {env_note}, the same split and weights")
    loss, calibrated = summary["val_log_loss_uncalibrated"], summary["val_log_loss"]
    print(f"signvision train: {ours:6.1f} s wall; validation accuracy {summary['val_accuracy']:.4f} (best epoch),")
    print(f"  log loss {loss:.4f} before calibration, {calibrated:.4f} after")
    print(
        f"timm train.py:    {theirs:6.1f} s wall; validation accuracy {float(last['eval_top1']) / 100:.4f} (last "
        f"epoch), {float(best['eval_top1']) / 100:.4f} (best); log loss {float(last['eval_loss']):.4f} (last)"
    )
    print(f"signvision / timm wall time: {ours / theirs:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
