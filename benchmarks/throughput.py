"""Does the model set the pace? Images/s of (a) the training step alone on tensors already in memory,
(b) the DataLoader alone (read from the cache, augment, collate) and (c) the real training epoch
(`engine.train_one_epoch`), on the same data, batch size and thread settings; prints c/a.

    python benchmarks/throughput.py --data ../shared/data/sign-digits --model resnet18 --image-size 96
    python benchmarks/throughput.py --data ../shared/data/sign-digits --model lenet --image-size 32
"""

from __future__ import annotations

import argparse
import os
import time

import torch

os.environ.setdefault("SIGNVISION_PROGRESS", "0")

from signvision.config import TrainConfig  # noqa: E402
from signvision.data.dataset import auto_workers, make_loader  # noqa: E402
from signvision.models.augment import build_augment  # noqa: E402
from signvision.models.factory import build_model, model_norm  # noqa: E402
from signvision.training.loop import train_one_epoch  # noqa: E402
from signvision.training.rundata import prepare_run_data  # noqa: E402
from signvision.training.runtime import Runtime  # noqa: E402
from signvision.training.trainer import make_scheduler  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/sign-digits")
    p.add_argument("--model", default="lenet")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--augment", default="none")
    p.add_argument("--workers", type=int, default=-1)
    p.add_argument("--epochs", type=int, default=2, help="timed repetitions of each stage (after one warm-up)")
    a = p.parse_args()

    cfg = TrainConfig(
        data=a.data,
        model=a.model,
        image_size=a.image_size,
        batch_size=a.batch_size,
        augment=a.augment,
        workers=a.workers,
        device="cpu",
    )
    start = time.perf_counter()
    data = prepare_run_data(cfg)
    print(f"decode + cache {len(data.table.train)} images: {time.perf_counter() - start:.1f} s")
    transform = build_augment(a.augment, image_size=a.image_size, seed=0)
    train = data.subset("train", transform=transform)
    workers = auto_workers(a.workers, cached=True, augmented=transform is not None, cuda=False)
    loader = make_loader(train, batch_size=a.batch_size, shuffle=True, workers=workers, drop_last=True)
    model = build_model(a.model, data.task.num_outputs, image_size=a.image_size, lenet_width=cfg.lenet_width)
    mean, std = model_norm(model)
    runtime = Runtime.create(torch.device("cpu"), mean, std)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = make_scheduler(optimizer, epochs=cfg.epochs, steps_per_epoch=len(loader))
    n = len(loader) * a.batch_size
    print(
        f"model {a.model} at {a.image_size} px, batch {a.batch_size}, {n} images per epoch, "
        f"torch threads {torch.get_num_threads()}, loader workers {workers}, augment {a.augment}"
    )

    # (a) the training step alone: the same batches, already normalised tensors in memory
    batches = [(runtime.prepare(x), data.task.one_hot(y)) for x, y in loader]
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def model_only() -> None:
        model.train()
        for x, t in batches:
            loss = loss_fn(model(x), t)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def loader_only() -> None:
        for _ in loader:
            pass

    def real_epoch() -> None:
        train_one_epoch(model, loader, optimizer, scheduler, runtime, data.task, epoch=0)

    rates = {}
    for name, fn in (
        ("a: model step alone", model_only),
        ("b: DataLoader alone", loader_only),
        ("c: real training epoch", real_epoch),
    ):
        fn()  # warm-up
        t0 = time.perf_counter()
        for _ in range(a.epochs):
            fn()
        rates[name] = n * a.epochs / (time.perf_counter() - t0)
        print(f"{name:<24} {rates[name]:>9.0f} images/s")
    ratio = rates["c: real training epoch"] / rates["a: model step alone"]
    print(f"c/a = {ratio:.3f}")


if __name__ == "__main__":
    main()
