"""Is the server the bottleneck? Requests/s and latency of `signvision serve`, against the model's own rate.

    python benchmarks/serve.py --run runs/lenet --run runs/r18 [--requests 300] [--seconds 20] [--floor]

For each run: starts `signvision serve` on 127.0.0.1 (a free port; loopback only), then 1 and 8
concurrent clients each send one 100x100 JPEG per request over a kept-alive connection, bounded by
`--requests` per client count and `--seconds`. Prints requests/s, images/s and p50/p99 latency, and
the model's own batched inference rate measured in this process on the same images (batches of 8, as
8 clients can form at best; the best of three 2-second windows), with PyTorch (what the server runs)
and, for comparison, onnxruntime. The clients are asyncio connections in this process (the server is
another process). The server is not the bottleneck when, with 8 clients, images/s served >= 0.7 x
the PyTorch rate. Figures are written down in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

BOUNDARY = "signvisionbenchmark"


def jpeg_100() -> bytes:
    """A real photo when sign-digits is beside the checkout, else a drawn one; 100x100 either way."""
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "sign-digits" / "Images"
    files = sorted(folder.glob("*.jpg"))[:1]
    img = cv2.imread(str(files[0])) if files else np.full((100, 100, 3), 128, np.uint8)
    return cv2.imencode(".jpg", cv2.resize(img, (100, 100)))[1].tobytes()


def multipart(image: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n'
    head += "Content-Type: image/jpeg\r\n\r\n"
    return head.encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run: str, port: int, floor: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "signvision", "serve", "--run", run, "--port", str(port), "--device", "cpu"]
    if floor:  # the same batcher without the web framework (benchmarks/serve_floor.py)
        cmd = [sys.executable, str(Path(__file__).with_name("serve_floor.py")), run, str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:  # it refused the run (or failed): say why instead of waiting
            lines = proc.stderr.read().decode(errors="replace").strip().splitlines() or ["(no message)"]
            print(f"{run}: the server exited with code {proc.returncode}: {lines[-1]}", file=sys.stderr)
            raise SystemExit(2)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{run}: the server did not start in 120 s")


def load(port: int, body: bytes, clients: int, requests: int, seconds: float) -> dict:
    """`clients` concurrent kept-alive connections, each sending its next request when the last is answered.

    asyncio streams with the request bytes made once: the clients cost little CPU (about a tenth of the
    server's), which matters when they share the machine's cores with the server they measure.
    """
    head = f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    request = (head + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode() + body
    latencies: list[float] = []
    per_client = max(1, requests // clients)

    async def client(stop_at: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(per_client):
            if time.perf_counter() > stop_at:
                break
            start = time.perf_counter()
            writer.write(request)
            reply_head = await reader.readuntil(b"\r\n\r\n")
            status = int(reply_head.split(b" ", 2)[1])
            lines = reply_head.lower().split(b"\r\n")
            length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:"))
            await reader.readexactly(length)
            assert status == 200, status
            latencies.append(time.perf_counter() - start)
        writer.close()

    async def all_clients() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
        return time.perf_counter() - started

    wall = asyncio.run(all_clients())
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def model_rate(run: str, image: bytes, batch: int, seconds: float = 6.0) -> float:
    """Images/s of the run's model alone on decoded images, in batches of `batch` (the serve code path)."""
    import torch

    from signvision.inference.batcher import Batcher, read_upload
    from signvision.inference.members import load_members

    members = load_members(run)
    batcher = Batcher(members, torch.device("cpu"))
    one = read_upload(image, "a.jpg", members[0].cfg.image_size)
    images = np.stack([one] * batch)
    batcher.predict(images)  # warm-up
    return best_rate(lambda: batcher.predict(images), batch, seconds)


def best_rate(step, batch: int, seconds: float, windows: int = 3) -> float:
    """Images/s of `step()` (one batch), the best of `windows` measurements: on a shared machine the
    slowest windows measure the neighbours, and a high reference makes served/model a strict test."""
    rates = []
    for _ in range(windows):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / windows:
            step()
            done += batch
        rates.append(done / (time.perf_counter() - start))
    return max(rates)


def onnx_rate(run: str, image: bytes, batch: int, seconds: float = 6.0) -> float | None:
    """The same, through the run exported to ONNX and onnxruntime (None without the export extra)."""
    import tempfile

    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from signvision.inference.batcher import read_upload
    from signvision.inference.export import export_onnx
    from signvision.inference.members import load_members

    size = load_members(run)[0].cfg.image_size
    images = np.stack([read_upload(image, "a.jpg", size)] * batch).transpose(0, 3, 1, 2).copy()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(run, Path(tmp) / "model.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session.run(None, {"images": images})
        return best_rate(lambda: session.run(None, {"images": images}), batch, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True)
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement at most")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per measurement at most")
    parser.add_argument("--floor", action="store_true", help="serve with benchmarks/serve_floor.py instead")
    args = parser.parse_args()
    os.environ.setdefault("SIGNVISION_PROGRESS", "0")
    body = multipart(jpeg_100())
    print(f"{'run':<22} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  model alone, batch 8: torch; ORT")
    for run in args.run:
        port = free_port()
        proc = start(run, port, args.floor)
        try:
            load(port, body, 1, 20, 5)  # warm-up
            results = {c: load(port, body, c, args.requests, args.seconds) for c in (1, 8)}
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        rate, ort_rate = model_rate(run, jpeg_100(), 8), onnx_rate(run, jpeg_100(), 8)
        for clients, r in results.items():
            share = f"  served/model = {r['rps'] / rate:.2f}" if clients == 8 else ""
            onnx = f"; {ort_rate:.0f}" if ort_rate else ""
            print(
                f"{Path(run).name:<22} {clients:>7} {r['rps']:>8.1f} {r['p50_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f}  {rate:.0f}{onnx} img/s{share}"
            )


if __name__ == "__main__":
    main()
