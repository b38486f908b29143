"""The course's `Dataset` (images read with OpenCV, targets from pandas) and the `DataLoader`s.

The loader hands out uint8 tensors; `Runtime.prepare` (training/runtime.py) normalises them on the device, which
moves four times fewer bytes to a GPU than float32 would.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from signvision.data.images import load_resized
from signvision.data.threads import cpu_threads
from signvision.errors import OptionError


class ImageDataset(Dataset):
    """The course's Dataset: images read with OpenCV (or taken from the decoded-image cache), targets from a
    pandas column, an albumentations `transform` for augmentation.

    Args:
        paths: image files.   size: images are resized to size x size.
        targets: integer targets (None: unlabelled, items are (image, id)).   ids: names (default: file stems).
        soft_targets: (N, outputs) float probabilities given as the items' targets instead (distillation).
        images: a cache of decoded images (N, size, size, 3) uint8, or None to decode on the fly.
        transform: an albumentations pipeline that keeps the size.

    Returns items `(image, target)` with image a uint8 tensor (3, size, size); `__getitems__` gives a whole
    batch at once (one numpy fancy-index for cached images).

    Example:
        >>> table = read_data("../shared/data/sign-digits").train
        >>> ds = ImageDataset(table["path"], 64, targets=table["Label"].astype("category").cat.codes)
        >>> image, target = ds[0]
        >>> image.shape, image.dtype, target
        (torch.Size([3, 64, 64]), torch.uint8, 8)
    """

    def __init__(
        self,
        paths: Sequence[str],
        size: int,
        *,
        targets: Sequence[int] | np.ndarray | None = None,
        soft_targets: np.ndarray | None = None,
        ids: Sequence[str] | None = None,
        images: np.ndarray | None = None,
        transform=None,
    ):
        if isinstance(paths, (str, Path)):
            raise OptionError(
                "give a list of image files, not one name (a folder? see read_data)", option="paths", value=paths
            )
        if not isinstance(size, int) or size < 1:
            raise OptionError("must be a whole number of pixels, at least 1", option="size", value=size)
        self.paths = list(paths)
        self.size = size
        self.targets = None if targets is None else np.asarray(targets, dtype=np.int64)
        self.soft_targets = None if soft_targets is None else np.asarray(soft_targets, dtype=np.float32)
        self.ids = list(ids) if ids is not None else [Path(p).stem for p in self.paths]
        self.images = images  # cached (N, size, size, 3) uint8, or None
        self.transform = transform
        for name, values in (
            ("targets", self.targets),
            ("soft_targets", self.soft_targets),
            ("images", images),
            ("ids", self.ids),
        ):
            if values is not None and len(values) != len(self.paths):
                raise OptionError(f"{len(values)} of them for {len(self.paths)} images", option=name)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        return self.images[i] if self.images is not None else load_resized(self.paths[i], self.size)

    def _augment(self, img: np.ndarray) -> np.ndarray:
        return self.transform(image=img)["image"] if self.transform is not None else img

    def __getitem__(self, i: int):
        img = torch.from_numpy(np.ascontiguousarray(self._augment(self.load(i)))).permute(2, 0, 1)
        if self.soft_targets is not None:
            return img, torch.from_numpy(self.soft_targets[i])
        return (img, int(self.targets[i])) if self.targets is not None else (img, self.ids[i])

    def __getitems__(self, indices: list[int]):
        idx = np.asarray(indices)
        if self.images is not None and self.transform is None:
            batch = np.ascontiguousarray(self.images[idx])  # (B, H, W, 3)
        else:
            batch = np.stack([self._augment(self.load(int(i))) for i in idx])
        images = torch.from_numpy(batch).permute(0, 3, 1, 2)  # (B, 3, H, W), uint8, a view
        if self.soft_targets is not None:
            return images, torch.from_numpy(self.soft_targets[idx])  # (B, outputs) float
        if self.targets is not None:
            return images, torch.from_numpy(self.targets[idx])
        return images, [self.ids[int(i)] for i in idx]


def collate_batch(batch):
    """`__getitems__` already returns a collated batch; a list of single items is stacked here."""
    if isinstance(batch, tuple):
        return batch
    images = torch.stack([b[0] for b in batch])
    second = [b[1] for b in batch]
    if torch.is_tensor(second[0]):  # soft targets
        return images, torch.stack(second)
    return images, (torch.tensor(second) if isinstance(second[0], int) else second)


class ShardSampler(Sampler[int]):
    """Evaluation sampler for several processes: rank r takes indices r, r+W, r+2W, ... so every image
    is seen exactly once over all ranks (unlike DistributedSampler, which pads with duplicates)."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ImageLoader(DataLoader):
    """A DataLoader whose worker processes are forked while OpenCV's thread pool is stopped in this process.

    fork() copies a pool's state but not its threads, and the worker's first use of the pool then waits
    for ever. The pool is stopped just for the fork (the workers are started when iteration starts) and
    this process's OpenCV thread count is put back afterwards: nothing changes for the caller."""

    def __iter__(self):
        if self.num_workers == 0 or getattr(self, "_iterator", None) is not None:
            return super().__iter__()
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return super().__iter__()
        finally:
            cv2.setNumThreads(previous)


def _worker_init(_: int) -> None:
    """One thread per loader process, and a distinct augmentation stream per process (albumentations
    pipelines carry their own generator, which every worker would otherwise copy unchanged). Ctrl-C is the
    main process's to handle: Jupyter's "interrupt kernel" and a terminal signal the whole process group, and a
    worker that died of it would leave the loader, and so `run.fit()` again, broken."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(info.seed % 2**32)


def auto_workers(requested: int, *, cached: bool, augmented: bool, cuda: bool) -> int:
    """Loader processes: `requested` if >= 0. Otherwise none when batches are slices of the in-memory
    cache (nothing left to parallelise), else one per spare core (all cores but the one the model
    needs; on CUDA the model runs on the GPU, so up to 8)."""
    if requested >= 0:
        return requested
    cores = cpu_threads(limit=1024)
    if cached and not augmented:
        return 0
    return min(8, cores) if cuda else max(0, min(8, cores - 1))


def make_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    shuffle: bool = False,
    workers: int = 0,
    pin_memory: bool = False,
    sampler: Sampler | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader of uint8 batches for an ImageDataset (batches come whole from `__getitems__`).

    Args:
        dataset: an ImageDataset.   batch_size: images a batch.   shuffle: draw from torch's global generator,
        which training reseeds every epoch (a resumed run sees the same batches).   workers: loader processes.
        pin_memory: for CUDA.   sampler: e.g. a DistributedSampler.   drop_last: drop a last partial batch.

    Returns:
        a DataLoader of (images uint8 (B, 3, S, S), targets (B,) or ids).

    Example:
        >>> table = read_data("../shared/data/sign-digits").train
        >>> ds = ImageDataset(table["path"], 32, targets=table["Label"].astype("category").cat.codes)
        >>> images, y = next(iter(make_loader(ds, batch_size=16, shuffle=True)))
        >>> images.shape, images.dtype, y.shape
        (torch.Size([16, 3, 32, 32]), torch.uint8, torch.Size([16]))
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise OptionError("must be a whole number of at least 1", option="batch_size", value=batch_size)
    if not isinstance(workers, int) or workers < 0:
        raise OptionError("must be 0 (no loader processes) or more", option="workers", value=workers)
    return ImageLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=collate_batch,
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )
