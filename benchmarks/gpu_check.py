"""The GPU paths, in one command: CUDA, AMP, channels-last, `--compile`, DDP over two GPUs, predict, evaluate with
TTA and export, each run as a user would on a machine with GPUs, with images/s and the GPU's name. On a machine
without a GPU it says so and exits 0. It takes under 5 minutes on one GPU.

    .venv/bin/python benchmarks/gpu_check.py                       # sign-digits beside the repository, if there
    .venv/bin/python benchmarks/gpu_check.py --data DIR --epochs 2 --out /tmp/gpu-check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIGN_DIGITS = ROOT.parent / "shared" / "data" / "sign-digits"


def step(name: str, cmd: list[str], log: list) -> float:
    """Run one command, print its time (and its last line), fail loudly if it fails."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    last = (done.stdout.strip().splitlines() or [""])[-1]
    print(f"{name:<34} {seconds:7.1f} s   exit {done.returncode}   {last[:110]}", flush=True)
    log.append({"step": name, "seconds": round(seconds, 1), "exit": done.returncode})
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
    return seconds


def images_per_s(run: Path) -> float:
    """The best training rate of a run's epochs (metrics.csv)."""
    import pandas as pd

    return float(pd.read_csv(run / "metrics.csv")["train_images_per_s"].max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SIGN_DIGITS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--out", help="a new folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to check (the CPU paths are the test suite's)")
        return 0
    gpus = torch.cuda.device_count()
    print(f"{gpus} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu-check-"))
    sv = [sys.executable, "-m", "signvision"]
    train = ["train", "--data", args.data, "--model", "resnet18", "--epochs", str(args.epochs)]
    train += ["--image-size", str(args.image_size), "--batch-size", "64", "--device", "cuda"]
    log: list = []
    step(
        "train resnet18 --amp --channels-last",
        sv + train + ["--amp", "--channels-last", "--out", str(out / "amp")],
        log,
    )
    step("train resnet18 --amp --compile", sv + train + ["--amp", "--compile", "--out", str(out / "compiled")], log)
    if gpus >= 2:
        ddp = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "signvision",
        ]
        step("train resnet18 --amp, 2 GPUs (DDP)", ddp + train + ["--amp", "--out", str(out / "ddp")], log)
    run = out / "amp"
    step("predict", sv + ["predict", "--run", str(run), "--data", args.data, "--out", str(out / "sub.csv")], log)
    step("evaluate --tta hflip", sv + ["evaluate", "--run", str(run), "--tta", "hflip", "--device", "cuda"], log)
    step("export onnx", sv + ["export", "--run", str(run), "--out", str(out / "model.onnx")], log)
    rates = {
        name: images_per_s(out / name) for name in ("amp", "compiled", "ddp") if (out / name / "metrics.csv").is_file()
    }
    for name, rate in rates.items():
        print(f"training images/s ({name}): {rate:,.0f} on {torch.cuda.get_device_name(0)}")
    (out / "gpu_check.json").write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "steps": log, **rates}))
    failed = [s["step"] for s in log if s["exit"] != 0]
    print(
        f"results: {out / 'gpu_check.json'}" + (f"; FAILED: {', '.join(failed)}" if failed else "; every step passed")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
