"""Is the server the bottleneck? Requests/s and latency of `signvision serve`, against the model's own rate.

    python benchmarks/serve.py --run runs/lenet --run runs/r18 [--requests 300] [--seconds 20]

For each run: starts `signvision serve` on 127.0.0.1 (a free port; loopback only), then 1 and 8
concurrent clients each send one 100x100 JPEG per request over a kept-alive connection, bounded by
`--requests` per client count and `--seconds`. Prints requests/s, images/s and p50/p99 latency, and
the model's own batched inference rate measured in this process on the same images (batches of 8, as
8 clients can form at best). The server is not the bottleneck when, with 8 clients, images/s served
>= 0.7 x that rate. Figures are written down in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
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


def start(run: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "signvision", "serve", "--run", run, "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{run}: the server did not start")


def load(port: int, body: bytes, clients: int, requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    per_client = max(1, requests // clients)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        for _ in range(per_client):
            if time.perf_counter() > stop_at:
                break
            start = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers=headers)
            reply = conn.getresponse()
            reply.read()
            assert reply.status == 200, reply.status
            with lock:
                latencies.append(time.perf_counter() - start)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def model_rate(run: str, image: bytes, batch: int, seconds: float = 3.0) -> float:
    """Images/s of the run's model alone on decoded images, in batches of `batch` (the serve code path)."""
    import torch

    from signvision.inference import load_members
    from signvision.serve import Batcher, read_upload

    members = load_members(run)
    batcher = Batcher(members, torch.device("cpu"))
    one = read_upload(image, "a.jpg", members[0].cfg.image_size)
    images = np.stack([one] * batch)
    batcher.predict(images)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batcher.predict(images)
        done += batch
    return done / (time.perf_counter() - start)


def onnx_rate(run: str, image: bytes, batch: int, seconds: float = 3.0) -> float | None:
    """The same, through the run exported to ONNX and onnxruntime (None without the export extra)."""
    import tempfile

    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from signvision.export import export_onnx
    from signvision.inference import load_members
    from signvision.serve import read_upload

    size = load_members(run)[0].cfg.image_size
    images = np.stack([read_upload(image, "a.jpg", size)] * batch).transpose(0, 3, 1, 2).copy()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(run, Path(tmp) / "model.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session.run(None, {"images": images})
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            session.run(None, {"images": images})
            done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True)
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement at most")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per measurement at most")
    args = parser.parse_args()
    os.environ.setdefault("SIGNVISION_PROGRESS", "0")
    body = multipart(jpeg_100())
    print(f"{'run':<22} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  model alone, batch 8: torch; ORT")
    for run in args.run:
        port = free_port()
        proc = start(run, port)
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
