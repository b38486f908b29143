"""How close training comes to what this machine can do: for LeNet, ResNet-18 and EfficientNet-Lite0 at the
README's image sizes, the training images/s (the step alone, on tensors already in memory: forward, loss,
backward, AdamW), the FLOPs of one training image (the forward pass counted by PyTorch's FLOP counter, times 3: not
hand arithmetic), and so the achieved GFLOP/s, beside the machine's measured peak: a large fp32 (and bf16)
matrix product on the same cores, the best a dense kernel reaches here.

    python benchmarks/peak.py                      # the three models, fp32, with the machine's peak
    python benchmarks/peak.py --amp                # the same under bf16 autocast (CPU)
    python benchmarks/peak.py --channels-last      # the same with NHWC tensors, as `train --channels-last`
    python benchmarks/peak.py --channels-last --compile --models tf_efficientnet_lite0   # as `train --compile`
    python benchmarks/peak.py --channels-last --amp --depthwise-fp32 --profile --models tf_efficientnet_lite0
                                                   # bf16 but the depthwise layers; the operators that take the time

The cores' threads are PyTorch's default (all of them); run it alone.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

os.environ.setdefault("SIGNVISION_PROGRESS", "0")

from signvision.models.factory import build_model  # noqa: E402
from signvision.training.trainer import adamw  # noqa: E402

MODELS = [("lenet", 64), ("resnet18", 64), ("tf_efficientnet_lite0", 128)]  # the README's recipes' sizes


def gemm_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """GFLOP/s of an n x n matrix product in `dtype`, repeated for about `seconds` (after a warm-up)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        done += 1
    return 2 * n**3 * done / (time.perf_counter() - started) / 1e9


def train_step(model, optimizer, x, y, amp: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def flops_per_image(model, x) -> float:
    """FLOPs of one training image: the forward pass counted by PyTorch's FlopCounterMode, times 3 (backward
    costs about twice the forward). The counter's own backward formula ignores convolution groups: on a
    depthwise 3x3 layer it counts 11 times the real work, which would make Lite0 look faster than the machine."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return 3 * counter.get_total_flops() / len(x)


def depthwise_in_fp32(model: torch.nn.Module) -> None:
    """Run each depthwise (grouped) convolution outside bf16 autocast, in fp32, forward and backward: an
    experiment on where bf16 loses time in a depthwise network."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    for layer in layers:
        conv = layer.forward

        def forward(x, conv=conv):
            with torch.autocast("cpu", enabled=False):
                return conv(x.float())

        layer.forward = forward


def top_operators(stepped, optimizer, x, y, amp: bool, rows: int = 6) -> str:
    """PyTorch's profiler over three training steps: the operators that take the most time, as a table."""
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(3):
            train_step(stepped, optimizer, x, y, amp)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def measure(
    name: str,
    size: int,
    batch: int,
    steps: int,
    amp: bool,
    channels_last=False,
    compile=False,
    depthwise_fp32=False,
    profile=False,
) -> dict:
    torch.manual_seed(0)
    model = build_model(name, 9, image_size=size).train()
    if depthwise_fp32:
        depthwise_in_fp32(model)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 9, (batch,))
    if channels_last:  # NHWC weights and batches, as `train --channels-last` makes them
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = adamw(model.parameters(), "cpu", lr=1e-3)  # as training makes it
    flops = flops_per_image(model, x)
    stepped = torch.compile(model) if compile else model  # as `train --compile` (the optimiser's step eager)
    warm_up = time.perf_counter()
    train_step(stepped, optimizer, x, y, amp)  # warm-up (and, compiled, the compilation)
    warm_up = time.perf_counter() - warm_up
    started = time.perf_counter()
    for _ in range(steps):
        train_step(stepped, optimizer, x, y, amp)
    per_s = steps * batch / (time.perf_counter() - started)
    if profile:
        print(top_operators(stepped, optimizer, x, y, amp))
    return {
        "model": name,
        "size": size,
        "img_s": per_s,
        "gflop_img": flops / 1e9,
        "gflop_s": per_s * flops / 1e9,
        "warm_up_s": warm_up,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per model (after one warm-up)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast, as `train --amp` on a CPU")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format, as `train --channels-last`")
    p.add_argument("--compile", action="store_true", help="torch.compile the model, as `train --compile`")
    p.add_argument("--depthwise-fp32", action="store_true", help="depthwise layers in fp32 under --amp")
    p.add_argument("--profile", action="store_true", help="print the operators that take the most time")
    p.add_argument("--models", default=",".join(n for n, _ in MODELS), help="comma-separated, of the three")
    a = p.parse_args()
    asked = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in asked if m not in dict(MODELS)]
    if unknown or not asked:
        p.error(f"--models {','.join(unknown) or a.models!r}: expected some of {', '.join(dict(MODELS))}")
    chosen = [(n, s) for n, s in MODELS if n in asked]
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    peak32, peak16 = gemm_peak(torch.float32), gemm_peak(torch.bfloat16)
    print(
        f"{torch.get_num_threads()} threads, {', '.join(isa) or 'no AVX'}; measured peak (2048^2 matrix product): "
        f"fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s"
    )
    peak = peak16 if a.amp else peak32
    print(
        f"{'model':<24} {'px':>4} {'img/s':>8} {'GFLOP/img':>10} {'GFLOP/s':>9} {'of peak':>8}   "
        f"({'bf16' if a.amp else 'fp32'}{', channels-last' if a.channels_last else ''}"
        f"{', compiled' if a.compile else ''}{', depthwise in fp32' if a.depthwise_fp32 else ''})   warm-up s"
    )
    for name, size in chosen:
        r = measure(name, size, a.batch_size, a.steps, a.amp, a.channels_last, a.compile, a.depthwise_fp32, a.profile)
        print(
            f"{name:<24} {size:>4} {r['img_s']:>8.0f} {r['gflop_img']:>10.3f} {r['gflop_s']:>9.1f} "
            f"{r['gflop_s'] / peak:>8.1%}   {r['warm_up_s']:>9.1f}"
        )


if __name__ == "__main__":
    main()
