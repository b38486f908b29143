"""Where and how a model runs: the device, the precision, the processes.

Every rule about the machine lives here, once:

    pick_device      auto | cpu | cuda | cuda:N (auto: the GPU torchrun gave this process, else the CPU)
    amp_dtype        bf16 where the hardware has it, fp16 on older GPUs, None when AMP is off (or emulated)
    precision_name   the words a run's first lines use for it
    dist_setup       joins the process group that torchrun describes (NCCL on GPUs, gloo on CPUs)
    sharing_cores    trainings on one machine share its cores (share_threads: each its part of the threads)
    Runtime          the device, the input normalisation and the precision a pass over images needs
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from signvision.errors import OptionError
from signvision.files import process_alive

TRAININGS = Path(tempfile.gettempdir()) / f"signvision-trainings-{os.getuid() if hasattr(os, 'getuid') else 0}"


@contextmanager
def sharing_cores():
    """Register this process as a training (or an audit) on this machine while the block runs, so that the
    others give it its share of the cores (`share_threads`). Registered early, before the data is read, so that
    two commands started together see each other from their first epoch."""
    TRAININGS.mkdir(parents=True, exist_ok=True)
    me = TRAININGS / str(os.getpid())
    me.touch()
    try:
        yield
    finally:
        me.unlink(missing_ok=True)


def share_threads(full: int) -> int:
    """Set PyTorch's threads to this process's share: `full` (its threads alone) over the trainings running on
    this machine, itself included. Two PyTorch processes that each spin a thread per core on the same cores
    waste most of them (measured: each kept 0.17-0.30x of its speed alone); sharing keeps each near half."""
    others = 0
    if TRAININGS.is_dir():
        for entry in TRAININGS.iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                if process_alive(int(entry.name)):
                    others += 1
                else:
                    entry.unlink(missing_ok=True)  # a training that died without unregistering
    threads = max(1, full // (others + 1))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def pick_device(spec: str = "auto") -> torch.device:
    """`--device` as a torch.device (auto: the GPU torchrun gave this process, else the CPU)."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(
            "CUDA is not available on this machine (use `device` cpu or auto)", option="device", value=spec
        )
    if spec != "cpu" and not spec.startswith("cuda"):
        raise OptionError("expected auto, cpu, cuda or cuda:N", option="device", value=spec)
    try:
        return torch.device(spec)
    except RuntimeError:
        raise OptionError("expected auto, cpu, cuda or cuda:N", option="device", value=spec) from None


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Elsewhere PyTorch emulates it: on an AVX2
    EPYC LeNet's forward and backward pass ran 15 times slower under bf16 autocast than in fp32 (288 -> 20
    images/s), while on a Xeon with AMX its training ran 2.2 times faster (docs/benchmarks.md)."""
    capabilities = getattr(torch.cpu, "get_capabilities", dict)()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the hardware has it (CPUs with AVX512-BF16 or AMX, Ampere+ GPUs), fp16 on older GPUs; None when
    off, and on a CPU that would only emulate bf16 (`precision_name` says so on the run's first lines)."""
    if not enabled:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    if device.type == "cpu" and not cpu_has_bf16():
        return None
    return torch.bfloat16


def precision_name(device: torch.device, amp: bool) -> str:
    """How a run computes, in words: "fp32", "bf16 autocast", "fp16 autocast with a loss scaler", or fp32 with
    the reason `amp` was left off."""
    dtype = amp_dtype(device, amp)
    if dtype is torch.bfloat16:
        return "bf16 autocast"
    if dtype is torch.float16:
        return "fp16 autocast with a loss scaler"
    if amp:
        return "fp32 (amp left off: this CPU has no native bf16, AVX512-BF16 or AMX, and emulated bf16 is ~15x slower)"
    return "fp32"


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision in `dtype`, or nothing when AMP is off."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def dist_setup(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group that torchrun describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP, an EMA average or torch.compile."""
    model = getattr(model, "module", model)  # DDP / AveragedModel
    return getattr(model, "_orig_mod", model)  # torch.compile


@dataclass
class Runtime:
    """Where a model runs and how a uint8 batch becomes its input: the device, the normalisation (mean, std as
    (1, 3, 1, 1) tensors on the device), the AMP precision and channels-last layout, and the process rank.

    Example:
        >>> rt = Runtime.create(torch.device("cpu"), (0.5,) * 3, (0.5,) * 3)
        >>> rt.prepare(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)).min().item()
        -1.0
    """

    device: torch.device
    mean: torch.Tensor  # (1, 3, 1, 1) on device
    std: torch.Tensor  # (1, 3, 1, 1) on device
    amp: torch.dtype | None = None
    channels_last: bool = False
    rank: int = 0

    @classmethod
    def create(cls, device: torch.device, mean, std, *, amp: bool = False, channels_last: bool = False, rank: int = 0):
        """From plain (mean, std) triples, as a model's pretrained config or a checkpoint gives them."""
        as_tensor = lambda v: torch.tensor(list(v), dtype=torch.float32, device=device).view(1, 3, 1, 1)  # noqa: E731
        return cls(device, as_tensor(mean), as_tensor(std), amp_dtype(device, amp), channels_last, rank)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) on the CPU -> normalised float32 on the device."""
        x = images.to(self.device, non_blocking=True).float().div_(255.0).sub_(self.mean).div_(self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        return autocast(self.device, self.amp)
